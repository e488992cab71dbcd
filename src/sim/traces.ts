/**
 * Named exchanges from the seeds, run in the simulator and turned into ladder diagrams: one lane per host and
 * NAT, one arrow per hop, each packet labelled as the seeds label it.
 */
import type { Millis } from '../core/time.js';
import { describeTeredoDatagram, type LabelContext } from '../teredo/describe.js';
import type { LadderLane, LadderMessage, LadderStyle } from '../trace/ladder.js';
import { parseIcmpv6Packet } from '../wire/icmpv6.js';
import { formatIpv4, formatIpv4Port, formatIpv6 } from '../wire/ip.js';
import { buildQualifyNetwork, QUALIFY_ADDRESSES } from './qualify.js';
import { buildReachNetwork, REACH_ADDRESSES, REACH_CLIENT_SPECS, type ReachClient, type ReachNode } from './reach.js';
import type { SimNetwork } from './network.js';
import type { TraceEntry } from './trace.js';
import { buildIcmpv6Packet } from '../wire/icmpv6.js';

export const TRACE_SCENARIOS = ['qualify', 'holepunch', 'relay', 'inbound', 'symmetric', 'local'] as const;
export type TraceScenario = (typeof TRACE_SCENARIOS)[number];

export const TRACE_DESCRIPTIONS: Record<TraceScenario, string> = {
  qualify: 'a client behind a port-restricted NAT qualifies and learns its NAT type (RS, RA with origin indication, cone and port probes, symmetric test)',
  holepunch: 'prc pings prc2, both behind port-restricted NATs: direct bubble, indirect bubble through the server, direct reply bubble, data',
  relay: 'prc pings the native host v6host: connectivity-test echo through the server, the relay bubbles through the server, data through the relay',
  inbound: 'the native host v6host pings prc first: the relay bubbles, prc answers and runs its own connectivity test before accepting',
  symmetric: 'sym (symmetric NAT) pings fc (full cone): RFC 6081 nonces let the cone side accept the new mapping',
  local: 'lan1 pings lan2 behind the same NAT: local discovery on 224.0.0.253, then traffic stays on the LAN',
};

export interface TraceResult {
  title: string;
  lanes: LadderLane[];
  messages: LadderMessage[];
  net: SimNetwork;
}

function styleOf(kind: string): LadderStyle {
  if (kind === 'bubble') return 'bubble';
  if (kind === 'echo request' || kind === 'echo reply') return 'echo';
  if (kind === 'data') return 'data';
  return 'control';
}

/** Turns simulator hops into ladder messages; tun hops (a host's own stack) become notes. */
export function traceToLadder(trace: readonly TraceEntry[], since: Millis, ctx: LabelContext, skipQualification = false): LadderMessage[] {
  const msgs: LadderMessage[] = [];
  for (const e of trace) {
    if (e.at < since) continue;
    if (e.kind === 'udp') {
      const label = describeTeredoDatagram(e.src, e.dst, e.data, ctx);
      // Qualification probes and refreshes running alongside are noise in a diagram about another exchange.
      if (skipQualification && (label.kind === 'RS' || label.kind === 'RA')) continue;
      msgs.push({
        at: e.at,
        from: e.from,
        to: e.to ?? e.from,
        label: label.text,
        detail: `${formatIpv4Port(e.src)} > ${formatIpv4Port(e.dst)}`,
        style: styleOf(label.kind),
        ...(e.fate === 'dropped' ? { dropped: e.reason ?? 'dropped' } : {}),
      });
      continue;
    }
    const p = parseIcmpv6Packet(e.packet);
    const what = p.ok ? icmpText(p.value.message) : 'IPv6 packet';
    const addrs = e.packet.length >= 40 ? `${formatIpv6(e.packet.subarray(8, 24))} > ${formatIpv6(e.packet.subarray(24, 40))}` : '';
    if (e.segment.startsWith('tun:')) {
      // Between a core and its host's IPv6 stack: a note on that host's lane.
      const host = e.segment.slice(4);
      // from '<host>.stack' to '<host>': the application sends; from '<host>' to '<host>.stack': it receives.
      msgs.push({ at: e.at, from: host, to: host, label: `${e.from === host ? 'stack gets' : 'stack sends'} ${what}`, style: 'echo' });
      continue;
    }
    msgs.push({
      at: e.at,
      from: e.from,
      to: e.to ?? e.from,
      label: `${what} (native IPv6)`,
      detail: addrs,
      style: 'echo',
      ...(e.fate === 'dropped' ? { dropped: e.reason ?? 'dropped' } : {}),
    });
  }
  return msgs;
}

function icmpText(m: { type: string; sequence?: number }): string {
  if (m.type === 'echo-request' || m.type === 'echo-reply') return `${m.type.replace('-', ' ')} seq ${m.sequence}`;
  return `ICMPv6 ${m.type}`;
}

function ping(net: SimNetwork, from: ReachNode, src: Uint8Array, dst: Uint8Array): void {
  net.injectIpv6(from, buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(8) }));
}

function clientLanes(names: ReachClient[]): LadderLane[] {
  const lanes: LadderLane[] = [];
  for (const n of names) {
    const spec = REACH_CLIENT_SPECS[n];
    lanes.push({ id: n, title: n, subtitle: formatIpv4(spec.addr) });
    if (spec.nat && !lanes.some((l) => l.id === spec.nat!.name)) lanes.push({ id: spec.nat.name, title: spec.nat.name, subtitle: formatIpv4(spec.nat.publicAddr) });
  }
  return lanes;
}

const SERVER_LANE: LadderLane = { id: 'server', title: 'server', subtitle: '198.51.100.1+.2' };
const RELAY_LANE: LadderLane = { id: 'relay', title: 'relay', subtitle: '198.51.100.17' };
const V6HOST_LANE: LadderLane = { id: 'v6host', title: 'v6host', subtitle: '2001:db8:1::10' };

export function runTraceScenario(name: TraceScenario, seed = 4380): TraceResult {
  const ctx: LabelContext = { serverPrimary: REACH_ADDRESSES.serverPrimary, serverSecondary: REACH_ADDRESSES.serverSecondary };
  if (name === 'qualify') {
    const { net, client } = buildQualifyNetwork({ nat: 'port-restricted', seed });
    net.runUntil(() => client.status().natDetection === 'done', 60_000);
    const lanes: LadderLane[] = [
      { id: 'client', title: 'client', subtitle: formatIpv4(QUALIFY_ADDRESSES.clientPrivate) },
      { id: 'nat', title: 'NAT (port-restr.)', subtitle: formatIpv4(QUALIFY_ADDRESSES.natPublic) },
      SERVER_LANE,
    ];
    return { title: TRACE_DESCRIPTIONS.qualify, lanes, messages: traceToLadder(net.trace, 0, ctx), net };
  }
  const plan: Record<Exclude<TraceScenario, 'qualify'>, { clients: ReachClient[]; from: ReachNode; to: ReachNode; lanes: () => LadderLane[] }> = {
    holepunch: { clients: ['prc', 'prc2'], from: 'prc', to: 'prc2', lanes: () => [...clientLanes(['prc']), SERVER_LANE, ...clientLanes(['prc2']).reverse()] },
    relay: { clients: ['prc'], from: 'prc', to: 'v6host', lanes: () => [...clientLanes(['prc']), SERVER_LANE, RELAY_LANE, V6HOST_LANE] },
    inbound: { clients: ['prc'], from: 'v6host', to: 'prc', lanes: () => [...clientLanes(['prc']), SERVER_LANE, RELAY_LANE, V6HOST_LANE] },
    symmetric: { clients: ['sym', 'fc'], from: 'sym', to: 'fc', lanes: () => [...clientLanes(['sym']), SERVER_LANE, ...clientLanes(['fc']).reverse()] },
    local: { clients: ['lan1', 'lan2'], from: 'lan1', to: 'lan2', lanes: () => [{ id: 'lan1', title: 'lan1', subtitle: '192.168.5.10' }, { id: 'lan2', title: 'lan2', subtitle: '192.168.5.11' }, { id: 'nat-lan', title: 'nat-lan', subtitle: '203.0.113.97' }, SERVER_LANE] },
  };
  const p = plan[name];
  const network = buildReachNetwork({ seed, clients: p.clients });
  const { net, clients } = network;
  net.runUntil(() => [...clients.values()].every((c) => c.status().natDetection === 'done'), 60_000);
  // Let the announcements of local discovery happen, then trace from the first packet of the exchange (for the
  // local exchange, from the first discovery bubble on).
  net.runFor(1000);
  const firstDiscovery = net.trace.find((e) => e.kind === 'udp' && e.dst.addr === 0xe00000fd)?.at;
  const since = name === 'local' && firstDiscovery !== undefined ? firstDiscovery : net.now;
  ping(net, p.from, network.addressOf(p.from)!, network.addressOf(p.to)!);
  net.runFor(3000);
  return { title: TRACE_DESCRIPTIONS[name], lanes: p.lanes(), messages: traceToLadder(net.trace, since, ctx, true), net };
}
