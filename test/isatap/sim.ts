/**
 * A deterministic protocol-41 network for the tunnel cores (ISATAP, 6to4): nodes by IPv4 address, a virtual clock
 * that jumps to the next deadline, every action carried out the way src/io/proto41.ts does (ipv4-send builds a
 * real IPv4 header and hands the whole packet to the destination core's handleIpv4).
 */
import type { TunnelAction, TunnelCore } from '../../src/isatap/tunnel.js';
import type { Ipv4 } from '../../src/wire/ip.js';
import { emitIpv4Header, IPV4_MIN_HEADER, PROTO_IPV6 } from '../../src/wire/ipv4.js';

export type SimCore = TunnelCore & { start(now: number): void };

export interface SimNode {
  name: string;
  core: SimCore;
  /** Packets handed up to the node's stack (the TUN). */
  delivered: Uint8Array[];
  /** Every interface configuration asked for, in order. */
  ifaces: Extract<TunnelAction, { kind: 'iface-up' }>[];
  states: string[];
  resolves: { at: number; name: string }[];
}

export interface SentRecord {
  at: number;
  from: string;
  src: Ipv4;
  dst: Ipv4;
  packet: Uint8Array;
}

export class TunnelSim {
  now = 0;
  readonly nodes = new Map<Ipv4, SimNode>();
  readonly sent: SentRecord[] = [];
  /** Packets to addresses nobody answers. */
  readonly lost: SentRecord[] = [];
  /** What a 'resolve' action returns: the name's addresses now, or undefined (a failed lookup). */
  resolver: (name: string) => Ipv4[] | undefined = () => undefined;
  private readonly pending: { at: number; seq: number; to: Ipv4; packet: Uint8Array }[] = [];
  private seq = 0;

  constructor(private readonly latencyMs = 1) {}

  add(name: string, addr: Ipv4, core: SimCore): SimNode {
    const node: SimNode = { name, core, delivered: [], ifaces: [], states: [], resolves: [] };
    this.nodes.set(addr, node);
    return node;
  }

  start(): void {
    for (const n of this.nodes.values()) n.core.start(this.now);
    this.drainAll();
  }

  /** An IPv6 packet from a node's own stack (the kernel routed it into the tunnel). */
  fromStack(node: SimNode, packet: Uint8Array): void {
    node.core.handleIpv6(this.now, packet);
    this.drainAll();
  }

  /** A raw IPv4 packet arriving at `to` (spoofs, malformed input). */
  inject(to: Ipv4, packet: Uint8Array): void {
    this.nodes.get(to)!.core.handleIpv4(this.now, packet);
    this.drainAll();
  }

  /** Runs until `until`, delivering packets and firing timers in time order. */
  runUntil(until: number): void {
    for (;;) {
      let next = Infinity;
      for (const p of this.pending) next = Math.min(next, p.at);
      for (const n of this.nodes.values()) {
        const t = n.core.pollTimeout();
        if (t !== undefined) next = Math.min(next, t);
      }
      if (next > until) break;
      this.now = Math.max(this.now, next);
      const due = this.pending.filter((p) => p.at <= this.now).sort((a, b) => a.at - b.at || a.seq - b.seq);
      for (const p of due) this.pending.splice(this.pending.indexOf(p), 1);
      for (const p of due) this.nodes.get(p.to)?.core.handleIpv4(this.now, p.packet);
      for (const n of this.nodes.values()) {
        const t = n.core.pollTimeout();
        if (t !== undefined && t <= this.now) n.core.handleTimeout(this.now);
      }
      this.drainAll();
    }
    this.now = until;
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  drainAll(): void {
    for (const n of this.nodes.values()) for (let a = n.core.poll(); a; a = n.core.poll()) this.perform(n, a);
  }

  private perform(node: SimNode, a: TunnelAction): void {
    switch (a.kind) {
      case 'ipv4-send': {
        const packet = new Uint8Array(IPV4_MIN_HEADER + a.packet.length);
        emitIpv4Header({ src: a.src, dst: a.dst, protocol: PROTO_IPV6, payloadLength: a.packet.length }, packet, 0);
        packet.set(a.packet, IPV4_MIN_HEADER);
        const rec = { at: this.now, from: node.name, src: a.src, dst: a.dst, packet: a.packet.slice() };
        this.sent.push(rec);
        if (this.nodes.has(a.dst)) this.pending.push({ at: this.now + this.latencyMs, seq: this.seq++, to: a.dst, packet });
        else this.lost.push(rec);
        return;
      }
      case 'ipv6-deliver':
        node.delivered.push(a.packet.slice());
        return;
      case 'iface-up':
        node.ifaces.push(a);
        return;
      case 'resolve': {
        node.resolves.push({ at: this.now, name: a.name });
        const addrs = this.resolver(a.name);
        node.core.handleResolved(this.now, a.name, addrs, addrs ? undefined : 'NXDOMAIN');
        return;
      }
      case 'state-changed':
        node.states.push(a.state);
        return;
    }
  }
}

/** The IPv4 packet an encapsulating node would send (for injecting by hand). */
export function encapsulate(src: Ipv4, dst: Ipv4, inner: Uint8Array, protocol = PROTO_IPV6): Uint8Array {
  const packet = new Uint8Array(IPV4_MIN_HEADER + inner.length);
  emitIpv4Header({ src, dst, protocol, payloadLength: inner.length }, packet, 0);
  packet.set(inner, IPV4_MIN_HEADER);
  return packet;
}
