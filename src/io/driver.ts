/**
 * Runs a protocol core on real time and real sockets (DESIGN.md: the driver feeds inputs, drains poll(), then
 * re-arms exactly one timer). The core never sees a socket: datagrams and tunnel packets come in as borrowed
 * views, actions go out to the adapters here. OS errors are counted by the adapters and never stop the loop.
 */
import { performance } from 'node:perf_hooks';
import { CoreTimer } from './coretimer.js';
import type { Action, Endpoint } from '../core/endpoint.js';
import type { FastPath, FastSink } from '../teredo/fastpath.js';
import { Counters } from '../core/counters.js';
import { formatIpv4, type Ipv4Port } from '../wire/ip.js';
import type { PacketTap, TapDir } from './tap.js';
import type { TunDevice } from './tun.js';
import { UdpBatchSocket, type UdpBatchOptions } from './udp.js';

export type IfaceAction = Extract<Action, { kind: 'iface-up' | 'iface-down' }>;
export type StateAction = Extract<Action, { kind: 'state-changed' }>;

export interface DriverOptions {
  /** Sockets already bound, each for its local endpoint (a server has two or three). The first is the default. */
  sockets: { local: Ipv4Port; socket: UdpBatchSocket }[];
  /** The tunnel: ipv6-deliver writes here, packets read from it go to handleIpv6. */
  tun?: TunDevice;
  /** Where ipv6-forward goes (a raw IPv6 socket for a server, the tunnel for a relay). */
  forward?: (packet: Uint8Array) => void;
  /** The same for buf[offset, offset+length) without a view (the fast path's output); default: forward(subarray). */
  forwardAt?: (buf: Uint8Array, offset: number, length: number) => void;
  /**
   * Takes the common data packets before the core sees them (teredo/fastpath.ts), with the same decisions. Datagrams
   * on the default socket and tunnel packets are offered to it; what it declines goes to the endpoint. Dropped
   * when replaceEndpoint() installs a new core (pass the new one's with it).
   */
  fastPath?: FastPath;
  /** Interface configuration, done by a privileged helper; runs one at a time, in order. */
  iface?: (a: IfaceAction) => Promise<void>;
  onState?: (a: StateAction) => void;
  /** Every packet in and out, for the metrics and pcap capture: direction, the datagram's endpoints or none for
   *  tunnel packets. While it is idle the fast path only counts (no view, no endpoint objects). */
  tap?: PacketTap;
  /** Options for sockets the core asks to open later (RFC 6081 random ports). */
  socketOptions?: UdpBatchOptions;
  onError?: (err: Error) => void;
}

export class Driver {
  readonly counters = new Counters<'iface-errors' | 'no-socket' | 'forward-missing' | 'tun-missing' | 'udp-open-errors'>();
  private readonly sockets = new Map<number, UdpBatchSocket>();
  private readonly defaultSocket: UdpBatchSocket;
  private readonly defaultLocal: Ipv4Port;
  private readonly timer = new CoreTimer(() => {
    this.endpoint.handleTimeout(this.now());
    this.drain();
  });
  private ifaceChain: Promise<void> = Promise.resolve();
  private ifacePending = 0;
  private ifaceLast: 'up' | 'down' | 'failed' | undefined;
  private stopped = false;
  private readonly started = performance.now();
  private fastPath: FastPath | undefined;
  /** The core got an input since its actions were last carried out: do them before any fast-path output. */
  private corePending = false;
  private readonly sink: FastSink;

  constructor(
    public endpoint: Endpoint,
    private readonly opts: DriverOptions,
  ) {
    if (opts.sockets.length === 0) throw new Error('the driver needs at least one UDP socket');
    this.defaultSocket = opts.sockets[0]!.socket;
    this.defaultLocal = opts.sockets[0]!.local;
    this.fastPath = opts.fastPath;
    const socket0 = this.defaultSocket;
    const local0 = this.defaultLocal;
    this.sink = {
      udp: (addr, port, buf, offset, length) => {
        if (this.corePending) this.performPending();
        if (opts.tap) this.tapAt('udp-out', buf, offset, length, local0.addr, local0.port, addr, port);
        socket0.sendTo(addr, port, buf, offset, length);
      },
      forward: (buf, offset, length) => {
        if (this.corePending) this.performPending();
        if (opts.forwardAt) {
          if (opts.tap) this.tapAt('tun-out', buf, offset, length);
          opts.forwardAt(buf, offset, length);
        } else if (opts.forward) {
          const packet = buf.subarray(offset, offset + length);
          opts.tap?.tap('tun-out', packet);
          opts.forward(packet);
        } else this.counters.inc('forward-missing');
      },
      deliver: (buf, offset, length) => {
        if (this.corePending) this.performPending();
        if (!opts.tun) {
          this.counters.inc('tun-missing');
          return;
        }
        if (opts.tap) this.tapAt('tun-out', buf, offset, length);
        opts.tun.enqueue(buf, offset, length);
      },
    };
    for (const { local, socket } of opts.sockets) this.attach(local, socket);
    opts.tun?.onPackets((arena, lengths, count, slotSize, headroom) => {
      const now = this.now();
      const fast = this.fastPath;
      for (let i = 0; i < count; i++) {
        const off = i * slotSize + headroom;
        const len = lengths[i]!;
        if (len === 0) continue; // dropped by the device (counted there)
        if (fast !== undefined) {
          if (opts.tap) this.tapAt('tun-in', arena, off, len);
          if (fast.ipv6(now, arena, off, len, this.sink)) continue;
          this.corePending = true;
          this.endpoint.handleIpv6(now, arena.subarray(off, off + len));
          continue;
        }
        const packet = arena.subarray(off, off + len);
        opts.tap?.tap('tun-in', packet);
        this.endpoint.handleIpv6(now, packet);
      }
      this.drain();
    });
  }

  /**
   * Shows buf[off, off+len) to the tap (set); the view and the endpoints (srcAddr < 0: none) are made only when
   * someone listens, otherwise the packet is just counted: the fast path allocates nothing for it.
   */
  private tapAt(dir: TapDir, buf: Uint8Array, off: number, len: number, srcAddr = -1, srcPort = 0, dstAddr = -1, dstPort = 0): void {
    const tap = this.opts.tap!;
    if (tap.idle) {
      tap.count(dir, len);
      return;
    }
    tap.tap(dir, buf.subarray(off, off + len), srcAddr >= 0 ? { addr: srcAddr, port: srcPort } : undefined, dstAddr >= 0 ? { addr: dstAddr, port: dstPort } : undefined);
  }

  /** Carries out the actions the core has queued so far (keeps their order relative to fast-path output). */
  private performPending(): void {
    this.corePending = false;
    for (let a = this.endpoint.poll(); a; a = this.endpoint.poll()) this.perform(a);
  }

  /** Milliseconds since the driver started, on the monotonic clock. */
  now(): number {
    return performance.now() - this.started;
  }

  start(): void {
    this.drain();
  }

  /** A new core takes over the same sockets and tunnel (a reload without privileges). */
  replaceEndpoint(endpoint: Endpoint, fastPath?: FastPath): void {
    this.fastPath = fastPath;
    this.timer.clear();
    this.endpoint = endpoint;
    this.drain();
  }

  /** Feeds a datagram that arrived on a socket the driver does not own (the local discovery group). */
  feedDatagram(from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    this.opts.tap?.tap('udp-in', data, from, to);
    this.endpoint.handleDatagram(this.now(), from, to, data);
    this.drain();
  }

  /** Feeds an IPv6 packet from elsewhere (a raw socket on a server, a test). */
  injectIpv6(packet: Uint8Array): void {
    this.endpoint.handleIpv6(this.now(), packet);
    this.drain();
  }

  stop(): void {
    this.stopped = true;
    this.timer.clear();
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }

  /** Waits for queued interface changes (for a clean shutdown). */
  /**
   * Where the interface stands: 'up' once the last address change the core asked for is in the kernel,
   * 'pending' while one is being applied, 'down' before the first or after a withdrawal, 'failed' if the last failed.
   */
  ifaceStatus(): 'up' | 'pending' | 'down' | 'failed' {
    if (this.ifacePending > 0) return 'pending';
    return this.ifaceLast ?? 'down';
  }

  ifaceIdle(): Promise<void> {
    return this.ifaceChain;
  }

  private key(local: Ipv4Port): number {
    return local.addr * 65536 + local.port;
  }

  private attach(local: Ipv4Port, socket: UdpBatchSocket): void {
    this.sockets.set(this.key(local), socket);
    const isDefault = socket === this.defaultSocket;
    socket.onDatagrams((batch) => {
      const now = this.now();
      const fast = isDefault ? this.fastPath : undefined;
      const tap = this.opts.tap;
      const { arena, offsets, lengths, srcAddrs, srcPorts, dstAddrs } = batch;
      for (let i = 0; i < batch.count; i++) {
        const off = offsets[i]!;
        const len = lengths[i]!;
        // With a wildcard bind, IP_PKTINFO names the address the datagram was sent to.
        const dst = dstAddrs[i] || local.addr;
        if (fast !== undefined) {
          if (tap) this.tapAt('udp-in', arena, off, len, srcAddrs[i]!, srcPorts[i]!, dst, local.port);
          if (fast.datagram(now, srcAddrs[i]!, srcPorts[i]!, dst, arena, off, len, this.sink)) continue;
          this.corePending = true;
        }
        const data = arena.subarray(off, off + len);
        const from = { addr: srcAddrs[i]!, port: srcPorts[i]! };
        const to = { addr: dst, port: local.port };
        if (fast === undefined) tap?.tap('udp-in', data, from, to);
        this.endpoint.handleDatagram(now, from, to, data);
      }
      this.drain();
    });
  }

  private socketFor(local: Ipv4Port | undefined): UdpBatchSocket | undefined {
    if (!local) return this.defaultSocket;
    return this.sockets.get(this.key(local)) ?? this.sockets.get(this.key({ addr: 0, port: local.port }));
  }

  /** Carries out every action, then re-arms the one timer the core asks for. */
  private drain(): void {
    if (this.stopped) return;
    const now = this.now();
    this.corePending = false;
    for (let a = this.endpoint.poll(); a; a = this.endpoint.poll()) this.perform(a);
    // Tunnel writes and datagrams queued during this batch go out now, one native call each, rather than from a
    // setImmediate of their own: on an idle path that extra turn of the loop is a good part of the per-hop latency.
    this.opts.tun?.flush();
    for (const s of this.sockets.values()) if (s.pending > 0 && !s.blockedOnWrite) s.flush();
    this.timer.set(this.endpoint.pollTimeout(), now);
  }

  private perform(a: Action): void {
    switch (a.kind) {
      case 'udp-send': {
        const socket = this.socketFor(a.local);
        if (!socket) {
          this.counters.inc('no-socket');
          return;
        }
        this.opts.tap?.tap('udp-out', a.data, a.local ?? this.defaultLocal, a.remote);
        // A server answers from the address it is asked to (IP_PKTINFO source selection).
        socket.send(a.remote, a.data, a.local?.addr);
        return;
      }
      case 'udp-open': {
        if (this.sockets.has(this.key(a.local))) return;
        try {
          const s = UdpBatchSocket.bind(formatIpv4(a.local.addr), a.local.port, this.opts.socketOptions);
          this.attach(a.local, s);
        } catch (e) {
          this.counters.inc('udp-open-errors');
          this.opts.onError?.(e as Error);
        }
        return;
      }
      case 'udp-close': {
        const s = this.sockets.get(this.key(a.local));
        if (s && s !== this.defaultSocket) {
          s.close();
          this.sockets.delete(this.key(a.local));
        }
        return;
      }
      case 'ipv6-deliver':
        if (!this.opts.tun) {
          this.counters.inc('tun-missing');
          return;
        }
        this.opts.tap?.tap('tun-out', a.packet);
        this.opts.tun.enqueue(a.packet, 0, a.packet.length);
        return;
      case 'ipv6-forward':
        if (!this.opts.forward) {
          this.counters.inc('forward-missing');
          return;
        }
        this.opts.tap?.tap('tun-out', a.packet);
        this.opts.forward(a.packet);
        return;
      case 'iface-up':
      case 'iface-down': {
        const run = this.opts.iface;
        if (!run) return;
        this.ifacePending++;
        const up = a.kind === 'iface-up';
        this.ifaceChain = this.ifaceChain.then(() =>
          run(a).then(
            () => {
              this.ifacePending--;
              this.ifaceLast = up ? 'up' : 'down';
            },
            (e: unknown) => {
              this.ifacePending--;
              this.ifaceLast = 'failed';
              this.counters.inc('iface-errors');
              this.opts.onError?.(e as Error);
            },
          ),
        );
        return;
      }
      case 'state-changed':
        this.opts.onState?.(a);
        return;
    }
  }
}
