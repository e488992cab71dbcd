/**
 * A Linux TUN device (IFF_TUN | IFF_NO_PI) read and written on the event loop: uv_poll tells when the fd is
 * readable, then one native call drains up to a batch of packets into a reused arena (no per-packet allocation,
 * no thread-pool hop). Writes are synchronous, one write() per packet: writev and fs streams lose or merge packets
 * on a TUN fd (shared/reference/dataplane-notes.md). enqueue() copies packets into a write arena that flush()
 * (called by the driver after each received batch, or from setImmediate) writes with one native call.
 *
 * The device exists while the fd is open; address, MTU and link state are set by someone else (`ip`, netlink).
 */
import { Counters } from '../core/counters.js';
import { GroQueue, VNET_HDR_LEN, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_F_NEEDS_CSUM } from './gro.js';
import { errnoName, loadNative, type NativeBinding, type PollHandle, type TunOpenOptions } from './native.js';

export interface TunDeviceOptions extends TunOpenOptions {
  /** Bytes per receive slot; packets longer than this are dropped and counted. Default 2048 (65552 with vnetHdr). */
  slotSize?: number;
  /** Packets per native read call. Default 64. */
  batchSize?: number;
  /** Read calls per readiness wake-up before yielding to the rest of the loop. Default 16. */
  maxBatchesPerWake?: number;
  /** Packets that enqueue() may hold before a flush. Default 256. */
  writeQueuePackets?: number;
  /** Bytes that enqueue() may hold before a flush. Default 256 KiB. */
  writeQueueBytes?: number;
  /**
   * Offloads (implies vnetHdr): enqueue() merges consecutive segments of a TCP flow into one super-packet
   * (gro.ts), so the kernel handles one packet where it would have handled many. Reads stay single packets (no
   * TUNSETOFFLOAD: the kernel completes checksums and segments before handing packets over).
   */
  offload?: boolean;
}

/**
 * Receives a batch: packet i is arena.subarray(i * slotSize + headroom, i * slotSize + headroom + lengths[i]) for
 * i < count (headroom: the virtio_net_hdr of a vnetHdr device, else 0). A length of 0 marks a packet dropped by the
 * device (counted): skip it. The arena and lengths are reused for the next batch: copy what you keep.
 */
export type TunPacketsCallback = (arena: Uint8Array, lengths: Uint32Array, count: number, slotSize: number, headroom: number) => void;

export interface TunStats {
  rxPackets: number;
  rxBatches: number;
  /** Packets longer than slotSize, dropped. */
  rxTruncated: number;
  rxErrors: number;
  txPackets: number;
  txBytes: number;
  /** write() said EAGAIN: the packet was dropped. */
  txEagain: number;
  txErrors: number;
  /** Native batch write calls made by flush(). */
  txFlushes: number;
  /** vnetHdr: packets read with a GSO or NEEDS_CSUM header (never asked for), dropped. */
  rxOffloadDropped: number;
  /** offload: TCP segments or UDP datagrams merged into a super-packet (each one write() less), and super-packets
   *  written (of them, UDP ones: txUdpSuperPackets). */
  txMerged: number;
  txSuperPackets: number;
  txUdpSuperPackets: number;
  /** offload: TCP segments or UDP datagrams left alone because a checksum was wrong (they go out as they came). */
  txBadChecksum: number;
}

export class TunDevice {
  readonly stats: TunStats = {
    rxPackets: 0, rxBatches: 0, rxTruncated: 0, rxErrors: 0, txPackets: 0, txBytes: 0, txEagain: 0, txErrors: 0,
    txFlushes: 0, rxOffloadDropped: 0, txMerged: 0, txSuperPackets: 0, txUdpSuperPackets: 0, txBadChecksum: 0,
  };
  /** OS errors by direction and errno name: 'tx:EINVAL', 'rx:EBADFD', 'poll:EBADF'. */
  readonly errors = new Counters();
  readonly slotSize: number;
  readonly batchSize: number;
  /** Every packet read or written starts with a virtio_net_hdr. */
  readonly vnetHdr: boolean;
  /** The kernel takes GSO_UDP_L4 super-packets from this device's writer (Linux >= 6.2): UDP runs are merged too. */
  readonly uso: boolean;

  private readonly native: NativeBinding;
  private readonly arena: Uint8Array;
  private readonly lengths: Uint32Array;
  private readonly readStats = new Uint32Array(1);
  private readonly maxBatchesPerWake: number;
  private poll: PollHandle | undefined;
  private callback: TunPacketsCallback | undefined;
  private errorHandler: ((err: Error) => void) | undefined;
  private closed = false;
  private refed = true;
  // Write queue: packets [0, wq) packed in wArena[0, wqBytes).
  private readonly wArena: Uint8Array;
  private readonly wOffsets: Uint32Array;
  private readonly wLengths: Uint32Array;
  private readonly wResults: Int32Array;
  private wq = 0;
  private wqBytes = 0;
  /** vnetHdr: the write queue (entries with headers, merged when offloading) instead of wArena/wOffsets/wLengths. */
  private readonly gro: GroQueue | undefined;
  private flushScheduled: ReturnType<typeof setImmediate> | undefined;
  private readonly flushFromImmediate = (): void => {
    this.flushScheduled = undefined;
    this.flush();
  };

  /** Creates (or attaches to) the TUN interface `name`; '' lets the kernel pick tunN. Needs CAP_NET_ADMIN. */
  static open(name: string, opts: TunDeviceOptions = {}): TunDevice {
    const native = loadNative();
    const vnetHdr = opts.vnetHdr === true || opts.offload === true;
    const { fd, name: actual, uso } = native.tunOpen(name, { multiQueue: opts.multiQueue, vnetHdr });
    return new TunDevice(native, fd, actual, opts, uso);
  }

  /** Wraps an fd that is already a configured TUN queue (handed over by a privileged parent, say). UDP datagrams
   *  are not merged there (whether the kernel takes USO is not known). */
  static fromFd(fd: number, name: string, opts: TunDeviceOptions = {}): TunDevice {
    return new TunDevice(loadNative(), fd, name, opts, false);
  }

  private constructor(native: NativeBinding, readonly fd: number, readonly name: string, opts: TunDeviceOptions, uso: boolean) {
    this.native = native;
    this.uso = uso;
    this.vnetHdr = opts.vnetHdr === true || opts.offload === true;
    // Reads are never GSO (no TUNSETOFFLOAD), so a vnetHdr slot needs only the header's room more.
    this.slotSize = positiveInt('slotSize', opts.slotSize ?? (this.vnetHdr ? 2048 + VNET_HDR_LEN : 2048));
    this.batchSize = positiveInt('batchSize', opts.batchSize ?? 64);
    this.maxBatchesPerWake = positiveInt('maxBatchesPerWake', opts.maxBatchesPerWake ?? 16);
    this.arena = new Uint8Array(this.slotSize * this.batchSize);
    this.lengths = new Uint32Array(this.batchSize);
    const wPackets = positiveInt('writeQueuePackets', opts.writeQueuePackets ?? 256);
    this.wArena = new Uint8Array(Math.max(positiveInt('writeQueueBytes', opts.writeQueueBytes ?? 256 * 1024), 65536));
    this.wOffsets = new Uint32Array(wPackets);
    this.wLengths = new Uint32Array(wPackets);
    this.wResults = new Int32Array(wPackets);
    this.gro = this.vnetHdr ? new GroQueue(wPackets, this.wArena.length + wPackets * VNET_HDR_LEN, opts.offload === true, opts.offload === true && uso) : undefined;
  }

  /** Starts (or redirects) delivery of received packets. */
  onPackets(callback: TunPacketsCallback): void {
    this.assertOpen();
    this.callback = callback;
    if (this.poll === undefined) {
      this.poll = this.native.pollStart(this.fd, 'r', (status) => this.onReadable(status));
      if (!this.refed) this.native.pollRef(this.poll, false);
    }
  }

  /** Called when the device fails (e.g. it was deleted): reading has stopped. Without a handler: a warning. */
  onError(handler: (err: Error) => void): void {
    this.errorHandler = handler;
  }

  /** Writes one packet. Never throws for OS errors: false means it was dropped (counted). */
  write(packet: Uint8Array): boolean {
    return this.writeAt(packet, 0, packet.length);
  }

  /** write() of buf[offset, offset+length) without making a subarray. */
  writeAt(buf: Uint8Array, offset: number, length: number): boolean {
    if (this.gro !== undefined) {
      // The packet needs its header in front: through the queue.
      const before = this.stats.txPackets;
      this.enqueue(buf, offset, length);
      this.flush();
      return this.stats.txPackets > before;
    }
    if (this.wq > 0) this.flush();
    const r = this.native.tunWrite(this.fd, buf, offset, length);
    if (r >= 0) {
      this.stats.txPackets++;
      this.stats.txBytes += r;
      return true;
    }
    if (r === -1) this.stats.txEagain++;
    else {
      this.stats.txErrors++;
      this.errors.inc(`tx:${errnoName(-r)}`);
    }
    return false;
  }

  /**
   * Queues a copy of buf[offset, offset+length) for the next flush() (at the latest from setImmediate, in this
   * event-loop turn). Packets keep their order, also relative to write(), which flushes the queue first.
   */
  enqueue(buf: Uint8Array, offset: number, length: number): void {
    if (this.closed) {
      this.stats.txErrors++;
      this.errors.inc('tx:closed');
      return;
    }
    const gro = this.gro;
    if (gro !== undefined) {
      if (!gro.push(buf, offset, length)) {
        this.flush();
        if (!gro.push(buf, offset, length)) {
          this.stats.txErrors++;
          this.errors.inc('tx:too-long');
          return;
        }
      }
      if (this.flushScheduled === undefined) this.flushScheduled = setImmediate(this.flushFromImmediate);
      return;
    }
    if (this.wq === this.wOffsets.length || this.wqBytes + length > this.wArena.length) {
      this.flush();
      if (length > this.wArena.length) {
        this.writeAt(buf, offset, length);
        return;
      }
    }
    const i = this.wq++;
    this.wArena.set(buf.subarray(offset, offset + length), this.wqBytes);
    this.wOffsets[i] = this.wqBytes;
    this.wLengths[i] = length;
    this.wqBytes += length;
    if (this.flushScheduled === undefined) this.flushScheduled = setImmediate(this.flushFromImmediate);
  }

  /** Packets waiting for flush(). */
  get pendingWrites(): number {
    return this.gro !== undefined ? this.gro.count : this.wq;
  }

  /** Writes the queued packets, one write() each, in one native call. Never throws for OS errors (counted). */
  flush(): void {
    if (this.flushScheduled !== undefined) {
      clearImmediate(this.flushScheduled);
      this.flushScheduled = undefined;
    }
    if (this.gro !== undefined) {
      this.flushGro(this.gro);
      return;
    }
    const n = this.wq;
    if (n === 0) return;
    this.wq = 0;
    this.wqBytes = 0;
    if (this.closed) return;
    const { stats, wResults } = this;
    this.native.tunWriteBatch(this.fd, this.wArena, this.wOffsets, this.wLengths, n, wResults);
    stats.txFlushes++;
    for (let i = 0; i < n; i++) {
      const r = wResults[i]!;
      if (r >= 0) {
        stats.txPackets++;
        stats.txBytes += r;
      } else if (r === -11) stats.txEagain++;
      else {
        stats.txErrors++;
        this.errors.inc(`tx:${errnoName(-r)}`);
      }
    }
  }

  private flushGro(gro: GroQueue): void {
    const n = gro.count;
    if (n === 0) return;
    const { stats, wResults } = this;
    if (!this.closed) {
      this.native.tunWriteBatch(this.fd, gro.arena, gro.offsets, gro.lengths, n, wResults);
      stats.txFlushes++;
      for (let i = 0; i < n; i++) {
        const r = wResults[i]!;
        if (r >= 0) {
          stats.txPackets++;
          stats.txBytes += r - VNET_HDR_LEN;
        } else if (r === -11) stats.txEagain++;
        else {
          stats.txErrors++;
          this.errors.inc(`tx:${errnoName(-r)}`);
        }
      }
    }
    gro.clear();
    const g = gro.stats;
    stats.txMerged = g.merged;
    stats.txSuperPackets = g.superPackets;
    stats.txUdpSuperPackets = g.udpSuperPackets;
    stats.txBadChecksum = g.badChecksum;
  }

  /** Whether the read poll keeps the process alive (default true). */
  ref(): void {
    this.refed = true;
    if (this.poll) this.native.pollRef(this.poll, true);
  }

  unref(): void {
    this.refed = false;
    if (this.poll) this.native.pollRef(this.poll, false);
  }

  /** Stats and error counters in one flat, sorted record. */
  counters(): Record<string, number> {
    return { ...this.stats, ...this.errors.snapshot() };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops reading and closes the fd (the interface disappears unless persistent). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    if (this.flushScheduled !== undefined) clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    this.closed = true;
    if (this.poll) this.native.pollStop(this.poll);
    this.poll = undefined;
    this.callback = undefined;
    this.native.close(this.fd);
  }

  private onReadable(status: number): void {
    if (this.closed) return;
    if (status < 0) {
      // libuv reports POLLERR as EBADF and stops the poll; on a TUN fd it means the device is going away.
      this.errors.inc(`poll:${errnoName(-status)}`);
      if (this.poll) this.native.pollStop(this.poll);
      this.poll = undefined;
      const err = new Error(`TUN ${this.name}: poll failed (${errnoName(-status)}); reading stopped`);
      if (this.errorHandler) this.errorHandler(err);
      else process.emitWarning(err);
      return;
    }
    const { native, fd, arena, slotSize, batchSize, lengths, readStats, stats } = this;
    for (let b = 0; b < this.maxBatchesPerWake; b++) {
      const n = native.tunReadBatch(fd, arena, slotSize, batchSize, lengths, readStats);
      if (readStats[0] !== 0) {
        stats.rxTruncated += readStats[0]!;
        readStats[0] = 0;
      }
      if (n < 0) {
        stats.rxErrors++;
        this.errors.inc(`rx:${errnoName(-n)}`);
        return;
      }
      if (n === 0) return;
      stats.rxPackets += n;
      stats.rxBatches++;
      let headroom = 0;
      if (this.vnetHdr) {
        headroom = VNET_HDR_LEN;
        for (let i = 0; i < n; i++) {
          const o = i * slotSize;
          const len = lengths[i]!;
          if (len < VNET_HDR_LEN || arena[o + 1] !== VIRTIO_NET_HDR_GSO_NONE || (arena[o]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0) {
            stats.rxOffloadDropped++;
            lengths[i] = 0;
          } else lengths[i] = len - VNET_HDR_LEN;
        }
      }
      this.callback?.(arena, lengths, n, slotSize, headroom);
      if (this.closed || n < batchSize) return;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`TUN ${this.name} is closed`);
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}
