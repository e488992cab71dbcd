/**
 * The seeds' topology in the simulator, for the reachability matrix (`transit6 sim reach`) and the traces:
 * a Teredo server with two addresses, a relay for 2001::/32, a native IPv6 host, and clients behind every kind of
 * NAT, two of them behind one NAT. Every ordered pair is tried on a fresh network, started by the first of the
 * pair: ICMPv6 echo requests go out once a second and the pair connects if an answer comes back.
 */
import { SeededRng } from '../core/rng.js';
import { ActionQueue, type Action, type Endpoint } from '../core/endpoint.js';
import type { Millis } from '../core/time.js';
import { TeredoClient } from '../teredo/client.js';
import { TeredoRelay, TeredoServerRelay } from '../teredo/relay.js';
import { TeredoServer } from '../teredo/server.js';
import { buildIcmpv6Packet, parseIcmpv6Packet } from '../wire/icmpv6.js';
import { formatIpv6, ipv6Equal, parseIpv4, parseIpv6, type Ipv4, type Ipv4Port } from '../wire/ip.js';
import { natPreset, type NatPresetKind } from './nat.js';
import { SimNetwork } from './network.js';

export const REACH_CLIENTS = ['fc', 'rc', 'prc', 'prc2', 'sym', 'pub', 'lan1', 'lan2'] as const;
/** Two more symmetric NATs for the RFC 6081 §3.3/§3.4 extensions: one that preserves ports, one sequential. */
export const EXTRA_CLIENTS = ['sympp', 'symseq'] as const;
export type ReachClient = (typeof REACH_CLIENTS)[number] | (typeof EXTRA_CLIENTS)[number];
export type ReachNode = ReachClient | 'v6host';
export const REACH_NODES: readonly ReachNode[] = [...REACH_CLIENTS, 'v6host'];

function v4(t: string): Ipv4 {
  return parseIpv4(t)!;
}
function v6(t: string): Uint8Array {
  return parseIpv6(t)!;
}

export const REACH_ADDRESSES = {
  serverPrimary: v4('198.51.100.1'),
  serverSecondary: v4('198.51.100.2'),
  relay: { addr: v4('198.51.100.17'), port: 3545 },
  v6host: v6('2001:db8:1::10'),
};

interface ClientSpec {
  nat?: { name: string; kind: NatPresetKind; publicAddr: Ipv4; allocation?: 'preserving' | 'sequential' };
  addr: Ipv4;
  port: number;
}

/** Which NAT each client sits behind; lan1 and lan2 share one. */
export const REACH_CLIENT_SPECS: Record<ReachClient, ClientSpec> = {
  fc: { nat: { name: 'nat-fc', kind: 'full-cone', publicAddr: v4('203.0.113.33') }, addr: v4('192.168.3.10'), port: 3550 },
  rc: { nat: { name: 'nat-rc', kind: 'restricted', publicAddr: v4('203.0.113.81') }, addr: v4('192.168.6.10'), port: 50001 },
  prc: { nat: { name: 'nat-prc', kind: 'port-restricted', publicAddr: v4('203.0.113.1') }, addr: v4('192.168.1.10'), port: 50002 },
  prc2: { nat: { name: 'nat-prc2', kind: 'port-restricted', publicAddr: v4('203.0.113.65') }, addr: v4('192.168.4.10'), port: 50003 },
  sym: { nat: { name: 'nat-sym', kind: 'symmetric', publicAddr: v4('203.0.113.17') }, addr: v4('192.168.2.10'), port: 50004 },
  pub: { addr: v4('203.0.113.49'), port: 50005 },
  lan1: { nat: { name: 'nat-lan', kind: 'port-restricted', publicAddr: v4('203.0.113.97') }, addr: v4('192.168.5.10'), port: 50006 },
  lan2: { nat: { name: 'nat-lan', kind: 'port-restricted', publicAddr: v4('203.0.113.97') }, addr: v4('192.168.5.11'), port: 50006 },
  sympp: { nat: { name: 'nat-sympp', kind: 'symmetric', publicAddr: v4('203.0.113.113'), allocation: 'preserving' }, addr: v4('192.168.7.10'), port: 50007 },
  symseq: { nat: { name: 'nat-symseq', kind: 'symmetric', publicAddr: v4('203.0.113.129'), allocation: 'sequential' }, addr: v4('192.168.8.10'), port: 50008 },
};

/** A native IPv6 host: packets to its address are received; anything else it is handed is its own, sent out. */
export class NativeHost implements Endpoint {
  private readonly actions = new ActionQueue();
  readonly received: { at: Millis; packet: Uint8Array }[] = [];

  constructor(readonly address: Uint8Array) {}

  handleDatagram(): void {}

  handleIpv6(now: Millis, packet: Uint8Array): void {
    if (packet.length >= 40 && ipv6Equal(packet.subarray(24, 40), this.address)) {
      this.received.push({ at: now, packet: packet.slice() });
      const reply = echoReplyFor(packet, this.address);
      if (reply) this.actions.push({ kind: 'ipv6-forward', packet: reply });
      return;
    }
    this.actions.push({ kind: 'ipv6-forward', packet: packet.slice() });
  }

  handleTimeout(): void {}

  pollTimeout(): Millis | undefined {
    return undefined;
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }
}

/** What an IPv6 stack answers to an echo request for one of its addresses. */
export function echoReplyFor(packet: Uint8Array, own: Uint8Array): Uint8Array | undefined {
  const p = parseIcmpv6Packet(packet);
  if (!p.ok || p.value.message.type !== 'echo-request' || !ipv6Equal(p.value.dst, own)) return undefined;
  const m = p.value.message;
  return buildIcmpv6Packet(own, p.value.src, { type: 'echo-reply', identifier: m.identifier, sequence: m.sequence, data: m.data });
}

/**
 * A dual-stack host acting as its own Teredo relay (the white paper's host-specific relay): its IPv6 stack answers
 * pings; whatever it sends to a Teredo address goes straight over IPv4 through its relay core in host mode.
 */
export class HostSpecificRelayHost implements Endpoint {
  private readonly actions = new ActionQueue();
  readonly received: { at: Millis; packet: Uint8Array }[] = [];

  constructor(
    readonly address: Uint8Array,
    readonly relay: TeredoRelay,
  ) {}

  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    this.relay.handleDatagram(now, from, to, data);
    this.collect(now);
  }

  /** From the IPv6 network (packets for this host) or from the host's own applications (packets to send). */
  handleIpv6(now: Millis, packet: Uint8Array): void {
    if (packet.length >= 40 && ipv6Equal(packet.subarray(24, 40), this.address)) this.stack(now, packet);
    else this.send(now, packet);
    this.collect(now);
  }

  handleTimeout(now: Millis): void {
    this.relay.handleTimeout(now);
    this.collect(now);
  }

  pollTimeout(): Millis | undefined {
    return this.relay.pollTimeout();
  }

  poll(): Action | undefined {
    return this.actions.poll();
  }

  private stack(now: Millis, packet: Uint8Array): void {
    this.received.push({ at: now, packet: packet.slice() });
    const reply = echoReplyFor(packet, this.address);
    if (reply) this.send(now, reply);
  }

  private send(now: Millis, packet: Uint8Array): void {
    // 2001::/32 is on the host's own Teredo interface; the rest goes out natively.
    if (packet.length >= 40 && packet[24] === 0x20 && packet[25] === 0x01 && packet[26] === 0 && packet[27] === 0) this.relay.handleIpv6(now, packet);
    else this.actions.push({ kind: 'ipv6-forward', packet: packet.slice() });
  }

  private collect(now: Millis): void {
    for (let a = this.relay.poll(); a; a = this.relay.poll()) {
      if (a.kind === 'ipv6-deliver') this.stack(now, a.packet);
      else this.actions.push(a);
    }
  }
}

export interface ReachNetwork {
  net: SimNetwork;
  server: TeredoServer;
  relay: TeredoRelay;
  hsr: HostSpecificRelayHost | undefined;
  v6host: NativeHost;
  clients: Map<ReachClient, TeredoClient>;
  /** Echo replies each node's stack received, by node. */
  replies: Map<ReachNode, { at: Millis; seq: number }[]>;
  addressOf(node: ReachNode): Uint8Array | undefined;
}

export interface ReachOptions {
  seed?: number;
  /** Only these clients are built (all by default). */
  clients?: readonly ReachClient[];
  /** Client options, e.g. to turn an RFC 6081 extension off. */
  clientOptions?: Partial<ConstructorParameters<typeof TeredoClient>[0]>;
  /** The server is also the relay for 2001::/32 (RFC 4380 §5.4.3). */
  serverRelay?: boolean;
  /** Add `hsr`, a dual-stack host (198.51.100.40, 2001:db8:2::40) that is its own Teredo relay. */
  hostSpecificRelay?: boolean;
}

export const HSR_ADDRESSES = { ipv4: v4('198.51.100.40'), ipv6: v6('2001:db8:2::40'), port: 3545 };

export function buildReachNetwork(opts: ReachOptions = {}): ReachNetwork {
  const seed = opts.seed ?? 4380;
  const A = REACH_ADDRESSES;
  const net = new SimNetwork(seed);
  const rng = new SeededRng(seed ^ 0x5eed);
  const server = new TeredoServer({ primary: A.serverPrimary, secondary: A.serverSecondary, probePort: 3546 });
  const relay = new TeredoRelay({ local: A.relay }, rng.fork());
  if (opts.serverRelay) {
    const both = new TeredoServerRelay(server, new TeredoRelay({ local: { addr: A.serverPrimary, port: 3544 } }, rng.fork()));
    net.addHost('server', { addrs: [A.serverPrimary, A.serverSecondary], endpoint: both, port: 3544, localPorts: [3546] });
  } else {
    net.addHost('server', { addrs: [A.serverPrimary, A.serverSecondary], endpoint: server, port: 3544, localPorts: [3546] });
  }
  net.addHost('relay', { addr: A.relay.addr, endpoint: relay, port: A.relay.port });
  const v6host = new NativeHost(A.v6host);
  net.addHost('v6host', { addr: v4('198.51.100.200'), endpoint: v6host, port: 9 });
  net.addIpv6Route(v6('2001::'), 32, opts.serverRelay ? 'server' : 'relay');
  net.addIpv6Route(v6('2001:db8:1::'), 64, 'v6host');
  let hsr: HostSpecificRelayHost | undefined;
  if (opts.hostSpecificRelay) {
    hsr = new HostSpecificRelayHost(HSR_ADDRESSES.ipv6, new TeredoRelay({ mode: 'host', hostAddresses: [HSR_ADDRESSES.ipv6] }, rng.fork()));
    net.addHost('hsr', { addr: HSR_ADDRESSES.ipv4, endpoint: hsr, port: HSR_ADDRESSES.port });
    net.addIpv6Route(v6('2001:db8:2::'), 64, 'hsr');
  }
  const replies = new Map<ReachNode, { at: Millis; seq: number }[]>();
  for (const n of [...REACH_NODES, ...EXTRA_CLIENTS]) replies.set(n, []);
  const clients = new Map<ReachClient, TeredoClient>();
  const wanted = opts.clients ?? REACH_CLIENTS;
  for (const name of wanted) {
    const spec = REACH_CLIENT_SPECS[name];
    if (spec.nat && !hasNat(net, spec.nat.name)) {
      net.addNat(spec.nat.name, natPreset(spec.nat.kind, spec.nat.publicAddr, { rng: net.forkRng(), ...(spec.nat.allocation ? { allocation: spec.nat.allocation } : {}) }));
    }
    const local: Ipv4Port = { addr: spec.addr, port: spec.port };
    const client = new TeredoClient({ server: A.serverPrimary, server2: A.serverSecondary, probePort: 3546, local, ...opts.clientOptions }, rng.fork());
    clients.set(name, client);
    net.addHost(name, {
      addr: spec.addr,
      port: spec.port,
      localPorts: [3544],
      endpoint: client,
      ...(spec.nat ? { behind: spec.nat.name } : {}),
      onIpv6Deliver: (at, packet) => {
        const own = client.teredoAddress;
        if (!own) return;
        const reply = echoReplyFor(packet, own);
        // The host's stack answers pings through the same tunnel, as the kernel would.
        if (reply) net.injectIpv6(name, reply);
        const p = parseIcmpv6Packet(packet);
        if (p.ok && p.value.message.type === 'echo-reply') replies.get(name)!.push({ at, seq: p.value.message.sequence });
      },
    });
  }
  // The native host records the echo replies it gets.
  const origHandle = v6host.handleIpv6.bind(v6host);
  v6host.handleIpv6 = (now: Millis, packet: Uint8Array) => {
    const p = parseIcmpv6Packet(packet);
    if (p.ok && p.value.message.type === 'echo-reply' && ipv6Equal(p.value.dst, A.v6host)) replies.get('v6host')!.push({ at: now, seq: p.value.message.sequence });
    origHandle(now, packet);
  };
  return {
    net,
    server,
    relay,
    hsr,
    v6host,
    clients,
    replies,
    addressOf: (node) => (node === 'v6host' ? A.v6host : clients.get(node)?.teredoAddress),
  };
}

function hasNat(net: SimNetwork, name: string): boolean {
  try {
    net.nat(name);
    return true;
  } catch {
    return false;
  }
}

export type ReachPath = 'direct' | 'relay' | 'local' | 'none';

export interface ReachPair {
  from: ReachNode;
  to: ReachNode;
  ok: boolean;
  path: ReachPath;
  /** Time from the first echo request to its answer; null when that first answer never came. */
  firstPacketMs: number | null;
  /** Echo requests sent and answered. */
  sent: number;
  answered: number;
  /** Whether the first echo request was answered (it waited in a queue while the path was set up). */
  firstAnswered: boolean;
}

const PINGS = 5;
const PING_INTERVAL_MS = 1000;
const ECHO_ID = 0x7a7a;

/** Runs one ordered pair on a fresh network. */
export function runReachPair(from: ReachNode, to: ReachNode, opts: ReachOptions = {}): ReachPair & { network: ReachNetwork } {
  const network = buildReachNetwork(opts);
  const { net, clients, replies } = network;
  // Everyone qualifies and knows its NAT first.
  net.runUntil(() => [...clients.values()].every((c) => c.status().natDetection === 'done'), 60_000);
  const src = network.addressOf(from);
  const dst = network.addressOf(to);
  const start = net.now;
  let sent = 0;
  if (src && dst) {
    for (let i = 0; i < PINGS; i++) {
      const echo = buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: ECHO_ID, sequence: i + 1, data: new Uint8Array(16).fill(i) });
      net.injectIpv6(from, echo);
      sent++;
      net.runFor(PING_INTERVAL_MS);
    }
    net.runFor(5_000);
  }
  const got = replies.get(from)!.filter((r) => r.at >= start);
  const first = got.find((r) => r.seq === 1);
  const answered = new Set(got.map((r) => r.seq)).size;
  return {
    from,
    to,
    ok: answered > 0,
    path: answered > 0 ? pathOf(network, from, to) : 'none',
    firstPacketMs: first ? Math.round((first.at - start) * 1000) / 1000 : null,
    sent,
    answered,
    firstAnswered: first !== undefined,
    network,
  };
}

/** How the initiator reaches its peer, read from the peer tables. */
function pathOf(network: ReachNetwork, from: ReachNode, to: ReachNode): ReachPath {
  if (from === 'v6host' || to === 'v6host') return 'relay';
  const client = network.clients.get(from)!;
  const dst = network.addressOf(to)!;
  const peer = client.peerTable().find((p) => ipv6Equal(p.address, dst));
  if (!peer || !peer.trusted) return 'none';
  const endpoint = peer.local ?? peer.endpoint;
  if (!endpoint) return 'none';
  if (endpoint.addr === REACH_ADDRESSES.relay.addr) return 'relay';
  const spec = REACH_CLIENT_SPECS[to as ReachClient];
  if (spec.nat && endpoint.addr === spec.addr) return 'local';
  return 'direct';
}

export interface ReachMatrix {
  pairs: ReachPair[];
}

export function runReachMatrix(opts: ReachOptions = {}): ReachMatrix {
  const pairs: ReachPair[] = [];
  for (const from of REACH_NODES) {
    for (const to of REACH_NODES) {
      if (from === to) continue;
      const { network: _n, ...pair } = runReachPair(from, to, opts);
      pairs.push(pair);
    }
  }
  return { pairs };
}

/**
 * Which pairs RFC 4380 with RFC 6081 connects (RFC 6081 Figure 1). Port-restricted NATs and a symmetric NAT
 * cannot meet: the symmetric NAT's new mapping for the peer is filtered by the port-restricted one, and the
 * port-restricted NAT's answer is filtered by the symmetric one, whoever starts.
 */
export function expectedReachable(from: ReachNode, to: ReachNode): boolean {
  const portRestricted = new Set<ReachNode>(['prc', 'prc2', 'lan1', 'lan2']);
  if ((from === 'sym' && portRestricted.has(to)) || (to === 'sym' && portRestricted.has(from))) return false;
  return true;
}

export function formatMatrix(m: ReachMatrix): string {
  const nodes = REACH_NODES;
  const cell = (p: ReachPair | undefined): string => {
    if (!p) return '-';
    if (!p.ok) return 'no';
    return `${p.path} ${p.firstPacketMs === null ? 'first lost' : `${p.firstPacketMs.toFixed(0)}ms`}`;
  };
  const rows = nodes.map((from) => [from, ...nodes.map((to) => (from === to ? '-' : cell(m.pairs.find((p) => p.from === from && p.to === to))))]);
  const header = ['from \\ to', ...nodes];
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const lines = all.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  '));
  lines.splice(1, 0, w.map((n) => '-'.repeat(n)).join('  '));
  return lines.join('\n');
}

export function reachAddressesText(network: ReachNetwork): string {
  const lines: string[] = [];
  for (const [name, c] of network.clients) {
    const s = c.status();
    const spec = REACH_CLIENT_SPECS[name];
    lines.push(`${name.padEnd(6)} ${spec.nat ? `behind ${spec.nat.kind} NAT ${spec.nat.name}` : 'no NAT'}`.padEnd(44) + ` NAT type ${s.natType.padEnd(16)} ${s.teredoAddress ? formatIpv6(s.teredoAddress) : '-'}`);
  }
  lines.push(`${'v6host'.padEnd(6)} native IPv6`.padEnd(44) + ` ${''.padEnd(26)} ${formatIpv6(REACH_ADDRESSES.v6host)}`);
  return lines.join('\n');
}
