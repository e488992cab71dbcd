/**
 * User-space GRO for a TUN device opened with IFF_VNET_HDR: a write queue that merges consecutive, in-order
 * TCP/IPv6 segments of one flow into one super-packet with a virtio_net_hdr (GSO_TCPV6, NEEDS_CSUM), and
 * consecutive UDP/IPv6 datagrams of one flow (same addresses and ports) into one GSO_UDP_L4 super-packet, so that
 * the kernel forwards (or delivers) one skb instead of many and splits it again only where it must (for UDP at the
 * receiving socket, or before a device without USO). Everything else is queued as it is, behind a zero header
 * (GSO_NONE: the packet's own checksum stands).
 *
 * UDP datagrams join when the IPv6 header but for the payload length and the ports are the first's, the payload is
 * no longer than the first's (a shorter one is the last) and both checksums are valid and non-zero;
 * __udp_gso_segment then gives back each datagram with its own length and checksum, byte for byte.
 *
 * Merging is exact: the kernel's TCP segmentation (tcp_gso_segment) of a super-packet built here gives back the
 * original segments byte for byte. That is why a segment joins only if:
 * - it is IPv6 + TCP with no extension headers, and its first 4 bytes (version, traffic class, flow label), next
 *   header, hop limit, addresses, ports, ACK number, header length, window, urgent pointer and TCP options (none,
 *   or the same timestamps) equal the super-packet's first segment;
 * - flags are ACK, plus PSH on the last one only (segmentation clears PSH and FIN on all but the last and CWR on
 *   all but the first; SYN, FIN, RST, URG, ECE, CWR never join);
 * - its sequence number follows on, it carries data, and every segment but the last has the first's size
 *   (gso_size); the whole stays within 65535 bytes of IPv6 payload;
 * - both TCP checksums are valid: the kernel fills in the super-packet's checksum (NEEDS_CSUM), so a corrupt segment
 *   merged here would come out with a valid checksum. Corrupt segments go through alone, to be dropped as before.
 * Only the newest queued packet can grow, so the order of packets is exactly the order of push().
 *
 * virtio_net_hdr (10 bytes, little-endian on x86/ARM, tun's default): flags u8, gso_type u8, hdr_len u16,
 * gso_size u16, csum_start u16, csum_offset u16. With NEEDS_CSUM the TCP checksum field holds the folded,
 * uncomplemented pseudo-header sum for the super-packet's TCP length (what tcp_gso_segment adjusts per segment).
 */

export const VNET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
/** USO (Linux >= 6.2 accepts it from a TUN writer). */
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;

const IPV6_HDR = 40;
const UDP_HDR = 8;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
/** Segments per super-packet at most (a 65535-byte payload at MSS 1220 is 53). */
const MAX_SEGMENTS = 64;

export interface GroStats {
  /** Packets queued (before merging). */
  packets: number;
  /** Super-packets made (each of at least two segments). */
  superPackets: number;
  /** Segments merged into an existing super-packet (packets - entries written). */
  merged: number;
  /** TCP segments or UDP datagrams that could have joined but failed the checksum check. */
  badChecksum: number;
  /** Of superPackets, those of UDP datagrams (GSO_UDP_L4). */
  udpSuperPackets: number;
}

/** Sum of 16-bit big-endian words of b[start, end) added to `sum` (not folded). */
export function sum16(b: Uint8Array, start: number, end: number, sum: number): number {
  let i = start;
  const even = end - ((end - start) & 1);
  for (; i < even; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  return sum;
}

export function fold16(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** Pseudo-header sum (RFC 8200 §8.1) of the IPv6 packet at b[o] for upper-layer length `ulLen`, protocol `nh`. */
export function pseudoHeaderSum(b: Uint8Array, o: number, ulLen: number, nh: number): number {
  return addressSum(b, o) + (ulLen >>> 16) + (ulLen & 0xffff) + nh;
}

/** The pseudo-header's address part: the sum of the source and destination of the IPv6 packet at b[o]. */
function addressSum(b: Uint8Array, o: number): number {
  return sum16(b, o + 8, o + 40, 0);
}

/** Whether the upper layer of the IPv6 packet b[o, o+len) (no extension headers; protocol nh, its addresses summing
 *  to addrSum) has a valid checksum. */
function checksumValid(b: Uint8Array, o: number, len: number, addrSum: number, nh: number): boolean {
  const ulLen = len - IPV6_HDR;
  return fold16(sum16(b, o + IPV6_HDR, o + len, addrSum + (ulLen >>> 16) + (ulLen & 0xffff) + nh)) === 0xffff;
}

/** Whether the TCP segment of the IPv6 packet b[o, o+len) (no extension headers) has a valid checksum. */
export function tcpChecksumValid(b: Uint8Array, o: number, len: number): boolean {
  return checksumValid(b, o, len, addressSum(b, o), 6);
}

/** Whether the UDP datagram of the IPv6 packet b[o, o+len) (no extension headers) has a valid, non-zero checksum. */
export function udpChecksumValid(b: Uint8Array, o: number, len: number): boolean {
  return udpChecksumValidWith(b, o, len, addressSum(b, o));
}

function udpChecksumValidWith(b: Uint8Array, o: number, len: number, addrSum: number): boolean {
  if (b[o + IPV6_HDR + 6] === 0 && b[o + IPV6_HDR + 7] === 0) return false; // RFC 8200 §8.1: zero is not allowed
  return checksumValid(b, o, len, addrSum, 17);
}

/**
 * Whether b[o, o+len) is a UDP/IPv6 datagram that may start or join a UDP super-packet: IPv6 with no extension
 * headers, next header UDP, payload length and UDP length both matching `len`, and a UDP payload. The checksum is
 * not checked here.
 */
export function mergeableUdp(b: Uint8Array, o: number, len: number): boolean {
  if (len < IPV6_HDR + UDP_HDR + 1 || b[o]! >> 4 !== 6 || b[o + 6] !== 17) return false;
  const plen = (b[o + 4]! << 8) | b[o + 5]!;
  return IPV6_HDR + plen === len && ((b[o + IPV6_HDR + 4]! << 8) | b[o + IPV6_HDR + 5]!) === plen;
}

/**
 * If b[o, o+len) is a TCP/IPv6 data segment that may start or join a super-packet: its TCP header length (20, or
 * 32 with exactly NOP NOP Timestamps). 0 otherwise. The checksum is not checked here.
 */
export function mergeableTcpHeader(b: Uint8Array, o: number, len: number): number {
  if (len < IPV6_HDR + 21 || b[o]! >> 4 !== 6 || b[o + 6] !== 6) return 0;
  if (IPV6_HDR + ((b[o + 4]! << 8) | b[o + 5]!) !== len) return 0;
  const t = o + IPV6_HDR;
  const doff = (b[t + 12]! >> 4) * 4;
  if ((b[t + 12]! & 0x0f) !== 0) return 0; // reserved bits and AccECN's AE flag
  const flags = b[t + 13]!;
  if ((flags & ~TCP_PSH) !== TCP_ACK) return 0;
  if (doff === 20) {
    // no options
  } else if (doff === 32) {
    if (b[t + 20] !== 1 || b[t + 21] !== 1 || b[t + 22] !== 8 || b[t + 23] !== 10) return 0;
  } else return 0;
  if (IPV6_HDR + doff >= len) return 0; // no data
  return doff;
}

function sameBytes(b: Uint8Array, x: number, y: number, n: number, c: Uint8Array): boolean {
  for (let k = 0; k < n; k++) if (b[x + k] !== c[y + k]) return false;
  return true;
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * A queue of packets, each stored as a virtio_net_hdr followed by the packet, packed in one arena: entry i is
 * arena[offsets[i], offsets[i] + lengths[i]), ready for one write() each. With `coalesce` off it only adds the zero
 * headers (for a device opened with IFF_VNET_HDR where merging is not wanted).
 */
export class GroQueue {
  readonly arena: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  count = 0;
  bytes = 0;
  readonly stats: GroStats = { packets: 0, superPackets: 0, merged: 0, badChecksum: 0, udpSuperPackets: 0 };
  // The newest entry, while it may still grow.
  private open = false;
  /** The open entry is UDP datagrams (GSO_UDP_L4), else TCP segments. */
  private openUdp = false;
  private verified = false;
  /** The open entry's pseudo-header address sum: every packet merged into it has the same addresses. */
  private addrSum = 0;
  private doff = 0;
  private gsoSize = 0;
  private segments = 0;
  private nextSeq = 0;

  /** coalesce: merge at all; udp: merge UDP datagrams too (the kernel must take GSO_UDP_L4 from the writer). */
  constructor(maxPackets: number, maxBytes: number, readonly coalesce = true, readonly udp = true) {
    this.arena = new Uint8Array(maxBytes);
    this.offsets = new Uint32Array(maxPackets);
    this.lengths = new Uint32Array(maxPackets);
  }

  /** Empties the queue (after its entries were written). */
  clear(): void {
    this.count = 0;
    this.bytes = 0;
    this.open = false;
  }

  /** Whether a packet of `length` bytes fits without merging. */
  fits(length: number): boolean {
    return this.count < this.offsets.length && this.bytes + VNET_HDR_LEN + length <= this.arena.length;
  }

  /**
   * Queues a copy of buf[o, o+len), merged into the newest entry if it can be. False (nothing queued) when the
   * queue is full: write it out, clear() and push again.
   */
  push(buf: Uint8Array, o: number, len: number): boolean {
    if (this.open && this.tryMerge(buf, o, len)) {
      this.stats.packets++;
      return true;
    }
    if (!this.fits(len)) return false;
    const { arena } = this;
    const e = this.bytes;
    arena.fill(0, e, e + VNET_HDR_LEN);
    arena.set(buf.subarray(o, o + len), e + VNET_HDR_LEN);
    const i = this.count++;
    this.offsets[i] = e;
    this.lengths[i] = VNET_HDR_LEN + len;
    this.bytes = e + VNET_HDR_LEN + len;
    this.stats.packets++;
    this.open = false;
    if (!this.coalesce) return true;
    if (this.udp && mergeableUdp(buf, o, len)) {
      this.open = true;
      this.openUdp = true;
      this.verified = false;
      this.addrSum = addressSum(buf, o);
      this.gsoSize = len - IPV6_HDR - UDP_HDR;
      this.segments = 1;
      return true;
    }
    const doff = mergeableTcpHeader(buf, o, len);
    if (doff === 0 || (buf[o + IPV6_HDR + 13]! & TCP_PSH) !== 0) return true;
    this.open = true;
    this.openUdp = false;
    this.verified = false;
    this.addrSum = addressSum(buf, o);
    this.doff = doff;
    this.gsoSize = len - IPV6_HDR - doff;
    this.segments = 1;
    this.nextSeq = (readU32(buf, o + IPV6_HDR + 4) + this.gsoSize) >>> 0;
    return true;
  }

  private tryMerge(b: Uint8Array, o: number, len: number): boolean {
    if (this.openUdp) return this.tryMergeUdp(b, o, len);
    const { arena } = this;
    const i = this.count - 1;
    const e = this.offsets[i]!;
    const p = e + VNET_HDR_LEN; // the super-packet's IPv6 header
    const doff = this.doff;
    if (mergeableTcpHeader(b, o, len) !== doff) return this.close();
    const t = o + IPV6_HDR;
    const pt = p + IPV6_HDR;
    const payload = len - IPV6_HDR - doff;
    if (payload > this.gsoSize || readU32(b, t + 4) !== this.nextSeq) return this.close();
    const superLen = this.lengths[i]! - VNET_HDR_LEN;
    if (superLen + payload - IPV6_HDR > 0xffff || this.segments >= MAX_SEGMENTS) return this.close();
    if (this.bytes + payload > arena.length) return this.close();
    // Same IPv6 header but for the payload length; same TCP header but for sequence number, checksum and PSH.
    if (!sameBytes(b, o, p, 4, arena) || b[o + 6] !== arena[p + 6] || b[o + 7] !== arena[p + 7]) return this.close();
    if (!sameBytes(b, o + 8, p + 8, 32, arena) || !sameBytes(b, t, pt, 4, arena)) return this.close();
    if (!sameBytes(b, t + 8, pt + 8, 5, arena) || !sameBytes(b, t + 14, pt + 14, 2, arena)) return this.close();
    if (!sameBytes(b, t + 18, pt + 18, doff - 18, arena)) return this.close();
    if (!this.verified) {
      if (!checksumValid(arena, p, superLen, this.addrSum, 6)) {
        this.stats.badChecksum++;
        return this.close();
      }
      this.verified = true;
    }
    if (!checksumValid(b, o, len, this.addrSum, 6)) {
      this.stats.badChecksum++;
      return this.close();
    }
    arena.set(b.subarray(t + doff, o + len), this.bytes);
    this.bytes += payload;
    const newLen = superLen + payload;
    this.lengths[i] = VNET_HDR_LEN + newLen;
    const plen = newLen - IPV6_HDR;
    arena[p + 4] = plen >> 8;
    arena[p + 5] = plen & 0xff;
    const psh = b[t + 13]! & TCP_PSH;
    arena[pt + 13]! |= psh;
    if (this.segments === 1) {
      this.stats.superPackets++;
      arena[e] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      arena[e + 1] = VIRTIO_NET_HDR_GSO_TCPV6;
      writeLe16(arena, e + 2, IPV6_HDR + doff);
      writeLe16(arena, e + 4, this.gsoSize);
      writeLe16(arena, e + 6, IPV6_HDR);
      writeLe16(arena, e + 8, 16);
    }
    this.segments++;
    this.stats.merged++;
    // The pseudo-header sum for the whole TCP length, uncomplemented: the kernel adds the TCP bytes.
    const seed = fold16(this.addrSum + plen + 6);
    arena[pt + 16] = seed >> 8;
    arena[pt + 17] = seed & 0xff;
    this.nextSeq = (this.nextSeq + payload) >>> 0;
    this.open = payload === this.gsoSize && psh === 0;
    return true;
  }

  /**
   * UDP (what __udp_gso_segment gives back exactly): same IPv6 header but for the payload length, same ports, a
   * payload no longer than the first's (a shorter one ends the super-packet), valid non-zero checksums (the kernel
   * computes each datagram's checksum again, NEEDS_CSUM).
   */
  private tryMergeUdp(b: Uint8Array, o: number, len: number): boolean {
    const { arena } = this;
    const i = this.count - 1;
    const e = this.offsets[i]!;
    const p = e + VNET_HDR_LEN;
    if (!mergeableUdp(b, o, len)) return this.close();
    const payload = len - IPV6_HDR - UDP_HDR;
    if (payload > this.gsoSize) return this.close();
    const superLen = this.lengths[i]! - VNET_HDR_LEN;
    if (superLen + payload - IPV6_HDR > 0xffff || this.segments >= MAX_SEGMENTS) return this.close();
    if (this.bytes + payload > arena.length) return this.close();
    if (!sameBytes(b, o, p, 4, arena) || b[o + 6] !== arena[p + 6] || b[o + 7] !== arena[p + 7]) return this.close();
    if (!sameBytes(b, o + 8, p + 8, 32 + 4, arena)) return this.close(); // addresses and ports
    if (!this.verified) {
      if (!udpChecksumValidWith(arena, p, superLen, this.addrSum)) {
        this.stats.badChecksum++;
        return this.close();
      }
      this.verified = true;
    }
    if (!udpChecksumValidWith(b, o, len, this.addrSum)) {
      this.stats.badChecksum++;
      return this.close();
    }
    arena.set(b.subarray(o + IPV6_HDR + UDP_HDR, o + len), this.bytes);
    this.bytes += payload;
    const newLen = superLen + payload;
    this.lengths[i] = VNET_HDR_LEN + newLen;
    const plen = newLen - IPV6_HDR;
    const u = p + IPV6_HDR;
    arena[p + 4] = plen >> 8;
    arena[p + 5] = plen & 0xff;
    arena[u + 4] = plen >> 8;
    arena[u + 5] = plen & 0xff;
    if (this.segments === 1) {
      this.stats.superPackets++;
      this.stats.udpSuperPackets++;
      arena[e] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      arena[e + 1] = VIRTIO_NET_HDR_GSO_UDP_L4;
      writeLe16(arena, e + 2, IPV6_HDR + UDP_HDR);
      writeLe16(arena, e + 4, this.gsoSize);
      writeLe16(arena, e + 6, IPV6_HDR);
      writeLe16(arena, e + 8, 6);
    }
    this.segments++;
    this.stats.merged++;
    // The pseudo-header sum for the whole UDP length, uncomplemented (the kernel adds the UDP bytes).
    const seed = fold16(this.addrSum + plen + 17);
    arena[u + 6] = seed >> 8;
    arena[u + 7] = seed & 0xff;
    this.open = payload === this.gsoSize;
    return true;
  }

  private close(): false {
    this.open = false;
    return false;
  }
}

function writeLe16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = v >> 8;
}

/**
 * What the kernel does with an entry (tcp_gso_segment for GSO_TCPV6 + NEEDS_CSUM, or nothing): the IPv6 packets it
 * stands for, with full checksums. For tests and for checking entries; throws on a header it would refuse.
 */
export function segmentEntry(entry: Uint8Array): Uint8Array[] {
  if (entry.length < VNET_HDR_LEN) throw new Error('entry shorter than a virtio_net_hdr');
  const flags = entry[0]!;
  const gsoType = entry[1]!;
  const pkt = entry.subarray(VNET_HDR_LEN);
  if (gsoType === VIRTIO_NET_HDR_GSO_NONE) {
    if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) throw new Error('NEEDS_CSUM without GSO is not produced here');
    return [pkt.slice()];
  }
  if (gsoType === VIRTIO_NET_HDR_GSO_UDP_L4 && flags === VIRTIO_NET_HDR_F_NEEDS_CSUM) return segmentUdpEntry(entry, pkt);
  if (gsoType !== VIRTIO_NET_HDR_GSO_TCPV6 || flags !== VIRTIO_NET_HDR_F_NEEDS_CSUM) throw new Error(`unexpected vnet header ${flags}/${gsoType}`);
  const hdrLen = entry[2]! | (entry[3]! << 8);
  const gso = entry[4]! | (entry[5]! << 8);
  const cstart = entry[6]! | (entry[7]! << 8);
  const coff = entry[8]! | (entry[9]! << 8);
  if (cstart !== IPV6_HDR || coff !== 16 || gso === 0) throw new Error('bad csum_start/csum_offset/gso_size');
  const doff = (pkt[IPV6_HDR + 12]! >> 4) * 4;
  if (hdrLen !== IPV6_HDR + doff) throw new Error('hdr_len is not the headers\' length');
  // The seed must be the pseudo-header sum for the whole TCP length.
  const seed = (pkt[IPV6_HDR + 16]! << 8) | pkt[IPV6_HDR + 17]!;
  if (seed !== fold16(pseudoHeaderSum(pkt, 0, pkt.length - IPV6_HDR, 6))) throw new Error('checksum seed is not the pseudo-header sum');
  const out: Uint8Array[] = [];
  const seq0 = readU32(pkt, IPV6_HDR + 4);
  const flags0 = pkt[IPV6_HDR + 13]!;
  for (let at = hdrLen, k = 0; at < pkt.length; at += gso, k++) {
    const n = Math.min(gso, pkt.length - at);
    const last = at + n >= pkt.length;
    const seg = new Uint8Array(hdrLen + n);
    seg.set(pkt.subarray(0, hdrLen));
    seg.set(pkt.subarray(at, at + n), hdrLen);
    const plen = hdrLen - IPV6_HDR + n;
    seg[4] = plen >> 8;
    seg[5] = plen & 0xff;
    const seq = (seq0 + k * gso) >>> 0;
    seg[IPV6_HDR + 4] = seq >>> 24;
    seg[IPV6_HDR + 5] = (seq >>> 16) & 0xff;
    seg[IPV6_HDR + 6] = (seq >>> 8) & 0xff;
    seg[IPV6_HDR + 7] = seq & 0xff;
    let f = flags0;
    if (!last) f &= ~(TCP_PSH | 0x01);
    if (k > 0) f &= ~0x80;
    seg[IPV6_HDR + 13] = f;
    seg[IPV6_HDR + 16] = 0;
    seg[IPV6_HDR + 17] = 0;
    const c = 0xffff - fold16(sum16(seg, IPV6_HDR, seg.length, pseudoHeaderSum(seg, 0, plen, 6)));
    seg[IPV6_HDR + 16] = c >> 8;
    seg[IPV6_HDR + 17] = c & 0xff;
    out.push(seg);
  }
  return out;
}

/** segmentEntry for GSO_UDP_L4 (__udp_gso_segment): each gso_size slice of the payload behind a copy of the headers
 *  with its own lengths and a full checksum (0 sent as 0xffff). */
function segmentUdpEntry(entry: Uint8Array, pkt: Uint8Array): Uint8Array[] {
  const hdrLen = entry[2]! | (entry[3]! << 8);
  const gso = entry[4]! | (entry[5]! << 8);
  const cstart = entry[6]! | (entry[7]! << 8);
  const coff = entry[8]! | (entry[9]! << 8);
  if (cstart !== IPV6_HDR || coff !== 6 || gso === 0) throw new Error('bad csum_start/csum_offset/gso_size');
  if (hdrLen !== IPV6_HDR + UDP_HDR) throw new Error('hdr_len is not the headers\' length');
  if (pkt.length <= hdrLen + gso) throw new Error('a UDP super-packet of one datagram');
  const ulen = (pkt[IPV6_HDR + 4]! << 8) | pkt[IPV6_HDR + 5]!;
  if (ulen !== pkt.length - IPV6_HDR) throw new Error('UDP length is not the super-packet\'s');
  const seed = (pkt[IPV6_HDR + 6]! << 8) | pkt[IPV6_HDR + 7]!;
  if (seed !== fold16(pseudoHeaderSum(pkt, 0, ulen, 17))) throw new Error('checksum seed is not the pseudo-header sum');
  const out: Uint8Array[] = [];
  for (let at = hdrLen; at < pkt.length; at += gso) {
    const n = Math.min(gso, pkt.length - at);
    const seg = new Uint8Array(hdrLen + n);
    seg.set(pkt.subarray(0, hdrLen));
    seg.set(pkt.subarray(at, at + n), hdrLen);
    const plen = UDP_HDR + n;
    seg[4] = seg[IPV6_HDR + 4] = plen >> 8;
    seg[5] = seg[IPV6_HDR + 5] = plen & 0xff;
    seg[IPV6_HDR + 6] = 0;
    seg[IPV6_HDR + 7] = 0;
    const c = (0xffff - fold16(sum16(seg, IPV6_HDR, seg.length, pseudoHeaderSum(seg, 0, plen, 17)))) || 0xffff;
    seg[IPV6_HDR + 6] = c >> 8;
    seg[IPV6_HDR + 7] = c & 0xff;
    out.push(seg);
  }
  return out;
}
