/**
 * What the IPv6-in-IPv4 cores (ISATAP host and router, 6to4 host/router/relay) share: the actions they ask the
 * protocol-41 adapter (src/io/proto41.ts) to carry out, the interface they offer it, and decapsulation with its
 * counted drops. Pure: no clock, no sockets; every entry point takes `now`.
 */
import type { Counters } from '../core/counters.js';
import { FifoQueue } from '../core/endpoint.js';
import type { Millis } from '../core/time.js';
import { formatIpv4, isGlobalIpv4, type Ipv4 } from '../wire/ip.js';
import { parseIpv4 as parseIpv4Packet, PROTO_IPV6 } from '../wire/ipv4.js';
import { IPV6_HEADER } from '../wire/ipv6.js';

export type TunnelAction =
  /** Encapsulate `packet` (a whole IPv6 packet) in IPv4 protocol 41 from `src` to `dst` (RFC 4213 §3.5). */
  | { kind: 'ipv4-send'; src: Ipv4; dst: Ipv4; packet: Uint8Array }
  /** Hand an IPv6 packet up to the local stack (the TUN device); the kernel routes it on from there. */
  | { kind: 'ipv6-deliver'; packet: Uint8Array }
  /** The tunnel interface's whole configuration (replaces the previous one): addresses, MTU, routes. */
  | { kind: 'iface-up'; addresses: { address: Uint8Array; prefixLength: number }[]; mtu: number; routes: TunnelRoute[] }
  /** Resolve a host name to IPv4 addresses (hosts file, then DNS with the search domains); answer with handleResolved. */
  | { kind: 'resolve'; name: string }
  | { kind: 'state-changed'; state: string; reason: string; detail?: Record<string, unknown> };

/** A route into the tunnel interface; `via` names the next hop for `ip -6 route` (the core picks the real one). */
export interface TunnelRoute {
  prefix: Uint8Array;
  prefixLength: number;
  metric?: number;
  via?: Uint8Array;
}

export interface TunnelCore {
  /** A whole IPv4 packet from the raw protocol-41 socket (header included). The bytes are borrowed. */
  handleIpv4(now: Millis, packet: Uint8Array): void;
  /** An IPv6 packet the kernel routed into the tunnel interface. The bytes are borrowed. */
  handleIpv6(now: Millis, packet: Uint8Array): void;
  /** The answer to a 'resolve' action: the addresses, or undefined and why not. */
  handleResolved(now: Millis, name: string, addresses: Ipv4[] | undefined, error?: string): void;
  handleTimeout(now: Millis): void;
  pollTimeout(): Millis | undefined;
  poll(): TunnelAction | undefined;
  /** What `show state` prints (JSON-safe: addresses as text, times as "ago"). */
  status(now: Millis): Record<string, unknown>;
  readonly events: Counters;
  readonly drops: Counters;
}

/** The outer header's facts and the inner packet (a view into the input). */
export interface Decapsulated {
  src: Ipv4;
  dst: Ipv4;
  inner: Uint8Array;
}

/**
 * Takes a received IPv4 packet apart. Drops, counted by reason: malformed IPv4, another protocol, an inner packet
 * that is not IPv6 or whose payload length disagrees with the outer length (RFC 4213 §3.6: the decapsulator checks
 * the inner header), IPv4 fragments the kernel did not reassemble.
 */
export function decapsulate(packet: Uint8Array, drops: Counters): Decapsulated | undefined {
  const p = parseIpv4Packet(packet, false);
  if (!p.ok) {
    drops.inc(`ipv4-${p.reason}`);
    return undefined;
  }
  const h = p.value.header;
  if (h.protocol !== PROTO_IPV6) {
    drops.inc('not-protocol-41');
    return undefined;
  }
  if (h.moreFragments || h.fragmentOffset !== 0) {
    drops.inc('ipv4-fragment');
    return undefined;
  }
  const inner = p.value.payload;
  if (inner.length < IPV6_HEADER || inner[0]! >> 4 !== 6) {
    drops.inc('inner-not-ipv6');
    return undefined;
  }
  const payloadLength = (inner[4]! << 8) | inner[5]!;
  if (IPV6_HEADER + payloadLength > inner.length) {
    drops.inc('inner-truncated');
    return undefined;
  }
  return { src: h.src, dst: h.dst, inner: inner.subarray(0, IPV6_HEADER + payloadLength) };
}

/** Checks an IPv6 packet read from the tunnel interface; undefined (and a counted drop) if it is not one. */
export function checkOutgoing(packet: Uint8Array, drops: Counters): boolean {
  if (packet.length < IPV6_HEADER || packet[0]! >> 4 !== 6) {
    drops.inc('tun-not-ipv6');
    return false;
  }
  if (IPV6_HEADER + ((packet[4]! << 8) | packet[5]!) > packet.length) {
    drops.inc('tun-truncated');
    return false;
  }
  return true;
}

/** An IPv4 address a tunnel may send to: not unspecified, loopback, multicast or broadcast. */
export function usableIpv4Destination(a: Ipv4): boolean {
  const first = a >>> 24;
  return a !== 0 && first !== 0 && first !== 127 && first < 224;
}

export const isMulticastIpv6 = (a: Uint8Array, offset = 0): boolean => a[offset] === 0xff;

export const isLinkLocalIpv6 = (a: Uint8Array, offset = 0): boolean => a[offset] === 0xfe && (a[offset + 1]! & 0xc0) === 0x80;

/** The interface identifier's u-bit rule of RFC 5214 §6.1, for text (status output). */
export function ipv4Class(a: Ipv4): string {
  return `${formatIpv4(a)} (${isGlobalIpv4(a) ? 'public' : 'private'})`;
}

/** "ago" for status output: milliseconds, or null. */
export function ago(now: Millis, at: Millis | undefined): number | null {
  return at === undefined ? null : Math.max(0, Math.round(now - at));
}

/** Remaining seconds until `until` (null for never). */
export function remainingS(now: Millis, until: Millis): number | null {
  return until === Infinity ? null : Math.max(0, Math.round((until - now) / 1000));
}

/** A FIFO of tunnel actions with an O(1) poll. */
export class TunnelQueue extends FifoQueue<TunnelAction> {}
