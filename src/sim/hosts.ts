/**
 * Plain hosts for scenarios: cores that are not Teredo, standing in for the native IPv6 Internet.
 *
 * The IPv6 and ICMPv6 codecs are written separately (src/wire/ipv6.ts, src/wire/icmpv6.ts); this file works on
 * the bytes directly with only the checksum helpers, so the simulator does not move whenever those codecs do.
 */
import { Counters } from '../core/counters.js';
import { ActionQueue, type Action, type Endpoint } from '../core/endpoint.js';
import type { Millis } from '../core/time.js';
import { finish, pseudoSumV6, sum16 } from '../wire/checksum.js';
import { ipv6Equal, type Ipv4Port, type Ipv6 } from '../wire/ip.js';

// RFC 8200 §3 header offsets.
const IPV6_HEADER = 40;
const PAYLOAD_LENGTH = 4;
const NEXT_HEADER = 6;
const HOP_LIMIT = 7;
const SRC = 8;
const DST = 24;
const NEXT_HEADER_ICMPV6 = 58;
// RFC 4443 §4.1, §4.2.
const ICMPV6_ECHO_REQUEST = 128;
const ICMPV6_ECHO_REPLY = 129;
const ICMPV6_MIN = 8;

export type EchoHostDrop = 'not-ipv6' | 'truncated' | 'not-for-me' | 'not-icmpv6' | 'not-echo-request' | 'bad-checksum' | 'udp-ignored';

/**
 * An IPv6 host with one or more addresses that answers ICMPv6 echo requests (RFC 4443 §4.2) with replies sent
 * natively (`ipv6-forward`). Everything it receives is kept in `received`, so it also serves as a sink.
 * Extension headers are not walked: an echo request must follow the fixed header directly.
 */
export class Ipv6EchoHost implements Endpoint {
  readonly addresses: readonly Ipv6[];
  /** Every packet handed to this host, copied, with its arrival time. */
  readonly received: { at: Millis; packet: Uint8Array }[] = [];
  readonly drops = new Counters<EchoHostDrop>();
  repliesSent = 0;
  private readonly actions = new ActionQueue();
  private readonly hopLimit: number;

  constructor(addresses: Ipv6 | readonly Ipv6[], opts: { hopLimit?: number } = {}) {
    const list = addresses instanceof Uint8Array ? [addresses] : addresses;
    this.addresses = list.map((a) => a.slice());
    this.hopLimit = opts.hopLimit ?? 64;
  }

  handleDatagram(_now: Millis, _from: Ipv4Port, _to: Ipv4Port, _data: Uint8Array): void {
    this.drops.inc('udp-ignored');
  }

  handleIpv6(now: Millis, packet: Uint8Array): void {
    this.received.push({ at: now, packet: packet.slice() });
    if (packet.length === 0 || packet[0]! >> 4 !== 6) return this.drops.inc('not-ipv6');
    if (packet.length < IPV6_HEADER) return this.drops.inc('truncated');
    const payloadLength = (packet[PAYLOAD_LENGTH]! << 8) | packet[PAYLOAD_LENGTH + 1]!;
    if (packet.length < IPV6_HEADER + payloadLength) return this.drops.inc('truncated');
    const dst = packet.subarray(DST, DST + 16);
    if (!this.addresses.some((a) => ipv6Equal(a, dst))) return this.drops.inc('not-for-me');
    if (packet[NEXT_HEADER] !== NEXT_HEADER_ICMPV6) return this.drops.inc('not-icmpv6');
    if (payloadLength < ICMPV6_MIN) return this.drops.inc('truncated');
    const src = packet.subarray(SRC, SRC + 16);
    // RFC 4443 §2.3: the checksum covers the pseudo-header, so a packet mangled by a relay shows up here.
    if (finish(sum16(packet, IPV6_HEADER, payloadLength, pseudoSumV6(src, dst, payloadLength, NEXT_HEADER_ICMPV6))) !== 0) {
      return this.drops.inc('bad-checksum');
    }
    if (packet[IPV6_HEADER] !== ICMPV6_ECHO_REQUEST || packet[IPV6_HEADER + 1] !== 0) return this.drops.inc('not-echo-request');

    // RFC 4443 §4.2: the reply carries the request's identifier, sequence number and data unchanged, so the
    // request (trimmed of link padding) is turned around in place.
    const reply = packet.slice(0, IPV6_HEADER + payloadLength);
    reply.set(dst, SRC);
    reply.set(src, DST);
    reply[0] = 0x60; // the reply is a flow of its own: traffic class and flow label start from zero
    reply[1] = 0;
    reply[2] = 0;
    reply[3] = 0;
    reply[HOP_LIMIT] = this.hopLimit;
    reply[IPV6_HEADER] = ICMPV6_ECHO_REPLY;
    reply[IPV6_HEADER + 2] = 0;
    reply[IPV6_HEADER + 3] = 0;
    const c = finish(sum16(reply, IPV6_HEADER, payloadLength, pseudoSumV6(reply.subarray(SRC, SRC + 16), reply.subarray(DST, DST + 16), payloadLength, NEXT_HEADER_ICMPV6)));
    reply[IPV6_HEADER + 2] = c >> 8;
    reply[IPV6_HEADER + 3] = c & 0xff;
    this.repliesSent++;
    this.actions.push({ kind: 'ipv6-forward', packet: reply });
  }

  handleTimeout(_now: Millis): void {}

  pollTimeout(): Millis | undefined {
    return undefined;
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }
}
