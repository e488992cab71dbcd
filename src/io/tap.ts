/**
 * The daemon's packet tap: the Driver's `tap` hook fans out to whoever listens (pcap files, `transit6 trace
 * --live` clients on the control socket) and counts packets and bytes each way for the metrics.
 *
 * The packet bytes are borrowed for the duration of the call: a sink that keeps them copies them. When nobody
 * listens, a packet costs two additions. The first packets after the start (qualification, NAT detection) are
 * kept in a small backlog, so that a trace attached a moment later still shows how the daemon got going.
 */
import type { Ipv4Port } from '../wire/ip.js';

export type TapDir = 'udp-in' | 'udp-out' | 'tun-in' | 'tun-out';
export const TAP_DIRS: readonly TapDir[] = ['udp-in', 'udp-out', 'tun-in', 'tun-out'];

export interface TapPacket {
  /** Wall-clock time, milliseconds since the epoch (fractional). */
  at: number;
  dir: TapDir;
  data: Uint8Array;
  /** The datagram's endpoints (UDP directions only). */
  src?: Ipv4Port;
  dst?: Ipv4Port;
}

export type TapSink = (p: TapPacket) => void;

/** What a data path needs of the tap: show packets while someone listens, otherwise only count them. */
export interface PacketTap {
  /** Nobody listens and the start-up backlog is closed: count() is all a packet needs. */
  readonly idle: boolean;
  /** Adds a packet to the counts without showing it to anyone (while idle). */
  count(dir: TapDir, bytes: number): void;
  tap(dir: TapDir, data: Uint8Array, src?: Ipv4Port, dst?: Ipv4Port): void;
}

const DIR_INDEX: Record<TapDir, number> = { 'udp-in': 0, 'udp-out': 1, 'tun-in': 2, 'tun-out': 3 };

export interface TapHubOptions {
  /** Packets kept from the start for late listeners (default 200; 0: none). */
  backlog?: number;
  /** The wall clock (for tests). */
  now?: () => number;
}

export class TapHub implements PacketTap {
  /** Packets and bytes by direction, in TAP_DIRS order. */
  readonly packets = [0, 0, 0, 0];
  readonly bytes = [0, 0, 0, 0];
  private readonly sinks = new Set<TapSink>();
  private backlog: TapPacket[] | undefined;
  private readonly backlogMax: number;
  private readonly now: () => number;
  /** For the Driver's `tap` option. */
  readonly tap: (dir: TapDir, data: Uint8Array, src?: Ipv4Port, dst?: Ipv4Port) => void;

  constructor(opts: TapHubOptions = {}) {
    this.backlogMax = opts.backlog ?? 200;
    if (this.backlogMax > 0) this.backlog = [];
    const origin = performance.timeOrigin;
    this.now = opts.now ?? (() => origin + performance.now());
    this.tap = (dir, data, src, dst) => {
      this.count(dir, data.length);
      if (this.sinks.size === 0 && this.backlog === undefined) return;
      const p: TapPacket = { at: this.now(), dir, data };
      if (src) p.src = src;
      if (dst) p.dst = dst;
      if (this.backlog) {
        this.backlog.push({ ...p, data: data.slice(), ...(src ? { src: { ...src } } : {}), ...(dst ? { dst: { ...dst } } : {}) });
        if (this.backlog.length >= this.backlogMax) this.closeBacklog();
      }
      for (const s of this.sinks) s(p);
    };
  }

  count(dir: TapDir, bytes: number): void {
    const i = DIR_INDEX[dir];
    this.packets[i]!++;
    this.bytes[i]! += bytes;
  }

  get listeners(): number {
    return this.sinks.size;
  }

  /** Nobody listens and the backlog is closed: tap() would only count (a fast path may add to the counts itself). */
  get idle(): boolean {
    return this.sinks.size === 0 && this.backlog === undefined;
  }

  /** Starts delivering packets to `sink`, first the backlog when asked; returns the function that stops it. */
  add(sink: TapSink, opts: { replay?: boolean } = {}): () => void {
    if (opts.replay) for (const p of this.recent()) sink(p);
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /** The first packets since the start, up to the backlog size. */
  recent(): readonly TapPacket[] {
    return this.backlog ?? this.kept;
  }

  /** The backlog as it was when it filled up: kept for listeners that come later. */
  private kept: TapPacket[] = [];

  /** Stops keeping the backlog (it stays available to recent()). */
  closeBacklog(): void {
    if (this.backlog) this.kept = this.backlog;
    this.backlog = undefined;
  }

  counts(): Record<TapDir, { packets: number; bytes: number }> {
    const out = {} as Record<TapDir, { packets: number; bytes: number }>;
    for (const d of TAP_DIRS) out[d] = { packets: this.packets[DIR_INDEX[d]]!, bytes: this.bytes[DIR_INDEX[d]]! };
    return out;
  }
}
