/**
 * What the simulator records: one entry per hop a packet makes over a segment, written when the hop ends (at the
 * NAT, the receiving host, or the point where it was dropped), so the trace is in time order. A datagram that
 * crosses a NAT appears twice: on the LAN segment as the inside host sent it, and on 'inet' as translated.
 */
import type { Millis } from '../core/time.js';
import { formatIpv4Port, formatIpv6, type Ipv4Port } from '../wire/ip.js';

export type HopFate = 'delivered' | 'dropped' | 'forwarded';

export interface TraceUdp {
  readonly at: Millis;
  readonly seq: number;
  readonly kind: 'udp';
  /** 'inet' for the public side, 'lan:<nat name>' for a NAT's private realm. */
  readonly segment: string;
  /** Node names (hosts and NATs share one namespace); `to` is absent when there was nowhere to route to. */
  readonly from: string;
  readonly to?: string;
  readonly src: Ipv4Port;
  readonly dst: Ipv4Port;
  /** A copy, shared by every hop of the same datagram: treat as read-only. */
  readonly data: Uint8Array;
  readonly fate: HopFate;
  readonly reason?: string;
  /** For a hop a NAT forwarded: the addresses the packet carries on the next segment. */
  readonly translated?: { readonly src: Ipv4Port; readonly dst: Ipv4Port };
}

export interface TraceIpv6 {
  readonly at: Millis;
  readonly seq: number;
  readonly kind: 'ipv6';
  /** 'ipv6' for the native side; 'tun:<host>' for packets between a core and its host's own IPv6 stack. */
  readonly segment: string;
  readonly from: string;
  readonly to?: string;
  /** A copy of the whole packet: treat as read-only. */
  readonly packet: Uint8Array;
  readonly fate: HopFate;
  readonly reason?: string;
}

export type TraceEntry = TraceUdp | TraceIpv6;

/** A hop as a block() predicate sees it, before its fate is known. */
export type HopView =
  | Omit<TraceUdp, 'seq' | 'fate' | 'reason' | 'translated'>
  | Omit<TraceIpv6, 'seq' | 'fate' | 'reason'>;

/** One line per entry, stable across runs, for logs and recorded expectations. */
export function formatTraceEntry(e: TraceEntry): string {
  const at = e.at.toFixed(3).padStart(10);
  const fate = e.fate === 'dropped' ? `dropped(${e.reason ?? '?'})` : e.fate;
  if (e.kind === 'udp') {
    const tr = e.translated ? ` => ${formatIpv4Port(e.translated.src)} > ${formatIpv4Port(e.translated.dst)}` : '';
    return `${at} ${e.segment} ${formatIpv4Port(e.src)} > ${formatIpv4Port(e.dst)} udp ${e.data.length} ${fate}${tr}`;
  }
  const p = e.packet;
  if (p.length >= 40 && p[0]! >> 4 === 6) {
    return `${at} ${e.segment} ${formatIpv6(p.subarray(8, 24))} > ${formatIpv6(p.subarray(24, 40))} ipv6 nh=${p[6]} ${p.length} ${fate}`;
  }
  return `${at} ${e.segment} (not ipv6) ${p.length} ${fate}`;
}

export function formatTrace(trace: readonly TraceEntry[]): string {
  return trace.map(formatTraceEntry).join('\n');
}
