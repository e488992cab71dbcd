/**
 * The native I/O addon (native/transit6.c, built to build/Release/transit6.node by `npm ci` or
 * `npm run build:native`), typed. Loaded lazily on first use so that code paths which never touch a device (the
 * simulator, `explain`) run without it.
 *
 * Conventions of the binding (see the C file for the details):
 * - Addresses are IPv4 host-order uint32 numbers (0xC6336401 is 198.51.100.1), as in src/wire/ip.ts.
 * - Setup calls (tunOpen, udpOpen, rawOpen, pollStart) throw an Error whose `code` is the errno name.
 * - Hot-path calls never throw for OS errors: they return -errno (or -1 for EAGAIN where documented) or record a
 *   per-packet errno. They throw TypeError/RangeError for local misuse (wrong types, arenas too small).
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';

export interface TunOpenOptions {
  /** IFF_MULTI_QUEUE: open the same device again for more queues. */
  multiQueue?: boolean;
  /** IFF_VNET_HDR: every packet read or written starts with a virtio_net_hdr (10 bytes by default). */
  vnetHdr?: boolean;
}

export interface UdpOpenOptions {
  /** SO_RCVBUF in bytes (SO_RCVBUFFORCE first, so root is not capped by net.core.rmem_max). */
  rcvbuf?: number;
  sndbuf?: number;
  reuseAddr?: boolean;
  /** IP_FREEBIND: bind to an address not (yet) configured. */
  freebind?: boolean;
  /** UDP_GRO (Linux >= 5.0): a run of one flow's datagrams may arrive as one message; udpRecvBatch with offsets
   *  splits it back. Refused by an older kernel without an error (the result's gro is false). */
  gro?: boolean;
}

/** The most datagrams one UDP GSO or GRO message holds (the kernel's UDP_MAX_SEGMENTS). */
export const UDP_SEGS_MAX = 128;

/** readable = 1, writable = 2 (libuv's UV_READABLE / UV_WRITABLE). */
export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;
export type PollEvents = '' | 'r' | 'w' | 'rw';
/** status: 0, or a negative libuv error code; events: POLL_READABLE | POLL_WRITABLE bits. */
export type PollCallback = (status: number, events: number) => void;
/** Opaque uv_poll_t handle. */
export type PollHandle = { readonly __brand: 'transit6-poll' };

export interface NativeBinding {
  /**
   * Opens /dev/net/tun with IFF_TUN | IFF_NO_PI, non-blocking, close-on-exec. `name` '' lets the kernel choose.
   * `uso`: with vnetHdr, whether the kernel takes GSO_UDP_L4 super-packets from the writer (TUNSETOFFLOAD accepted
   * TUN_F_USO4|USO6; Linux >= 6.2); reads are left without offloads either way.
   */
  tunOpen(name: string, opts?: TunOpenOptions): { fd: number; name: string; uso: boolean };
  /**
   * Reads packets until EAGAIN or maxPackets: packet i at arena[i*slotSize], its length in lengths[i]. Returns the
   * count, or -errno if the first read failed. Packets longer than slotSize are dropped and added to stats[0].
   */
  tunReadBatch(fd: number, arena: Uint8Array, slotSize: number, maxPackets: number, lengths: Uint32Array,
    stats?: Uint32Array | null): number;
  /**
   * One write() = one packet. Returns bytes written, -1 on EAGAIN, -errno on other errors (-1 cannot mean EPERM:
   * write(2) on a TUN fd never fails with it).
   */
  tunWrite(fd: number, buf: Uint8Array, offset: number, length: number): number;
  /**
   * Writes packets arena[offsets[i], offsets[i]+lengths[i]) for i < count, one write() each, in one call. results[i]
   * is the bytes written or -errno (EAGAIN as -11). Returns how many were written.
   */
  tunWriteBatch(fd: number, arena: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, results: Int32Array): number;

  /** A non-blocking UDP/IPv4 socket with IP_PKTINFO on. Returns the bound port and the actual buffer sizes. */
  udpOpen(bindAddr: string, port: number, opts?: UdpOpenOptions): { fd: number; port: number; rcvbuf: number; sndbuf: number; gro: boolean };
  /**
   * recvmmsg(MSG_DONTWAIT) until EAGAIN or maxPackets messages, message k into arena[k*slotSize]; dstAddrs[i] is
   * the local address a datagram was sent to (IP_PKTINFO). Returns the count of entries, or -errno if nothing was
   * received. Truncated messages are dropped and added to stats[0].
   * Without offsets, entry i is arena[i*slotSize, +lengths[i]) (compacted). With offsets, entry i is
   * arena[offsets[i], +lengths[i]) and a message coalesced by UDP_GRO is split into its datagrams (every output
   * array then needs maxPackets * UDP_SEGS_MAX entries); stats[1] += such messages, stats[2] += their datagrams,
   * stats[3] += messages received (fewer than maxPackets: the socket was drained).
   */
  udpRecvBatch(fd: number, arena: Uint8Array, slotSize: number, maxPackets: number, lengths: Uint32Array,
    srcAddrs: Uint32Array, srcPorts: Uint16Array, dstAddrs: Uint32Array, stats?: Uint32Array | null,
    offsets?: Uint32Array | null): number;
  /**
   * sendmmsg of packets 0..count-1 (arena[offsets[i], +lengths[i]) to dstAddrs[i]:dstPorts[i], source srcAddrs[i]
   * via IP_PKTINFO when non-zero). Packets the kernel refuses are skipped with errnos[i] = errno (0 = sent).
   * Returns how many were consumed (sent or skipped); fewer than count only on EAGAIN. gsoSegments > 1 (at most 64):
   * UDP GSO, runs of up to that many same-size datagrams (the last may be shorter) to the same destination go as
   * one message with UDP_SEGMENT; the kernel splits them into exactly those datagrams. Without GSO support on the
   * route the call falls back to one datagram a message. gsoStats[0] += GSO messages sent, gsoStats[1] += their
   * datagrams.
   */
  udpSendBatch(fd: number, arena: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, dstAddrs: Uint32Array,
    dstPorts: Uint16Array, srcAddrs: Uint32Array | null, count: number, errnos?: Uint32Array | null, gsoSegments?: number,
    gsoStats?: Uint32Array | null): number;

  /** Raw socket: (6, 255) sends whole IPv6 packets; (4, 41) carries IPv6-in-IPv4 (ISATAP, 6to4). */
  rawOpen(family: 4 | 6, protocol: number): number;
  /**
   * dst: IPv4 host-order number, 16-byte IPv6 address, or undefined to use the packet's own destination.
   * Returns bytes or -errno, EAGAIN included (-11: unlike tunWrite's -1, which would clash with -EPERM, and raw
   * sends do fail with EPERM when netfilter drops them).
   */
  rawSend(fd: number, buf: Uint8Array, offset: number, length: number, dst?: number | Uint8Array | null): number;
  /**
   * One AF_UNIX datagram to `path` ('@name' for the abstract namespace) on a fresh socket: bytes sent or -errno.
   * For sd_notify (systemd's NOTIFY_SOCKET); Node's dgram module has no AF_UNIX.
   */
  unixDgramSend(path: string, buf: Uint8Array, offset: number, length: number): number;
  /** Like tunReadBatch; srcAddrs (16 bytes per packet) gets sources as IPv6 (IPv4 as ::ffff:a.b.c.d). */
  rawRecvBatch(fd: number, arena: Uint8Array, slotSize: number, maxPackets: number, lengths: Uint32Array,
    srcAddrs?: Uint8Array | null, stats?: Uint32Array | null): number;

  /** uv_poll on the main loop; one poll per fd. `unref` lets the process exit while the poll is active. */
  pollStart(fd: number, events: PollEvents, callback: PollCallback, opts?: { unref?: boolean }): PollHandle;
  /** Changes the events; '' pauses the poll (it then keeps nothing alive). Throws after pollStop. */
  pollUpdate(handle: PollHandle, events: PollEvents): void;
  pollRef(handle: PollHandle, ref: boolean): void;
  /** Stops and closes the poll (uv_close); idempotent. Call before closing the fd. */
  pollStop(handle: PollHandle): void;
  /** close(2); throws only on EBADF. */
  close(fd: number): void;
}

/** Where the addon sits relative to this module: compiled (dist/src/io/) first, then source (src/io/). */
const candidatePaths = [
  fileURLToPath(new URL('../../../build/Release/transit6.node', import.meta.url)),
  fileURLToPath(new URL('../../build/Release/transit6.node', import.meta.url)),
];

let cached: NativeBinding | undefined;

/** The addon, loaded once. Throws a clear error if it was not built. */
export function loadNative(): NativeBinding {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  let lastError: unknown;
  for (const path of candidatePaths) {
    try {
      cached = require(path) as NativeBinding;
      return cached;
    } catch (e) {
      lastError = e;
      if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') {
        throw new Error(`native addon ${path} failed to load: ${(e as Error).message} (rebuild: npm run build:native)`,
          { cause: e });
      }
    }
  }
  const err: NodeJS.ErrnoException = new Error(
    `native addon not built: run npm ci / npm run build:native (looked for ${candidatePaths[0]})`, { cause: lastError });
  err.code = 'ERR_TRANSIT6_NATIVE_MISSING';
  throw err;
}

/** errno number -> name (EMSGSIZE ...), for drop counters. */
const errnoNames = new Map<number, string>();

export function errnoName(errno: number): string {
  if (errnoNames.size === 0) {
    for (const [name, n] of Object.entries(osConstants.errno)) if (!errnoNames.has(n)) errnoNames.set(n, name);
  }
  return errnoNames.get(errno) ?? `ERRNO_${errno}`;
}

/* Typed free functions over the lazily loaded binding, for callers that do not keep the binding object. Hot loops
 * should call loadNative() once and use the object. */
type Fn<K extends keyof NativeBinding> = NativeBinding[K];
export const tunOpen: Fn<'tunOpen'> = (...a) => loadNative().tunOpen(...a);
export const tunReadBatch: Fn<'tunReadBatch'> = (...a) => loadNative().tunReadBatch(...a);
export const tunWrite: Fn<'tunWrite'> = (...a) => loadNative().tunWrite(...a);
export const tunWriteBatch: Fn<'tunWriteBatch'> = (...a) => loadNative().tunWriteBatch(...a);
export const udpOpen: Fn<'udpOpen'> = (...a) => loadNative().udpOpen(...a);
export const udpRecvBatch: Fn<'udpRecvBatch'> = (...a) => loadNative().udpRecvBatch(...a);
export const udpSendBatch: Fn<'udpSendBatch'> = (...a) => loadNative().udpSendBatch(...a);
export const rawOpen: Fn<'rawOpen'> = (...a) => loadNative().rawOpen(...a);
export const rawSend: Fn<'rawSend'> = (...a) => loadNative().rawSend(...a);
export const rawRecvBatch: Fn<'rawRecvBatch'> = (...a) => loadNative().rawRecvBatch(...a);
export const pollStart: Fn<'pollStart'> = (...a) => loadNative().pollStart(...a);
export const pollUpdate: Fn<'pollUpdate'> = (...a) => loadNative().pollUpdate(...a);
export const pollRef: Fn<'pollRef'> = (...a) => loadNative().pollRef(...a);
export const pollStop: Fn<'pollStop'> = (...a) => loadNative().pollStop(...a);
export const closeFd: Fn<'close'> = (...a) => loadNative().close(...a);
