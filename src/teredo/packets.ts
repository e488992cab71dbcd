/** Packets the Teredo cores build: bubbles with RFC 6081 trailers, connectivity-test echoes, ICMPv6 errors. */
import { buildIcmpv6Packet, invokingPacket, UNREACH_ADDRESS } from '../wire/icmpv6.js';
import { type Ipv4Port } from '../wire/ip.js';
import { buildBubble } from '../wire/ipv6.js';
import { encodeTeredoPacket } from '../wire/teredo.js';
import { withTrailers, type Trailers } from '../wire/trailers.js';

/** fe80::ffff:ffff:ffff, the link-local address of a Teredo interface (as Miredo assigns it). */
export const TEREDO_LINK_LOCAL = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/** A bubble (RFC 4380 §2.8) as a UDP payload, with trailers when given (RFC 6081 §4). */
export function bubbleDatagram(src: Uint8Array, dst: Uint8Array, trailers?: Trailers, origin?: Ipv4Port): Uint8Array {
  const bubble = trailers ? withTrailers(buildBubble(src, dst), trailers) : buildBubble(src, dst);
  return encodeTeredoPacket(origin ? { origin, ipv6: bubble } : { ipv6: bubble });
}

/** RFC 4380 §5.2.9: an echo request whose data is the nonce (64 bits or more). */
export function connectivityTestEcho(src: Uint8Array, dst: Uint8Array, id: number, seq: number, nonce: Uint8Array): Uint8Array {
  return buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: id, sequence: seq, data: nonce }, 64);
}

/** ICMPv6 destination unreachable (address unreachable) for a packet we gave up on, back to the sender. */
export function addressUnreachable(packet: Uint8Array): Uint8Array | undefined {
  if (packet.length < 40) return undefined;
  const originalSrc = packet.subarray(8, 24);
  // Never an error about an error, nor to a multicast or unspecified source (RFC 4443 §2.4(e)).
  if (originalSrc[0] === 0xff || originalSrc.every((b) => b === 0)) return undefined;
  if (packet[6] === 58 && packet.length > 40 && packet[40]! < 128) return undefined;
  return buildIcmpv6Packet(TEREDO_LINK_LOCAL, originalSrc, { type: 'destination-unreachable', code: UNREACH_ADDRESS, invoking: invokingPacket(packet) });
}
