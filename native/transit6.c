/*
 * transit6 native I/O: TUN, batched UDP (recvmmsg/sendmmsg + IP_PKTINFO), raw sockets and uv_poll readiness.
 *
 * Why an addon (shared/reference/dataplane-notes.md): uv_poll on the fd plus drain-until-EAGAIN batch reads on the
 * event loop was the fastest Node design measured; thread-pool reads were 10x slower, fs streams merge TUN packets
 * and writev on a TUN fd silently loses every packet after the first. So: one read()/write() per packet, one
 * N-API call per batch, no threads.
 *
 * Contract for every entry point: arguments are validated here (types, integer ranges, buffer bounds) and local
 * misuse throws TypeError/RangeError. OS errors on the hot path are returned as numbers (-errno) or recorded per
 * packet, never thrown; setup calls (tunOpen, udpOpen, rawOpen) throw an Error whose `code` is the errno name.
 */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* Messages per recvmmsg/sendmmsg call; callers may ask for more, we loop in chunks. Stack use ~10 KiB. */
#define CHUNK 64

/* TUNSETOFFLOAD flags (linux/if_tun.h; USO since Linux 6.2, spelled out for older headers). */
#define T6_TUN_F_CSUM 0x01
#define T6_TUN_F_USO4 0x20
#define T6_TUN_F_USO6 0x40
/* Upper bounds that keep all size arithmetic far from overflow. */
#define MAX_PACKETS (1u << 20)
#define MAX_SLOT (1u << 24)

/* ------------------------------------------------------------------------------------------------------------ */
/* errors */

static const char *errno_name(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES)
    E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ENOSPC)
    E(EPIPE) E(ERANGE) E(ENOSYS) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT)
    E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EPFNOSUPPORT) E(EAFNOSUPPORT) E(EADDRINUSE)
    E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ENETRESET) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS)
    E(EISCONN) E(ENOTCONN) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTDOWN) E(EHOSTUNREACH) E(EALREADY)
    E(EINPROGRESS) E(EBADFD) E(EPROTO) E(ENOMSG) E(EOVERFLOW) E(ENONET)
#undef E
    default: return NULL;
  }
}

/* Throws `new Error("<context>: <strerror> (<CODE>)")` with err.code = "<CODE>" and err.errno = errno. */
static void throw_errno(napi_env env, int err, const char *fmt, ...) {
  char ctx[160], msg[320], codebuf[24];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  const char *code = errno_name(err);
  if (code == NULL) {
    snprintf(codebuf, sizeof codebuf, "ERRNO_%d", err);
    code = codebuf;
  }
  const char *hint = "";
  if (err == EPERM || err == EACCES) hint = " (insufficient privilege: run as root or grant the capability)";
  snprintf(msg, sizeof msg, "%s: %s (%s)%s", ctx, strerror(err), code, hint);
  napi_value jcode, jmsg, jerr, jerrno;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &jerr) != napi_ok) {
    napi_throw_error(env, code, msg);
    return;
  }
  if (napi_create_int32(env, err, &jerrno) == napi_ok) napi_set_named_property(env, jerr, "errno", jerrno);
  napi_throw(env, jerr);
}

static void throw_type(napi_env env, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

static void throw_range(napi_env env, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
}

/* An N-API call failed: surface it unless an exception is already pending. */
static void throw_napi(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "transit6 native: %s failed: %s", what,
           info && info->error_message ? info->error_message : "unknown N-API error");
  napi_throw_error(env, "ERR_TRANSIT6_NAPI", msg);
}

#define NAPI_OK(call)                 \
  do {                                \
    if ((call) != napi_ok) {          \
      throw_napi(env, #call);         \
      return NULL;                    \
    }                                 \
  } while (0)

/* ------------------------------------------------------------------------------------------------------------ */
/* argument helpers: each returns 0 on success, -1 with a JS exception pending */

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *fn) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_napi(env, fn);
    return -1;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (size_t i = argc; i < want; i++) argv[i] = undef;
  return 0;
}

static int is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  return t == napi_undefined || t == napi_null;
}

/* An integral Number in [min, max]. */
static int get_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    throw_type(env, "%s must be a number", name);
    return -1;
  }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !isfinite(d) || floor(d) != d) {
    throw_type(env, "%s must be an integer", name);
    return -1;
  }
  if (d < (double)min || d > (double)max) {
    throw_range(env, "%s must be in [%lld, %lld], got %.0f", name, (long long)min, (long long)max, d);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

static int get_fd(napi_env env, napi_value v, int *fd) {
  int64_t x;
  if (get_int(env, v, "fd", 0, INT_MAX, &x)) return -1;
  *fd = (int)x;
  return 0;
}

static const char *typed_name(napi_typedarray_type t) {
  switch (t) {
    case napi_uint8_array: return "Uint8Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_int32_array: return "Int32Array";
    default: return "typed array";
  }
}

/* A typed array of exactly type `want`; `*len` is its element count, `*data` points at its first element.
 * With `optional`, undefined/null give data = NULL, len = 0. */
static int get_typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want, int optional,
                     void **data, size_t *len) {
  *data = NULL;
  *len = 0;
  if (optional && is_nullish(env, v)) return 0;
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    throw_type(env, "%s must be a %s%s", name, typed_name(want), optional ? " or null" : "");
    return -1;
  }
  napi_typedarray_type t;
  size_t n = 0;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &t, &n, &p, NULL, NULL) != napi_ok) {
    throw_napi(env, "napi_get_typedarray_info");
    return -1;
  }
  if (t != want) {
    throw_type(env, "%s must be a %s", name, typed_name(want));
    return -1;
  }
  if (n > 0 && p == NULL) { /* detached buffer */
    throw_type(env, "%s is detached", name);
    return -1;
  }
  /* A present-but-empty array must not read as "absent" (NULL) to callers that treat NULL as optional-missing. */
  static uint32_t empty[1];
  *data = p != NULL ? p : (void *)empty;
  *len = n;
  return 0;
}

static int get_bool_prop(napi_env env, napi_value obj, const char *key, int *out) {
  *out = 0;
  if (is_nullish(env, obj)) return 0;
  napi_valuetype t;
  if (napi_typeof(env, obj, &t) != napi_ok || t != napi_object) {
    throw_type(env, "options must be an object");
    return -1;
  }
  napi_value v;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) {
    throw_napi(env, "napi_get_named_property");
    return -1;
  }
  if (is_nullish(env, v)) return 0;
  napi_typeof(env, v, &t);
  if (t != napi_boolean) {
    throw_type(env, "options.%s must be a boolean", key);
    return -1;
  }
  bool b;
  napi_get_value_bool(env, v, &b);
  *out = b ? 1 : 0;
  return 0;
}

/* Optional integer property: *present = 0 when absent. */
static int get_int_prop(napi_env env, napi_value obj, const char *key, int64_t min, int64_t max, int *present,
                        int64_t *out) {
  *present = 0;
  if (is_nullish(env, obj)) return 0;
  napi_value v;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) {
    throw_napi(env, "napi_get_named_property");
    return -1;
  }
  if (is_nullish(env, v)) return 0;
  char name[64];
  snprintf(name, sizeof name, "options.%s", key);
  if (get_int(env, v, name, min, max, out)) return -1;
  *present = 1;
  return 0;
}

/* Validates an arena of `max` slots of `slot` bytes, with `lengths` room for `max` entries. */
static int check_arena(napi_env env, size_t arena_len, int64_t slot, int64_t max, size_t lengths_len) {
  if ((uint64_t)slot * (uint64_t)max > (uint64_t)arena_len) {
    throw_range(env, "arena too small: %lld slots of %lld bytes need %llu bytes, arena has %zu", (long long)max,
                (long long)slot, (unsigned long long)((uint64_t)slot * (uint64_t)max), arena_len);
    return -1;
  }
  if (lengths_len < (size_t)max) {
    throw_range(env, "lengths has %zu entries, maxPackets is %lld", lengths_len, (long long)max);
    return -1;
  }
  return 0;
}

static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  if (napi_create_int64(env, v, &r) != napi_ok) {
    throw_napi(env, "napi_create_int64");
    return NULL;
  }
  return r;
}

static napi_value undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* TUN */

/* tunOpen(name, {multiQueue?, vnetHdr?}) -> {fd, name} */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, "tunOpen")) return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_string) {
    throw_type(env, "tunOpen: name must be a string");
    return NULL;
  }
  size_t nlen = 0;
  NAPI_OK(napi_get_value_string_utf8(env, argv[0], NULL, 0, &nlen));
  if (nlen >= IFNAMSIZ) {
    throw_range(env, "tunOpen: interface name is %zu bytes, the limit is %d", nlen, IFNAMSIZ - 1);
    return NULL;
  }
  char name[IFNAMSIZ];
  memset(name, 0, sizeof name);
  NAPI_OK(napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen));
  if (strlen(name) != nlen) {
    throw_type(env, "tunOpen: interface name contains a NUL byte");
    return NULL;
  }
  int multi, vnet;
  if (get_bool_prop(env, argv[1], "multiQueue", &multi) || get_bool_prop(env, argv[1], "vnetHdr", &vnet)) return NULL;

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "tunOpen(%s): open /dev/net/tun", name);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (multi ? IFF_MULTI_QUEUE : 0) | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, nlen);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "tunOpen(%s): ioctl TUNSETIFF", name[0] ? name : "<kernel-chosen>");
    return NULL;
  }
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  /* Whether the kernel takes GSO_UDP_L4 (USO) from this device's writer: TUNSETOFFLOAD refuses flags it does not
   * know (EINVAL), which is the documented way to test for them. Reads are put back to no offloads at once. */
  int uso = 0;
  if (vnet && ioctl(fd, TUNSETOFFLOAD, (unsigned long)(T6_TUN_F_CSUM | T6_TUN_F_USO4 | T6_TUN_F_USO6)) == 0) {
    uso = 1;
    if (ioctl(fd, TUNSETOFFLOAD, 0UL) < 0) {
      int e = errno;
      close(fd);
      throw_errno(env, e, "tunOpen(%s): ioctl TUNSETOFFLOAD 0", ifr.ifr_name);
      return NULL;
    }
  }
  napi_value res, jfd, jname, juso;
  if (napi_create_object(env, &res) != napi_ok || napi_create_int32(env, fd, &jfd) != napi_ok ||
      napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &jname) != napi_ok ||
      napi_get_boolean(env, uso, &juso) != napi_ok ||
      napi_set_named_property(env, res, "fd", jfd) != napi_ok ||
      napi_set_named_property(env, res, "uso", juso) != napi_ok ||
      napi_set_named_property(env, res, "name", jname) != napi_ok) {
    close(fd);
    throw_napi(env, "tunOpen result");
    return NULL;
  }
  return res;
}

/* tunReadBatch(fd, arena, slotSize, maxPackets, lengths, stats?) -> count, or -errno if nothing was read.
 * Reads until EAGAIN or maxPackets. Packets longer than slotSize are dropped and counted in stats[0]. */
static napi_value tun_read_batch(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (get_args(env, info, 6, argv, "tunReadBatch")) return NULL;
  int fd;
  int64_t slot, max;
  uint8_t *arena;
  uint32_t *lengths, *stats;
  size_t arena_len, lengths_len, stats_len;
  if (get_fd(env, argv[0], &fd) ||
      get_typed(env, argv[1], "arena", napi_uint8_array, 0, (void **)&arena, &arena_len) ||
      get_int(env, argv[2], "slotSize", 1, MAX_SLOT, &slot) ||
      get_int(env, argv[3], "maxPackets", 0, MAX_PACKETS, &max) ||
      get_typed(env, argv[4], "lengths", napi_uint32_array, 0, (void **)&lengths, &lengths_len) ||
      get_typed(env, argv[5], "stats", napi_uint32_array, 1, (void **)&stats, &stats_len) ||
      check_arena(env, arena_len, slot, max, lengths_len))
    return NULL;
  int64_t n = 0;
  uint32_t truncated = 0;
  int err = 0;
  /* TUN read() returns min(packet, buffer) without saying it cut: a one-byte overflow iovec tells. */
  uint8_t overflow;
  struct iovec iov[2];
  iov[1].iov_base = &overflow;
  iov[1].iov_len = 1;
  while (n < max) {
    iov[0].iov_base = arena + (size_t)n * (size_t)slot;
    iov[0].iov_len = (size_t)slot;
    ssize_t r = readv(fd, iov, 2);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    if (r > slot) {
      truncated++;
      continue;
    }
    lengths[n++] = (uint32_t)r;
  }
  if (stats_len >= 1) stats[0] += truncated;
  if (n == 0 && err != 0) return make_int(env, -err);
  return make_int(env, n);
}

/* The (fd, buf, offset, length) arguments tunWrite and rawSend share: checked, then the slice they name. */
static int get_fd_slice(napi_env env, napi_value *argv, const char *fname, int *fd, uint8_t **p, size_t *n) {
  uint8_t *buf;
  size_t len;
  int64_t off, cnt;
  if (get_fd(env, argv[0], fd) || get_typed(env, argv[1], "buf", napi_uint8_array, 0, (void **)&buf, &len) ||
      get_int(env, argv[2], "offset", 0, INT32_MAX, &off) || get_int(env, argv[3], "length", 0, INT32_MAX, &cnt))
    return 1;
  if ((uint64_t)off + (uint64_t)cnt > len) {
    throw_range(env, "%s: offset %lld + length %lld exceeds buffer of %zu bytes", fname, (long long)off,
                (long long)cnt, len);
    return 1;
  }
  *p = buf + off;
  *n = (size_t)cnt;
  return 0;
}

/* tunWrite(fd, buf, offset, length) -> bytes written, -1 on EAGAIN, -errno on other errors. One write = one packet.
 * (EPERM is 1 and so would read as EAGAIN; write(2) on a TUN fd never fails with EPERM.) */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv, "tunWrite")) return NULL;
  int fd;
  uint8_t *p;
  size_t n;
  if (get_fd_slice(env, argv, "tunWrite", &fd, &p, &n)) return NULL;
  for (;;) {
    ssize_t r = write(fd, p, n);
    if (r >= 0) return make_int(env, r);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    return make_int(env, -errno);
  }
}

/* tunWriteBatch(fd, arena, offsets, lengths, count, results) -> packets written.
 * Packet i is arena[offsets[i] .. offsets[i]+lengths[i]); each is its own write() (a TUN write is one packet;
 * writev of several would deliver only the first). results[i] (Int32Array) gets the bytes written or -errno
 * (EAGAIN included, as -EAGAIN). One JS->C transition for the whole batch. */
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (get_args(env, info, 6, argv, "tunWriteBatch")) return NULL;
  int fd;
  int64_t count;
  uint8_t *arena;
  uint32_t *offs, *lens;
  int32_t *res;
  size_t arena_len, offs_len, lens_len, res_len;
  if (get_fd(env, argv[0], &fd) ||
      get_typed(env, argv[1], "arena", napi_uint8_array, 0, (void **)&arena, &arena_len) ||
      get_typed(env, argv[2], "offsets", napi_uint32_array, 0, (void **)&offs, &offs_len) ||
      get_typed(env, argv[3], "lengths", napi_uint32_array, 0, (void **)&lens, &lens_len) ||
      get_int(env, argv[4], "count", 0, MAX_PACKETS, &count) ||
      get_typed(env, argv[5], "results", napi_int32_array, 0, (void **)&res, &res_len))
    return NULL;
  size_t c = (size_t)count;
  if (offs_len < c || lens_len < c || res_len < c) {
    throw_range(env, "tunWriteBatch: count %lld exceeds the length of offsets/lengths/results", (long long)count);
    return NULL;
  }
  for (size_t i = 0; i < c; i++) {
    if ((uint64_t)offs[i] + (uint64_t)lens[i] > arena_len) {
      throw_range(env, "tunWriteBatch: packet %zu (offset %u, length %u) exceeds the arena of %zu bytes", i, offs[i],
                  lens[i], arena_len);
      return NULL;
    }
  }
  int64_t ok = 0;
  for (size_t i = 0; i < c; i++) {
    for (;;) {
      ssize_t r = write(fd, arena + offs[i], lens[i]);
      if (r >= 0) {
        res[i] = (int32_t)r;
        ok++;
        break;
      }
      if (errno == EINTR) continue;
      res[i] = -errno;
      break;
    }
  }
  return make_int(env, ok);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* UDP (IPv4) */

static int set_buf(int fd, int force_opt, int opt, int64_t size) {
  int v = (int)size;
  /* SO_*BUFFORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN; fall back to the capped option. */
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

static int get_sockopt_int(int fd, int level, int opt) {
  int v = 0;
  socklen_t l = sizeof v;
  if (getsockopt(fd, level, opt, &v, &l) < 0) return -1;
  return v;
}

static int set_prop_int(napi_env env, napi_value obj, const char *key, int64_t v) {
  napi_value jv;
  if (napi_create_int64(env, v, &jv) != napi_ok || napi_set_named_property(env, obj, key, jv) != napi_ok) return -1;
  return 0;
}

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
/* Segments a UDP GSO/GRO message can hold: UDP_MAX_SEGMENTS (128 since Linux 6.x; GRO stops at 64). */
#define UDP_SEGS_MAX 128

/* udpOpen(bindAddr, port, {rcvbuf?, sndbuf?, reuseAddr?, freebind?, gro?}) -> {fd, port, rcvbuf, sndbuf, gro}
 * gro: UDP_GRO on (Linux >= 5.0): runs of datagrams of one flow may arrive as one message with their segment size
 * (udpRecvBatch with offsets splits them back). The result's gro says whether the kernel took it. */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv, "udpOpen")) return NULL;
  napi_valuetype t;
  char addr[64];
  size_t alen = 0;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_string) {
    throw_type(env, "udpOpen: bindAddr must be a dotted IPv4 string");
    return NULL;
  }
  NAPI_OK(napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &alen));
  struct in_addr a;
  if (inet_pton(AF_INET, addr, &a) != 1) {
    throw_type(env, "udpOpen: bindAddr \"%s\" is not a dotted IPv4 address", addr);
    return NULL;
  }
  int64_t port, rcvbuf = 0, sndbuf = 0;
  int has_rcv, has_snd, reuse, freebind, want_gro;
  if (get_int(env, argv[1], "port", 0, 65535, &port) ||
      get_int_prop(env, argv[2], "rcvbuf", 1, INT_MAX / 2, &has_rcv, &rcvbuf) ||
      get_int_prop(env, argv[2], "sndbuf", 1, INT_MAX / 2, &has_snd, &sndbuf) ||
      get_bool_prop(env, argv[2], "reuseAddr", &reuse) || get_bool_prop(env, argv[2], "freebind", &freebind) ||
      get_bool_prop(env, argv[2], "gro", &want_gro))
    return NULL;

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, errno, "udpOpen: socket");
    return NULL;
  }
  int one = 1;
  const char *step = NULL;
  /* IP_PKTINFO: each datagram carries the local address it was sent to, so a socket bound to 0.0.0.0 knows which
   * of its addresses was used (a Teredo server has two, RFC 4380 §5.3.1) and can answer from the same one. */
  if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0) step = "setsockopt IP_PKTINFO";
  else if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) step = "setsockopt SO_REUSEADDR";
  else if (freebind && setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one) < 0) step = "setsockopt IP_FREEBIND";
  else if (has_rcv && set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf) < 0) step = "setsockopt SO_RCVBUF";
  else if (has_snd && set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf) < 0) step = "setsockopt SO_SNDBUF";
  if (step == NULL) {
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr = a;
    sin.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) step = "bind";
  }
  struct sockaddr_in bound;
  socklen_t blen = sizeof bound;
  if (step == NULL && getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) step = "getsockname";
  if (step != NULL) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "udpOpen(%s:%lld): %s", addr, (long long)port, step);
    return NULL;
  }
  /* A kernel without UDP_GRO (ENOPROTOOPT) just delivers datagrams one by one: not an error. */
  int gro = want_gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  napi_value res, jgro;
  if (napi_create_object(env, &res) != napi_ok || set_prop_int(env, res, "fd", fd) ||
      set_prop_int(env, res, "port", ntohs(bound.sin_port)) ||
      set_prop_int(env, res, "rcvbuf", get_sockopt_int(fd, SOL_SOCKET, SO_RCVBUF)) ||
      set_prop_int(env, res, "sndbuf", get_sockopt_int(fd, SOL_SOCKET, SO_SNDBUF)) ||
      napi_get_boolean(env, gro, &jgro) != napi_ok || napi_set_named_property(env, res, "gro", jgro) != napi_ok) {
    close(fd);
    throw_napi(env, "udpOpen result");
    return NULL;
  }
  return res;
}

typedef union {
  char buf[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(int))];
  struct cmsghdr align;
} recv_cmsg;

/* udpRecvBatch(fd, arena, slotSize, maxMessages, lengths, srcAddrs, srcPorts, dstAddrs, stats?, offsets?) -> count,
 * or -errno when nothing was received.
 * Message k is received into arena[k*slotSize]; addresses are host-order uint32. Truncated messages (longer than
 * slotSize) are dropped and counted in stats[0].
 * Without offsets, datagram i is at arena[i*slotSize] (the batch is compacted over dropped messages) and the count is
 * of messages. With offsets, entry i is arena[offsets[i], +lengths[i]) and a message that came with a UDP_GRO
 * segment size g (a socket with gro on) is split into its datagrams: g bytes each, the last one shorter or equal;
 * every output array then needs maxMessages * 128 entries. stats (4 entries) [1] += such messages, [2] += the
 * datagrams they held, [3] += messages received (truncated ones too: fewer than maxMessages means drained). */
static napi_value udp_recv_batch(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (get_args(env, info, 10, argv, "udpRecvBatch")) return NULL;
  int fd;
  int64_t slot, max;
  uint8_t *arena;
  uint32_t *lengths, *src, *dst, *stats, *offs = NULL;
  uint16_t *sport;
  size_t arena_len, lengths_len, src_len, sport_len, dst_len, stats_len, offs_len = 0;
  if (get_fd(env, argv[0], &fd) ||
      get_typed(env, argv[1], "arena", napi_uint8_array, 0, (void **)&arena, &arena_len) ||
      get_int(env, argv[2], "slotSize", 1, MAX_SLOT, &slot) ||
      get_int(env, argv[3], "maxPackets", 0, MAX_PACKETS, &max) ||
      get_typed(env, argv[4], "lengths", napi_uint32_array, 0, (void **)&lengths, &lengths_len) ||
      get_typed(env, argv[5], "srcAddrs", napi_uint32_array, 0, (void **)&src, &src_len) ||
      get_typed(env, argv[6], "srcPorts", napi_uint16_array, 0, (void **)&sport, &sport_len) ||
      get_typed(env, argv[7], "dstAddrs", napi_uint32_array, 0, (void **)&dst, &dst_len) ||
      get_typed(env, argv[8], "stats", napi_uint32_array, 1, (void **)&stats, &stats_len) ||
      get_typed(env, argv[9], "offsets", napi_uint32_array, 1, (void **)&offs, &offs_len) ||
      check_arena(env, arena_len, slot, max, lengths_len))
    return NULL;
  /* Entries the output arrays must hold. */
  uint64_t need = offs != NULL ? (uint64_t)max * UDP_SEGS_MAX : (uint64_t)max;
  if (lengths_len < need || src_len < need || sport_len < need || dst_len < need || (offs != NULL && offs_len < need)) {
    throw_range(env, "udpRecvBatch: lengths/srcAddrs/srcPorts/dstAddrs%s need %llu entries", offs != NULL ? "/offsets" : "",
                (unsigned long long)need);
    return NULL;
  }
  struct mmsghdr msgs[CHUNK];
  struct iovec iov[CHUNK];
  struct sockaddr_in from[CHUNK];
  recv_cmsg ctl[CHUNK];
  int64_t m = 0; /* messages received so far: message m+k goes to slot m+k */
  int64_t w = 0; /* output entries so far */
  uint32_t truncated = 0, gro_msgs = 0, gro_segs = 0;
  int err = 0;
  while (m < max) {
    int64_t n = max - m < CHUNK ? max - m : CHUNK;
    for (int64_t k = 0; k < n; k++) {
      iov[k].iov_base = arena + (size_t)(m + k) * (size_t)slot;
      iov[k].iov_len = (size_t)slot;
      memset(&msgs[k], 0, sizeof msgs[k]);
      msgs[k].msg_hdr.msg_name = &from[k];
      msgs[k].msg_hdr.msg_namelen = sizeof from[k];
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
      msgs[k].msg_hdr.msg_control = ctl[k].buf;
      msgs[k].msg_hdr.msg_controllen = sizeof ctl[k].buf;
    }
    int r = recvmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    for (int k = 0; k < r; k++) {
      if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) {
        truncated++;
        continue;
      }
      uint32_t len = msgs[k].msg_len;
      uint32_t d = 0, seg = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[k].msg_hdr); c != NULL; c = CMSG_NXTHDR(&msgs[k].msg_hdr, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          struct in_pktinfo pi;
          memcpy(&pi, CMSG_DATA(c), sizeof pi);
          d = ntohl(pi.ipi_addr.s_addr);
        } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          if (g > 0) seg = (uint32_t)g;
        }
      }
      uint32_t s_addr = ntohl(from[k].sin_addr.s_addr);
      uint16_t s_port = ntohs(from[k].sin_port);
      size_t base = (size_t)(m + k) * (size_t)slot;
      if (offs == NULL) {
        /* One entry per message, compacted into slot w. A GRO message cannot be split here: dropped (counted). */
        if (seg != 0 && len > seg) {
          truncated++;
          continue;
        }
        if ((int64_t)w != m + k) memmove(arena + (size_t)w * (size_t)slot, arena + base, len);
        lengths[w] = len;
        src[w] = s_addr;
        sport[w] = s_port;
        dst[w] = d;
        w++;
        continue;
      }
      uint32_t step = seg != 0 && len > seg ? seg : (len > 0 ? len : 1);
      uint32_t parts = 0;
      uint32_t at = 0;
      do {
        uint32_t l = len - at < step ? len - at : step;
        offs[w] = (uint32_t)(base + at);
        lengths[w] = l;
        src[w] = s_addr;
        sport[w] = s_port;
        dst[w] = d;
        w++;
        parts++;
        at += l;
      } while (at < len && parts < UDP_SEGS_MAX);
      if (at < len) truncated++; /* more segments than any kernel sends: the rest is dropped */
      if (parts > 1) {
        gro_msgs++;
        gro_segs += parts;
      }
    }
    m += r;
    if (r < n) break; /* drained */
  }
  if (stats_len >= 1) stats[0] += truncated;
  if (stats_len >= 3) {
    stats[1] += gro_msgs;
    stats[2] += gro_segs;
  }
  if (stats_len >= 4) stats[3] += (uint32_t)m;
  if (w == 0 && m == 0 && err != 0) return make_int(env, -err);
  return make_int(env, w);
}

/* udpSendBatch(fd, arena, offsets, lengths, dstAddrs, dstPorts, srcAddrs|null, count, errnos|null, gsoSegments?,
 *   gsoStats?) -> consumed.
 * Packet i is arena[offsets[i] .. offsets[i]+lengths[i]) to dstAddrs[i]:dstPorts[i], from srcAddrs[i] when given
 * and non-zero (IP_PKTINFO ipi_spec_dst). A packet the kernel refuses (EMSGSIZE, ENETUNREACH, EPERM, EINVAL...)
 * is skipped; errnos[i] records the errno (0 = sent). Returns how many packets were consumed (sent or skipped):
 * less than count only when the socket buffer is full (EAGAIN), and the caller resumes there on writability.
 * Only misuse of the fd itself (EBADF, ENOTSOCK, EFAULT) throws.
 *
 * gsoSegments > 1 turns on UDP GSO: a run of consecutive packets with the same destination and source whose
 * lengths equal the first's (the last may be shorter), at most gsoSegments of them and 65000 bytes in all, goes
 * out as one message (one iovec per packet) with a UDP_SEGMENT control message: the kernel handles one skb down to
 * the device (or the first place that cannot take it) and splits it into exactly those datagrams. If the kernel
 * refuses a GSO message (EIO: no checksum offload on the route's device, EINVAL, EOPNOTSUPP...), the rest of this
 * call goes without GSO. gsoStats (Uint32Array, 2): [0] += GSO messages sent, [1] += datagrams they carried. */
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#define GSO_MAX_BYTES 65000

typedef union {
  char buf[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
  struct cmsghdr align;
} send_cmsg;

static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  if (get_args(env, info, 11, argv, "udpSendBatch")) return NULL;
  int fd;
  int64_t count, gso_max = 0;
  uint8_t *arena;
  uint32_t *offs, *lens, *dst, *src, *errs;
  uint16_t *dport;
  size_t arena_len, offs_len, lens_len, dst_len, dport_len, src_len, errs_len;
  if (get_fd(env, argv[0], &fd) ||
      get_typed(env, argv[1], "arena", napi_uint8_array, 0, (void **)&arena, &arena_len) ||
      get_typed(env, argv[2], "offsets", napi_uint32_array, 0, (void **)&offs, &offs_len) ||
      get_typed(env, argv[3], "lengths", napi_uint32_array, 0, (void **)&lens, &lens_len) ||
      get_typed(env, argv[4], "dstAddrs", napi_uint32_array, 0, (void **)&dst, &dst_len) ||
      get_typed(env, argv[5], "dstPorts", napi_uint16_array, 0, (void **)&dport, &dport_len) ||
      get_typed(env, argv[6], "srcAddrs", napi_uint32_array, 1, (void **)&src, &src_len) ||
      get_int(env, argv[7], "count", 0, MAX_PACKETS, &count) ||
      get_typed(env, argv[8], "errnos", napi_uint32_array, 1, (void **)&errs, &errs_len))
    return NULL;
  if (!is_nullish(env, argv[9]) && get_int(env, argv[9], "gsoSegments", 0, CHUNK, &gso_max)) return NULL;
  uint32_t *gstats = NULL;
  size_t gstats_len = 0;
  if (get_typed(env, argv[10], "gsoStats", napi_uint32_array, 1, (void **)&gstats, &gstats_len)) return NULL;
  if (gstats != NULL && gstats_len < 2) {
    throw_range(env, "udpSendBatch: gsoStats needs 2 elements");
    return NULL;
  }
  size_t c = (size_t)count;
  if (offs_len < c || lens_len < c || dst_len < c || dport_len < c || (src != NULL && src_len < c) ||
      (errs != NULL && errs_len < c)) {
    throw_range(env, "udpSendBatch: count %lld exceeds the length of offsets/lengths/dstAddrs/dstPorts/srcAddrs/errnos",
                (long long)count);
    return NULL;
  }
  for (size_t i = 0; i < c; i++) {
    if ((uint64_t)offs[i] + (uint64_t)lens[i] > arena_len) {
      throw_range(env, "udpSendBatch: packet %zu (offset %u, length %u) exceeds the arena of %zu bytes", i, offs[i],
                  lens[i], arena_len);
      return NULL;
    }
  }
  struct mmsghdr msgs[CHUNK];
  struct iovec iov[CHUNK];
  struct sockaddr_in to[CHUNK];
  send_cmsg ctl[CHUNK];
  size_t run[CHUNK]; /* packets in message k */
  int gso = gso_max > 1;
  size_t i = 0;
  while (i < c) {
    /* Messages k = 0.. over packets i.., at most CHUNK packets in all (one iovec each). */
    size_t n = 0, used = 0;
    while (used < CHUNK && i + used < c) {
      size_t j = i + used, k = n;
      size_t m = 1;
      if (gso) {
        uint32_t sj = src != NULL ? src[j] : 0;
        size_t total = lens[j];
        while (m < (size_t)gso_max && used + m < CHUNK && j + m < c && lens[j] > 0) {
          size_t q = j + m;
          if (dst[q] != dst[j] || dport[q] != dport[j] || (src != NULL ? src[q] : 0) != sj) break;
          if (lens[q] > lens[j] || lens[q] == 0 || total + lens[q] > GSO_MAX_BYTES) break;
          total += lens[q];
          m++;
          if (lens[q] < lens[j]) break; /* a shorter one ends the run */
        }
        /* lens[j+m-2] == lens[j] for all but the last by construction. */
      }
      memset(&msgs[k], 0, sizeof msgs[k]);
      memset(&to[k], 0, sizeof to[k]);
      to[k].sin_family = AF_INET;
      to[k].sin_addr.s_addr = htonl(dst[j]);
      to[k].sin_port = htons(dport[j]);
      for (size_t a = 0; a < m; a++) {
        iov[used + a].iov_base = arena + offs[j + a];
        iov[used + a].iov_len = lens[j + a];
      }
      msgs[k].msg_hdr.msg_name = &to[k];
      msgs[k].msg_hdr.msg_namelen = sizeof to[k];
      msgs[k].msg_hdr.msg_iov = &iov[used];
      msgs[k].msg_hdr.msg_iovlen = m;
      size_t clen = 0;
      int want_pi = src != NULL && src[j] != 0;
      if (want_pi || m > 1) {
        memset(&ctl[k], 0, sizeof ctl[k]);
        msgs[k].msg_hdr.msg_control = ctl[k].buf;
        msgs[k].msg_hdr.msg_controllen = sizeof ctl[k].buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[k].msg_hdr);
        if (want_pi) {
          cm->cmsg_level = IPPROTO_IP;
          cm->cmsg_type = IP_PKTINFO;
          cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
          struct in_pktinfo pi;
          memset(&pi, 0, sizeof pi);
          pi.ipi_spec_dst.s_addr = htonl(src[j]);
          memcpy(CMSG_DATA(cm), &pi, sizeof pi);
          clen += CMSG_SPACE(sizeof(struct in_pktinfo));
          cm = CMSG_NXTHDR(&msgs[k].msg_hdr, cm);
        }
        if (m > 1) {
          cm->cmsg_level = SOL_UDP;
          cm->cmsg_type = UDP_SEGMENT;
          cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
          uint16_t seg = (uint16_t)lens[j];
          memcpy(CMSG_DATA(cm), &seg, sizeof seg);
          clen += CMSG_SPACE(sizeof(uint16_t));
        }
        msgs[k].msg_hdr.msg_controllen = clen;
      }
      run[k] = m;
      used += m;
      n++;
    }
    int r = sendmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT);
    if (r > 0) {
      size_t sent = 0;
      for (int k = 0; k < r; k++) {
        sent += run[k];
        if (run[k] > 1 && gstats != NULL) {
          gstats[0]++;
          gstats[1] += (uint32_t)run[k];
        }
      }
      if (errs != NULL) memset(errs + i, 0, sent * sizeof *errs);
      i += sent;
      continue; /* if r < n, the next call reports the failing message's errno */
    }
    int e = r == 0 ? EAGAIN : errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) break;
    if (e == EBADF || e == ENOTSOCK || e == EFAULT) {
      throw_errno(env, e, "udpSendBatch(fd %d)", fd);
      return NULL;
    }
    if (run[0] > 1 && (e == EIO || e == EINVAL || e == EOPNOTSUPP || e == ENOPROTOOPT || e == EMSGSIZE)) {
      gso = 0; /* the same packets again, one datagram each: their own errors, if any, are theirs */
      continue;
    }
    if (errs != NULL) errs[i] = (uint32_t)e;
    i++;
  }
  return make_int(env, (int64_t)i);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* raw sockets */

/* rawOpen(family 4|6, protocol) -> fd. (6, 255 = IPPROTO_RAW) sends whole IPv6 packets (the kernel sets hdrincl for
 * IPPROTO_RAW); (4, 41) sends and receives IPv6-in-IPv4 for ISATAP/6to4 (received packets include the IPv4
 * header). */
static napi_value raw_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, "rawOpen")) return NULL;
  int64_t fam, proto;
  if (get_int(env, argv[0], "family", 4, 6, &fam) || get_int(env, argv[1], "protocol", 0, 255, &proto)) return NULL;
  if (fam != 4 && fam != 6) {
    throw_range(env, "rawOpen: family must be 4 or 6");
    return NULL;
  }
  int fd = socket(fam == 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, (int)proto);
  if (fd < 0) {
    throw_errno(env, errno, "rawOpen(IPv%lld, protocol %lld): socket", (long long)fam, (long long)proto);
    return NULL;
  }
  return make_int(env, fd);
}

/* rawSend(fd, buf, offset, length, dst?) -> bytes, or -errno (EAGAIN is -EAGAIN here, not -1 as in tunWrite: a raw
 * send can fail with EPERM, e.g. when netfilter drops it, and -1 must not be ambiguous). dst: a host-order uint32
 * (IPv4), a 16-byte Uint8Array (IPv6), or undefined to take the destination from the packet's own IPv4/IPv6
 * header. */
static napi_value raw_send(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (get_args(env, info, 5, argv, "rawSend")) return NULL;
  int fd;
  uint8_t *p;
  size_t n;
  if (get_fd_slice(env, argv, "rawSend", &fd, &p, &n)) return NULL;
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  napi_valuetype t;
  NAPI_OK(napi_typeof(env, argv[4], &t));
  if (t == napi_number) {
    int64_t a;
    if (get_int(env, argv[4], "dst", 0, UINT32_MAX, &a)) return NULL;
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl((uint32_t)a);
    sl = sizeof *s4;
  } else if (t == napi_undefined || t == napi_null) {
    if (n >= 40 && (p[0] >> 4) == 6) {
      s6->sin6_family = AF_INET6;
      memcpy(&s6->sin6_addr, p + 24, 16);
      sl = sizeof *s6;
    } else if (n >= 20 && (p[0] >> 4) == 4) {
      s4->sin_family = AF_INET;
      memcpy(&s4->sin_addr, p + 16, 4);
      sl = sizeof *s4;
    } else {
      throw_type(env, "rawSend: no dst given and the packet has no IPv4/IPv6 header to take it from");
      return NULL;
    }
  } else {
    uint8_t *a;
    size_t al;
    if (get_typed(env, argv[4], "dst", napi_uint8_array, 0, (void **)&a, &al)) return NULL;
    if (al != 16) {
      throw_range(env, "rawSend: an IPv6 dst must be 16 bytes, got %zu", al);
      return NULL;
    }
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, a, 16);
    sl = sizeof *s6;
  }
  for (;;) {
    ssize_t r = sendto(fd, p, n, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);
    if (r >= 0) return make_int(env, r);
    if (errno == EINTR) continue;
    return make_int(env, -errno);
  }
}

/* rawRecvBatch(fd, arena, slotSize, maxPackets, lengths, srcAddrs|null, stats?) -> count, or -errno when nothing
 * was received. srcAddrs (Uint8Array, 16 bytes per packet) gets each source as IPv6 bytes, IPv4 sources as
 * ::ffff:a.b.c.d. Truncated packets are dropped and counted in stats[0]. */
static napi_value raw_recv_batch(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (get_args(env, info, 7, argv, "rawRecvBatch")) return NULL;
  int fd;
  int64_t slot, max;
  uint8_t *arena, *srcs;
  uint32_t *lengths, *stats;
  size_t arena_len, lengths_len, srcs_len, stats_len;
  if (get_fd(env, argv[0], &fd) ||
      get_typed(env, argv[1], "arena", napi_uint8_array, 0, (void **)&arena, &arena_len) ||
      get_int(env, argv[2], "slotSize", 1, MAX_SLOT, &slot) ||
      get_int(env, argv[3], "maxPackets", 0, MAX_PACKETS, &max) ||
      get_typed(env, argv[4], "lengths", napi_uint32_array, 0, (void **)&lengths, &lengths_len) ||
      get_typed(env, argv[5], "srcAddrs", napi_uint8_array, 1, (void **)&srcs, &srcs_len) ||
      get_typed(env, argv[6], "stats", napi_uint32_array, 1, (void **)&stats, &stats_len) ||
      check_arena(env, arena_len, slot, max, lengths_len))
    return NULL;
  if (srcs != NULL && srcs_len < (size_t)max * 16) {
    throw_range(env, "rawRecvBatch: srcAddrs needs %lld bytes (16 per packet)", (long long)max * 16);
    return NULL;
  }
  struct mmsghdr msgs[CHUNK];
  struct iovec iov[CHUNK];
  struct sockaddr_storage from[CHUNK];
  int64_t w = 0;
  uint32_t truncated = 0;
  int err = 0;
  while (w < max) {
    int64_t n = max - w < CHUNK ? max - w : CHUNK;
    for (int64_t k = 0; k < n; k++) {
      iov[k].iov_base = arena + (size_t)(w + k) * (size_t)slot;
      iov[k].iov_len = (size_t)slot;
      memset(&msgs[k], 0, sizeof msgs[k]);
      msgs[k].msg_hdr.msg_name = &from[k];
      msgs[k].msg_hdr.msg_namelen = sizeof from[k];
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    int r = recvmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    int64_t base = w;
    for (int k = 0; k < r; k++) {
      if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) {
        truncated++;
        continue;
      }
      uint32_t len = msgs[k].msg_len;
      if (w != base + k) memmove(arena + (size_t)w * (size_t)slot, iov[k].iov_base, len);
      lengths[w] = len;
      if (srcs != NULL) {
        uint8_t *s = srcs + (size_t)w * 16;
        memset(s, 0, 16);
        if (from[k].ss_family == AF_INET6) {
          memcpy(s, &((struct sockaddr_in6 *)&from[k])->sin6_addr, 16);
        } else if (from[k].ss_family == AF_INET) {
          s[10] = 0xff;
          s[11] = 0xff;
          memcpy(s + 12, &((struct sockaddr_in *)&from[k])->sin_addr, 4);
        }
      }
      w++;
    }
    if (r < n) break;
  }
  if (stats_len >= 1) stats[0] += truncated;
  if (w == 0 && err != 0) return make_int(env, -err);
  return make_int(env, w);
}

/* close(fd): throws only on EBADF (closing twice is a bug in the caller). */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, "close")) return NULL;
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  /* Linux releases the fd even when close() reports EINTR: never retry. */
  if (close(fd) < 0 && errno == EBADF) {
    throw_errno(env, EBADF, "close(%d)", fd);
    return NULL;
  }
  return undefined(env);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* uv_poll readiness on the main loop */

typedef struct t6inst t6inst;

typedef struct t6poll {
  uv_poll_t h;
  napi_env env;
  napi_ref cb;
  napi_async_context actx;
  t6inst *inst;
  struct t6poll *prev, *next; /* the instance's list of open polls */
  int fd;
  int open;      /* until pollStop or env cleanup */
  int uv_closed; /* uv_close callback ran */
  int js_dead;   /* the JS handle was garbage collected */
  int in_cb;     /* inside napi_make_callback: the async context must outlive it */
} t6poll;

/* Per-env state (the addon may be loaded in several worker threads). It lives until the env is torn down AND
 * every uv handle it made has finished closing: a worker's env unloads this library right after teardown, so a
 * uv_close callback still pending then would jump into unmapped code. The async cleanup hook holds teardown
 * (Node keeps running the loop) until the last close callback has run. */
struct t6inst {
  t6poll *head;     /* open polls */
  unsigned live;    /* uv handles initialised and not yet through their close callback */
  int tearing_down;
  napi_async_cleanup_hook_handle cleanup;
};

static void inst_finish(t6inst *inst) {
  napi_remove_async_cleanup_hook(inst->cleanup);
  free(inst);
}

static void poll_free_if_done(t6poll *p) {
  if (p->uv_closed && p->js_dead) free(p);
}

static void poll_on_close(uv_handle_t *h) {
  t6poll *p = (t6poll *)h->data;
  t6inst *inst = p->inst;
  p->uv_closed = 1;
  poll_free_if_done(p);
  if (--inst->live == 0 && inst->tearing_down) inst_finish(inst);
}

static void poll_close(t6poll *p) {
  if (!p->open) return;
  p->open = 0;
  uv_poll_stop(&p->h);
  if (p->prev) p->prev->next = p->next;
  else p->inst->head = p->next;
  if (p->next) p->next->prev = p->prev;
  p->prev = p->next = NULL;
  napi_delete_reference(p->env, p->cb);
  p->cb = NULL;
  /* Inside the callback, poll_cb destroys the context once napi_make_callback has returned. During env teardown
   * async hooks may no longer run; the context is then left to the env. */
  if (!p->in_cb) {
    if (!p->inst->tearing_down && p->actx) napi_async_destroy(p->env, p->actx);
    p->actx = NULL;
  }
  uv_close((uv_handle_t *)&p->h, poll_on_close);
}

static void poll_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  t6poll *p = (t6poll *)data;
  p->js_dead = 1;
  poll_free_if_done(p);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  t6poll *p = (t6poll *)h->data;
  if (!p->open) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, global, argv[2], result;
  if (napi_get_reference_value(env, p->cb, &fn) == napi_ok && fn != NULL && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, status, &argv[0]) == napi_ok && napi_create_int32(env, events, &argv[1]) == napi_ok) {
    /* make_callback (not call_function) so that process.nextTick and promise jobs run after the callback, as for
     * any other I/O callback. */
    p->in_cb = 1;
    napi_status s = napi_make_callback(env, p->actx, global, fn, 2, argv, &result);
    p->in_cb = 0;
    if (!p->open && p->actx) { /* pollStop was called from the callback */
      napi_async_destroy(env, p->actx);
      p->actx = NULL;
    }
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (s == napi_pending_exception || pending) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void inst_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  t6inst *inst = (t6inst *)arg;
  (void)handle; /* the same as inst->cleanup */
  inst->tearing_down = 1;
  while (inst->head) poll_close(inst->head);
  if (inst->live == 0) inst_finish(inst);
}

static int parse_events(napi_env env, napi_value v, int *out) {
  napi_valuetype t;
  char s[8];
  size_t n = 0;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, v, s, sizeof s, &n) != napi_ok) {
    throw_type(env, "events must be 'r', 'w', 'rw' or ''");
    return -1;
  }
  if (strcmp(s, "") == 0) *out = 0;
  else if (strcmp(s, "r") == 0) *out = UV_READABLE;
  else if (strcmp(s, "w") == 0) *out = UV_WRITABLE;
  else if (strcmp(s, "rw") == 0 || strcmp(s, "wr") == 0) *out = UV_READABLE | UV_WRITABLE;
  else {
    throw_type(env, "events must be 'r', 'w', 'rw' or '', got '%s'", s);
    return -1;
  }
  return 0;
}

static int get_poll(napi_env env, napi_value v, t6poll **out) {
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok ||
      data == NULL) {
    throw_type(env, "handle must be a poll handle returned by pollStart");
    return -1;
  }
  *out = (t6poll *)data;
  return 0;
}

/* pollStart(fd, events, callback(status, events), {unref?}) -> handle. status is 0 or a negative libuv error;
 * events has bit 1 readable, 2 writable. One poll per fd (libuv's rule). */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv, "pollStart")) return NULL;
  int fd, events, unref;
  if (get_fd(env, argv[0], &fd) || parse_events(env, argv[1], &events)) return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
    throw_type(env, "pollStart: callback must be a function");
    return NULL;
  }
  if (get_bool_prop(env, argv[3], "unref", &unref)) return NULL;
  t6inst *inst = NULL;
  NAPI_OK(napi_get_instance_data(env, (void **)&inst));
  if (inst == NULL) {
    napi_throw_error(env, "ERR_TRANSIT6_NAPI", "transit6 native: instance data missing");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  NAPI_OK(napi_get_uv_event_loop(env, &loop));
  t6poll *p = (t6poll *)calloc(1, sizeof *p);
  if (p == NULL) {
    throw_errno(env, ENOMEM, "pollStart");
    return NULL;
  }
  int rc = uv_poll_init(loop, &p->h, fd);
  if (rc < 0) {
    free(p);
    throw_errno(env, -rc, "pollStart(fd %d): uv_poll_init", fd);
    return NULL;
  }
  inst->live++;
  p->h.data = p;
  p->env = env;
  p->inst = inst;
  p->fd = fd;
  p->open = 1;
  napi_value name, handle;
  if (napi_create_reference(env, argv[2], 1, &p->cb) != napi_ok ||
      napi_create_string_utf8(env, "transit6:poll", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &p->actx) != napi_ok) {
    if (p->cb) napi_delete_reference(env, p->cb);
    p->open = 0;
    p->js_dead = 1;
    uv_close((uv_handle_t *)&p->h, poll_on_close);
    throw_napi(env, "pollStart");
    return NULL;
  }
  p->next = inst->head;
  if (inst->head) inst->head->prev = p;
  inst->head = p;
  if (napi_create_external(env, p, poll_finalize, NULL, &handle) != napi_ok) {
    p->js_dead = 1;
    poll_close(p);
    throw_napi(env, "napi_create_external");
    return NULL;
  }
  if (events) {
    rc = uv_poll_start(&p->h, events, poll_cb);
    if (rc < 0) {
      poll_close(p);
      throw_errno(env, -rc, "pollStart(fd %d): uv_poll_start", fd);
      return NULL;
    }
  }
  if (unref) uv_unref((uv_handle_t *)&p->h);
  return handle;
}

/* pollUpdate(handle, events): '' pauses (the handle then keeps nothing alive). */
static napi_value poll_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, "pollUpdate")) return NULL;
  t6poll *p;
  int events;
  if (get_poll(env, argv[0], &p) || parse_events(env, argv[1], &events)) return NULL;
  if (!p->open) {
    napi_throw_error(env, "ERR_TRANSIT6_POLL_STOPPED", "pollUpdate: the poll handle was stopped");
    return NULL;
  }
  int rc = events ? uv_poll_start(&p->h, events, poll_cb) : uv_poll_stop(&p->h);
  if (rc < 0) {
    throw_errno(env, -rc, "pollUpdate(fd %d)", p->fd);
    return NULL;
  }
  return undefined(env);
}

/* pollRef(handle, ref): whether an active poll keeps the process alive. */
static napi_value poll_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv, "pollRef")) return NULL;
  t6poll *p;
  if (get_poll(env, argv[0], &p)) return NULL;
  bool ref;
  if (napi_get_value_bool(env, argv[1], &ref) != napi_ok) {
    throw_type(env, "pollRef: ref must be a boolean");
    return NULL;
  }
  if (p->open) {
    if (ref) uv_ref((uv_handle_t *)&p->h);
    else uv_unref((uv_handle_t *)&p->h);
  }
  return undefined(env);
}

/* pollStop(handle): stops and closes (uv_close); idempotent. Call it before closing the fd. */
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv, "pollStop")) return NULL;
  t6poll *p;
  if (get_poll(env, argv[0], &p)) return NULL;
  poll_close(p);
  return undefined(env);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* AF_UNIX datagrams (sd_notify(3): systemd's NOTIFY_SOCKET), which Node's dgram module cannot send. */

/*
 * unixDgramSend(path, buf, offset, length) -> bytes sent or -errno. One datagram on a fresh SOCK_DGRAM socket,
 * closed again. A path starting with '@' names the abstract namespace (the '@' becomes a NUL byte), as systemd
 * writes it in NOTIFY_SOCKET. Paths longer than sun_path throw RangeError.
 */
static napi_value unix_dgram_send(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv, "unixDgramSend")) return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_string) {
    throw_type(env, "unixDgramSend: path must be a string");
    return NULL;
  }
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t plen = 0;
  NAPI_OK(napi_get_value_string_utf8(env, argv[0], NULL, 0, &plen));
  if (plen == 0 || plen >= sizeof sa.sun_path) {
    throw_range(env, "unixDgramSend: path is %zu bytes, it must be 1 to %zu", plen, sizeof sa.sun_path - 1);
    return NULL;
  }
  NAPI_OK(napi_get_value_string_utf8(env, argv[0], sa.sun_path, sizeof sa.sun_path, &plen));
  if (strlen(sa.sun_path) != plen) {
    throw_type(env, "unixDgramSend: path contains a NUL byte");
    return NULL;
  }
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
  else salen += 1; /* the terminating NUL of a filesystem path */
  int dummy;
  uint8_t *p;
  size_t n;
  napi_value fake[4] = {NULL, argv[1], argv[2], argv[3]};
  napi_create_int32(env, 0, &fake[0]);
  if (get_fd_slice(env, fake, "unixDgramSend", &dummy, &p, &n)) return NULL;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_int(env, -errno);
  ssize_t r = sendto(fd, p, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
  int err = errno;
  close(fd);
  return make_int(env, r < 0 ? -err : r);
}

/* ------------------------------------------------------------------------------------------------------------ */

static napi_value init(napi_env env, napi_value exports) {
  t6inst *inst = (t6inst *)calloc(1, sizeof *inst);
  if (inst == NULL) {
    napi_throw_error(env, "ENOMEM", "transit6 native: out of memory");
    return NULL;
  }
  if (napi_set_instance_data(env, inst, NULL, NULL) != napi_ok ||
      napi_add_async_cleanup_hook(env, inst_cleanup, inst, &inst->cleanup) != napi_ok) {
    free(inst);
    throw_napi(env, "transit6 init");
    return NULL;
  }
  napi_property_descriptor props[] = {
#define FN(js, c) {js, NULL, c, NULL, NULL, NULL, napi_enumerable, NULL}
    FN("tunOpen", tun_open),         FN("tunReadBatch", tun_read_batch), FN("tunWrite", tun_write), FN("tunWriteBatch", tun_write_batch),
    FN("udpOpen", udp_open),         FN("udpRecvBatch", udp_recv_batch), FN("udpSendBatch", udp_send_batch),
    FN("rawOpen", raw_open),         FN("rawSend", raw_send),            FN("rawRecvBatch", raw_recv_batch),
    FN("pollStart", poll_start),     FN("pollUpdate", poll_update),      FN("pollRef", poll_ref),
    FN("pollStop", poll_stop),       FN("close", close_fd),              FN("unixDgramSend", unix_dgram_send),
#undef FN
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
