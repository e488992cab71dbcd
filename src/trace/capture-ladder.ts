/**
 * Captured packets (a pcap file, or a daemon's tap streamed by `trace --live`) as a ladder diagram: one lane per
 * IPv4 host, the server's two addresses sharing one lane, each Teredo datagram an arrow labelled as the seeds
 * label it (src/teredo/describe.ts, the same words as `transit6 sim trace`), and the tunnel side's IPv6 packets
 * as notes on the lane of the host that captured them ("stack sends echo request seq 1").
 *
 * Lanes are named from what the packets show: the host that sends router solicitations to the server is a
 * client, a host whose datagrams carry native (non-Teredo) IPv6 sources is a relay, other Teredo hosts are
 * peers. A capture seen from one host (its own --pcap or live tap) names that host's lane after its role.
 */
import { describeTeredoDatagram, type LabelContext } from '../teredo/describe.js';
import { parseIcmpv6Packet } from '../wire/icmpv6.js';
import { formatIpv4, formatIpv4Port, formatIpv6, type Ipv4 } from '../wire/ip.js';
import { isLinkLocal } from '../wire/ipv6class.js';
import { isTeredoAddress, parseTeredoPacket } from '../wire/teredo.js';
import type { LadderLane, LadderMessage, LadderStyle } from './ladder.js';
import type { CapturedPacket } from './pcap-reader.js';

export interface CaptureLadderOptions {
  /** The server's addresses; default: guessed from where router solicitations go and advertisements come from. */
  server?: { primary: Ipv4; secondary?: Ipv4 };
  /** The capturing host: its lane comes first and is titled `role`. Default: the address in most datagrams. */
  local?: { addrs: Ipv4[]; role?: string };
  /** Keep only packets at or after this time (ms, same clock as the packets). */
  since?: number;
  /** Leave out RS and RA (qualification and refreshes) to show another exchange. */
  skipQualification?: boolean;
  /** The time origin for the diagram (default: the first packet's time): times are shown relative to it. */
  origin?: number;
}

export interface CaptureLadder {
  lanes: LadderLane[];
  messages: LadderMessage[];
  /** Datagrams that were not Teredo (other UDP traffic in the capture), left out. */
  notTeredo: number;
  /** The time origin used. */
  origin: number;
}

export function styleOf(kind: string): LadderStyle {
  if (kind === 'bubble') return 'bubble';
  if (kind === 'echo request' || kind === 'echo reply') return 'echo';
  if (kind === 'data') return 'data';
  return 'control';
}

/** Whether a datagram's payload is Teredo (an IPv6 packet, with or without Teredo headers before it). */
export function isTeredoDatagram(p: { data: Uint8Array }): boolean {
  return parseTeredoPacket(p.data).ok;
}

type Udp = Extract<CapturedPacket, { kind: 'udp' }>;

/** The server's addresses as the packets show them: RS destinations and RA sources. */
export function guessServer(packets: readonly CapturedPacket[]): { primary: Ipv4; secondary?: Ipv4 } | undefined {
  const seen: Ipv4[] = [];
  for (const p of packets) {
    if (p.kind !== 'udp') continue;
    const l = describeTeredoDatagram(p.src, p.dst, p.data);
    const a = l.kind === 'RS' ? p.dst.addr : l.kind === 'RA' ? p.src.addr : undefined;
    if (a !== undefined && !seen.includes(a)) seen.push(a);
  }
  if (seen.length === 0) return undefined;
  // The primary gets the first solicitation; a second address is the secondary (usually primary + 1).
  const primary = seen[0]!;
  const secondary = seen.find((a) => a !== primary);
  return secondary !== undefined ? { primary, secondary } : { primary };
}

/** The address in most datagrams: the host the capture was taken on. */
export function guessLocal(packets: readonly CapturedPacket[], exclude: Ipv4[]): Ipv4 | undefined {
  const count = new Map<Ipv4, number>();
  for (const p of packets) {
    if (p.kind !== 'udp') continue;
    for (const a of [p.src.addr, p.dst.addr]) if (!exclude.includes(a)) count.set(a, (count.get(a) ?? 0) + 1);
  }
  let best: Ipv4 | undefined;
  let n = 0;
  for (const [a, c] of count) if (c > n) [best, n] = [a, c];
  return best;
}

function icmpText(packet: Uint8Array): string {
  const p = parseIcmpv6Packet(packet);
  if (!p.ok) {
    const nh = packet.length >= 40 ? packet[6]! : -1;
    return nh === 6 ? 'TCP' : nh === 17 ? 'UDP' : nh === 59 ? 'bubble' : 'IPv6 packet';
  }
  const m = p.value.message as { type: string; sequence?: number };
  if (m.type === 'echo-request' || m.type === 'echo-reply') return `${m.type.replace('-', ' ')} seq ${m.sequence}`;
  return `ICMPv6 ${m.type}`;
}

export function captureToLadder(all: readonly CapturedPacket[], opts: CaptureLadderOptions = {}): CaptureLadder {
  const packets = all.filter((p) => opts.since === undefined || p.at >= opts.since);
  const origin = opts.origin ?? (packets.length > 0 ? Math.min(...packets.map((p) => p.at)) : 0);
  const udp = packets.filter((p): p is Udp => p.kind === 'udp');
  const teredo = udp.filter(isTeredoDatagram);
  const notTeredo = udp.length - teredo.length;
  const server = opts.server ?? guessServer(teredo);
  const serverAddrs = server ? [server.primary, ...(server.secondary !== undefined ? [server.secondary] : [])] : [];
  const ctx: LabelContext = server ? { serverPrimary: server.primary, serverSecondary: server.secondary ?? ((server.primary + 1) >>> 0) } : {};
  // A capture that holds both sides of a NAT (the simulator's, or a router's on two interfaces) shows the same
  // datagram twice, once from the inside address and once from the public one: that public address is a NAT.
  const natFor = new Map<Ipv4, Ipv4>();
  const firstFrom = new Map<string, Ipv4>();
  for (const p of teredo) {
    const key = `${p.dst.port}:${Buffer.from(p.data).toString('base64')}`;
    const prev = firstFrom.get(key);
    if (prev === undefined) firstFrom.set(key, p.src.addr);
    else if (prev !== p.src.addr && !serverAddrs.includes(p.src.addr) && !natFor.has(prev)) natFor.set(p.src.addr, prev);
  }
  const localAddrs = opts.local?.addrs.filter((a) => a !== 0) ?? [];
  if (localAddrs.length === 0) {
    const g = guessLocal(teredo, serverAddrs);
    if (g !== undefined) localAddrs.push(natFor.get(g) ?? g);
  }

  // What each address does, for its lane title.
  const roleOf = new Map<Ipv4, 'client' | 'relay' | 'peer'>();
  const rank = { peer: 0, client: 1, relay: 2 } as const;
  const note = (a: Ipv4, r: 'client' | 'relay' | 'peer') => {
    if (serverAddrs.includes(a)) return;
    const cur = roleOf.get(a);
    if (cur === undefined || rank[r] > rank[cur]) roleOf.set(a, r);
  };
  const labels = teredo.map((p) => describeTeredoDatagram(p.src, p.dst, p.data, ctx));
  teredo.forEach((p, i) => {
    const l = labels[i]!;
    if (l.kind === 'RS') note(p.src.addr, 'client');
    if (l.inner) {
      const src = l.inner.src;
      const teredoSrc = src.startsWith('2001:0:') || src.startsWith('2001::');
      if (!teredoSrc && !src.startsWith('fe80:') && l.kind !== 'RS' && l.kind !== 'RA') note(p.src.addr, 'relay');
      else if (teredoSrc) note(p.src.addr, 'peer');
    }
    note(p.dst.addr, 'peer');
  });

  // Lanes: the local host, then the server, then the others in order of appearance.
  const lanes: LadderLane[] = [];
  const laneOf = new Map<Ipv4, string>();
  const used = new Map<string, number>();
  const title = (base: string) => {
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    return n === 1 ? base : `${base} ${n}`;
  };
  const portsOf = (a: Ipv4) => [...new Set(teredo.flatMap((p) => (p.src.addr === a ? [p.src.port] : p.dst.addr === a ? [p.dst.port] : [])))];
  const addLane = (a: Ipv4, t: string) => {
    const id = `ip-${formatIpv4(a)}`;
    const ports = portsOf(a);
    lanes.push({ id, title: t, subtitle: ports.length === 1 ? `${formatIpv4(a)}:${ports[0]}` : formatIpv4(a) });
    laneOf.set(a, id);
  };
  const localLane = localAddrs.length > 0 ? `ip-${formatIpv4(localAddrs[0]!)}` : 'local';
  if (localAddrs.length > 0) {
    addLane(localAddrs[0]!, title(opts.local?.role ?? roleOf.get(localAddrs[0]!) ?? 'host'));
    for (const a of localAddrs.slice(1)) laneOf.set(a, localLane);
  }
  for (const [pub, inside] of natFor) if (laneOf.has(inside) && !laneOf.has(pub)) addLane(pub, title('NAT'));
  if (server) {
    const id = 'server';
    lanes.push({ id, title: 'server', subtitle: server.secondary !== undefined ? `${formatIpv4(server.primary)}+${server.secondary === server.primary + 1 ? '1' : formatIpv4(server.secondary)}` : formatIpv4(server.primary) });
    for (const a of serverAddrs) laneOf.set(a, id);
  }
  for (const p of teredo) {
    for (const a of [p.src.addr, p.dst.addr]) {
      if (laneOf.has(a)) continue;
      if (a === 0xe00000fd) {
        lanes.push({ id: 'discovery', title: 'discovery', subtitle: '224.0.0.253' });
        laneOf.set(a, 'discovery');
        continue;
      }
      addLane(a, title(natFor.has(a) ? 'NAT' : (roleOf.get(a) ?? 'host')));
    }
  }

  // Our own Teredo addresses: where tunnel packets are delivered.
  const ours = new Set<string>();
  teredo.forEach((p, i) => {
    const inner = labels[i]!.inner;
    if (inner && localAddrs.includes(p.dst.addr) && labels[i]!.kind !== 'RA') ours.add(inner.dst);
    if (inner && localAddrs.includes(p.src.addr) && labels[i]!.kind !== 'RS') ours.add(inner.src);
  });

  const messages: LadderMessage[] = [];
  let ti = 0;
  for (const p of packets) {
    const at = Math.round((p.at - origin) * 1000) / 1000;
    if (p.kind === 'udp') {
      if (!isTeredoDatagram(p)) continue;
      const l = labels[ti++]!;
      if (opts.skipQualification && (l.kind === 'RS' || l.kind === 'RA')) continue;
      messages.push({
        at,
        from: laneOf.get(p.src.addr)!,
        to: laneOf.get(p.dst.addr)!,
        label: l.text,
        detail: `${formatIpv4Port(p.src)} > ${formatIpv4Port(p.dst)}`,
        style: styleOf(l.kind),
      });
      continue;
    }
    if (p.packet.length < 40) continue;
    const src = formatIpv6(p.packet.subarray(8, 24));
    const dst = formatIpv6(p.packet.subarray(24, 40));
    const incoming = p.dir !== undefined ? p.dir === 'out' : ours.has(dst) || (!ours.has(src) && isTeredoAddress(p.packet.subarray(24, 40)) && !isLinkLocal(p.packet.subarray(24, 40)));
    if (lanes.length === 0 || !lanes.some((l) => l.id === localLane)) lanes.unshift({ id: localLane, title: opts.local?.role ?? 'host' });
    messages.push({
      at,
      from: localLane,
      to: localLane,
      label: `${incoming ? 'stack gets' : 'stack sends'} ${icmpText(p.packet)}`,
      detail: `${src} > ${dst}`,
      style: 'echo',
    });
  }
  return { lanes, messages, notTeredo, origin };
}
