/**
 * The Teredo server's fast path (issue 6): the common Router Solicitation answered straight from the receive arena
 * into the send queue of the answering socket, with no allocation: no parse objects, no views, no action objects.
 * The RA is a template built once per answering address by the core's own builder (TeredoServer.routerAdvertisement
 * Template); per RS only its destination (the RS's source) and checksum, the origin indication and the echoed
 * auth header (client id and nonce) are written.
 *
 * It takes exactly the RS that the core would answer on the Teredo port (not the NAT-probe port): a well-formed
 * Teredo packet with at most an auth header (no origin indication), ICMPv6 from a link-local source to ff02::2 with
 * hop limit 255, a valid RS (checksum, code, options) and a global IPv4 source. It applies the core's own rate
 * limiter (whatever its settings) and counts in the core's own counters (the hot ones added after each batch,
 * flush()), so stats() reads the same. Everything
 * else returns -1 and goes to the core, which stays the one place where the rules live; test/teredo/serverfast.test.ts
 * sends random valid and invalid datagrams through a core alone and through fast path + core and compares every
 * output and counter.
 *
 * Whoever changes how TeredoServer.handleDatagram treats an RS on the Teredo port (checks, counters, the answer)
 * changes it here too, or makes the fast path decline those datagrams.
 */
import type { Millis } from '../core/time.js';
import { finish, pseudoSumV6, sum16 } from '../wire/checksum.js';
import { isGlobalIpv4 } from '../wire/ip.js';
import type { TeredoServer } from './server.js';

/** Where an answer goes: the send queue of the socket bound to one of the server's addresses (UdpBatchSocket). */
export interface ServerFastOutput {
  /**
   * Room for one datagram of `length` bytes to addr:port from `src`, in `sendBuffer`: returns its offset, or -1 if
   * it was dropped (counted by the output). The bytes are written at once, before anything else is queued.
   */
  reserve(addr: number, port: number, length: number, src: number): number;
  readonly sendBuffer: Uint8Array;
}

const ICMPV6 = 58;
const RS_TYPE = 133;
const IPV6_HEADER = 40;
const AUTH_FIXED = 13;
const ORIGIN_LENGTH = 8;
const RA_CHECKSUM_AT = IPV6_HEADER + 2;
const RA_DST_AT = 24;

/** The RA of one answering address: the packet with a zero destination and its checksum sum without it. */
interface RaTemplate {
  packet: Uint8Array;
  /** One's-complement sum of the pseudo-header and the ICMPv6 message, destination and checksum field left out. */
  partialSum: number;
}

export class ServerFastPath {
  private readonly primary: number;
  private readonly secondary: number;
  private readonly port: number;
  private readonly primaryRa: RaTemplate;
  private readonly secondaryRa: RaTemplate;
  // The core's hot event counters, added to it by flush() (a Map update each would be a third of the cost).
  private received = 0;
  private solicitations = 0;
  private coneProbes = 0;
  private advertisements = 0;

  /** `primary` and `secondary`: the outputs bound to the server's two addresses on the Teredo port. */
  constructor(
    private readonly server: TeredoServer,
    private readonly primaryOut: ServerFastOutput,
    private readonly secondaryOut: ServerFastOutput,
  ) {
    const a = server.addresses;
    this.primary = a.primary;
    this.secondary = a.secondary;
    this.port = a.port;
    this.primaryRa = template(server.routerAdvertisementTemplate(a.primary));
    this.secondaryRa = template(server.routerAdvertisementTemplate(a.secondary));
  }

  /**
   * A datagram from srcAddr:srcPort to dstAddr:dstPort, b[o, o+len). Returns -1 if the core must handle it, else
   * the bytes of the answer it queued (0: none, the RS was rate-limited).
   */
  datagram(now: Millis, srcAddr: number, srcPort: number, dstAddr: number, dstPort: number, b: Uint8Array, o: number, len: number): number {
    if (dstPort !== this.port || (dstAddr !== this.primary && dstAddr !== this.secondary)) return -1;
    const end = o + len;
    // RFC 4380 §5.1.1 framing: an optional auth header, then IPv6 (an origin indication or anything else: the core).
    let p = o;
    let authAt = -1;
    if (len < IPV6_HEADER) return -1;
    if (b[p] === 0) {
      if (b[p + 1] !== 1) return -1;
      const total = AUTH_FIXED + b[p + 2]! + b[p + 3]!;
      if (len < total) return -1;
      authAt = p;
      p += total;
      if (end - p < IPV6_HEADER || b[p] === 0) return -1;
    }
    if (b[p]! >> 4 !== 6) return -1;
    const plen = (b[p + 4]! << 8) | b[p + 5]!;
    if (IPV6_HEADER + plen > end - p) return -1;
    // ICMPv6 (so no bubble), hop limit 255, fe80::/10 -> ff02::2 (§5.3.1 case 4), from a global IPv4 source.
    if (b[p + 6] !== ICMPV6 || b[p + 7] !== 255 || plen < 8) return -1;
    if (b[p + 8] !== 0xfe || (b[p + 9]! & 0xc0) !== 0x80) return -1;
    if (!isAllRouters(b, p + 24)) return -1;
    if (!isGlobalIpv4(srcAddr)) return -1;
    // A valid RS (RFC 4861 §6.1.1 as parseIcmpv6 checks it): type, code, checksum, options.
    const m = p + IPV6_HEADER;
    if (b[m] !== RS_TYPE || b[m + 1] !== 0) return -1;
    if (!validOptions(b, m + 8, m + plen)) return -1;
    let sum = sum16(b, p + 8, 32, plen + ICMPV6); // pseudo-header: source, destination, length (< 65536), next header
    if (finish(sum16(b, m, plen, sum)) !== 0) return -1;

    // The core's answerRouterSolicitation, not a probe.
    const server = this.server;
    this.received++;
    const limited = server.limiter.routerSolicitation(now, srcAddr);
    if (limited) {
      server.drops.inc(limited);
      return 0;
    }
    this.solicitations++;
    const cone = (b[p + 16]! & 0x80) !== 0;
    let fromPrimary = dstAddr === this.primary;
    if (cone) {
      // RFC 5991 §3.2: the RA leaves from the other address.
      this.coneProbes++;
      fromPrimary = !fromPrimary;
    }
    this.advertisements++;
    const ra = fromPrimary ? this.primaryRa : this.secondaryRa;
    const out = fromPrimary ? this.primaryOut : this.secondaryOut;
    const idLen = authAt >= 0 ? b[authAt + 2]! : 0;
    const authLen = authAt >= 0 ? AUTH_FIXED + idLen : 0;
    const size = authLen + ORIGIN_LENGTH + ra.packet.length;
    const at = out.reserve(srcAddr, srcPort, size, fromPrimary ? this.primary : this.secondary);
    if (at < 0) return size;
    const w = out.sendBuffer;
    let q = at;
    if (authAt >= 0) {
      // RFC 4380 §5.3.2: the client id and the nonce of this RS, no authentication value, confirmation 0.
      w[q] = 0;
      w[q + 1] = 1;
      w[q + 2] = idLen;
      w[q + 3] = 0;
      q += 4;
      const id = authAt + 4;
      for (let k = 0; k < idLen; k++) w[q + k] = b[id + k]!;
      q += idLen;
      const nonce = id + idLen + b[authAt + 3]!;
      for (let k = 0; k < 8; k++) w[q + k] = b[nonce + k]!;
      w[q + 8] = 0;
      q += 9;
    }
    // Origin indication: 0x0000, then the port and address with every bit inverted.
    const port = srcPort ^ 0xffff;
    const addr = ~srcAddr;
    w[q] = 0;
    w[q + 1] = 0;
    w[q + 2] = port >> 8;
    w[q + 3] = port & 0xff;
    w[q + 4] = (addr >>> 24) & 0xff;
    w[q + 5] = (addr >>> 16) & 0xff;
    w[q + 6] = (addr >>> 8) & 0xff;
    w[q + 7] = addr & 0xff;
    q += ORIGIN_LENGTH;
    w.set(ra.packet, q);
    // Destination: the RS's source; the checksum gets its sum.
    const src = p + 8;
    const dst = q + RA_DST_AT;
    for (let k = 0; k < 16; k++) w[dst + k] = b[src + k]!;
    sum = sum16(b, src, 16, ra.partialSum);
    const ck = finish(sum);
    w[q + RA_CHECKSUM_AT] = ck >> 8;
    w[q + RA_CHECKSUM_AT + 1] = ck & 0xff;
    return size;
  }

  /** Adds the counts kept since the last call to the core's counters: call it after each batch, before stats(). */
  flush(): void {
    const events = this.server.events;
    if (this.received > 0) events.inc('datagrams-received', this.received);
    if (this.solicitations > 0) events.inc('router-solicitations', this.solicitations);
    if (this.coneProbes > 0) events.inc('cone-probes', this.coneProbes);
    if (this.advertisements > 0) events.inc('router-advertisements', this.advertisements);
    this.received = this.solicitations = this.coneProbes = this.advertisements = 0;
  }
}

function template(packet: Uint8Array): RaTemplate {
  const p = packet.slice();
  p.fill(0, RA_DST_AT, RA_DST_AT + 16);
  p[RA_CHECKSUM_AT] = 0;
  p[RA_CHECKSUM_AT + 1] = 0;
  const body = p.length - IPV6_HEADER;
  const partialSum = sum16(p, IPV6_HEADER, body, pseudoSumV6(p.subarray(8, 24), p.subarray(24, 40), body, ICMPV6));
  return { packet: p, partialSum };
}

function isAllRouters(b: Uint8Array, o: number): boolean {
  if (b[o] !== 0xff || b[o + 1] !== 0x02 || b[o + 15] !== 0x02) return false;
  for (let k = 2; k < 15; k++) if (b[o + k] !== 0) return false;
  return true;
}

/** RFC 4861 §4.6 as parseNdpOptions checks it: TLVs in units of 8 octets, prefix information 32, MTU 8. */
function validOptions(b: Uint8Array, o: number, end: number): boolean {
  while (o < end) {
    if (o + 2 > end) return false;
    const type = b[o]!;
    const len = b[o + 1]! * 8;
    if (len === 0 || o + len > end) return false;
    if (type === 3 && (len !== 32 || b[o + 2]! > 128)) return false;
    if (type === 5 && len !== 8) return false;
    o += len;
  }
  return true;
}
