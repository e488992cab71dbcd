/**
 * A UDP/IPv4 socket moved in batches on the event loop: recvmmsg when uv_poll says readable, sendmmsg of
 * everything queued during the current turn (flushed from setImmediate), and again on writability after EAGAIN.
 * dgram's per-datagram callbacks cap at ~50k pps; batches of 64 reach ~200k (shared/reference/dataplane-notes.md).
 *
 * IP_PKTINFO is on: every received datagram says which local address it was sent to, and every send may choose
 * its source address. A Teredo server bound to 0.0.0.0 thus answers from the address it was asked on
 * (RFC 4380 §5.3.1). The socket is never connected: a connected socket turns ICMP errors into exceptions.
 *
 * OS errors never throw here: per-datagram send errors (EMSGSIZE, ENETUNREACH, EPERM...) are counted by errno
 * name and the datagram is dropped; a full queue drops and counts too.
 */
import { Counters } from '../core/counters.js';
import type { Ipv4, Ipv4Port } from '../wire/ip.js';
import {
  errnoName, loadNative, POLL_READABLE, POLL_WRITABLE, UDP_SEGS_MAX, type NativeBinding, type PollEvents,
  type PollHandle, type UdpOpenOptions,
} from './native.js';

export interface UdpBatchOptions extends UdpOpenOptions {
  /** Receive slot size: longer messages are dropped and counted (rxTruncated). Default 2048, 65536 with gro. */
  slotSize?: number;
  /** Datagrams per recvmmsg. Default 64. */
  batchSize?: number;
  /** recvmmsg calls per readiness wake-up before yielding to the loop. Default 16. */
  maxBatchesPerWake?: number;
  /** Datagrams that may wait for the next flush. Default 1024. */
  sendQueuePackets?: number;
  /** Bytes that may wait for the next flush. Default 1 MiB. */
  sendQueueBytes?: number;
  /**
   * UDP GSO: a flush sends runs of up to this many same-size datagrams to one destination as one message
   * (UDP_SEGMENT); 0 or 1 (default): off. At most 64.
   */
  gsoSegments?: number;
}

/**
 * One received batch. Datagram i (i < count) is arena[offsets[i], offsets[i] + lengths[i]) from
 * srcAddrs[i]:srcPorts[i] to dstAddrs[i]:localPort; with gro, consecutive datagrams may share a message's slot.
 * The same object and views are reused for every batch: they are valid only during the callback.
 */
export interface UdpBatch {
  count: number;
  readonly arena: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly srcAddrs: Uint32Array;
  readonly srcPorts: Uint16Array;
  /** The local address each datagram was addressed to (IP_PKTINFO); 0 if unknown. */
  readonly dstAddrs: Uint32Array;
  readonly localPort: number;
  /** Datagram i as a view (allocates the view object). */
  datagram(i: number): Uint8Array;
}

export type UdpDatagramsCallback = (batch: UdpBatch) => void;

export interface UdpStats {
  rxPackets: number;
  rxBatches: number;
  rxTruncated: number;
  rxErrors: number;
  txPackets: number;
  txBytes: number;
  /** sendmmsg calls made by flushes. */
  txFlushes: number;
  /** Flushes cut short by a full socket buffer (EAGAIN); the rest waited for writability. */
  txEagain: number;
  /** Datagrams refused by the kernel (by errno in `errors`). */
  txErrors: number;
  /** Datagrams dropped before the kernel: queue full, too big for UDP, socket closed. */
  txDropped: number;
  /** gsoSegments: messages sent with UDP_SEGMENT, and the datagrams they carried. */
  txGsoMessages: number;
  txGsoPackets: number;
  /** gro: messages that arrived coalesced by UDP GRO, and the datagrams they held (in rxPackets too). */
  rxGroMessages: number;
  rxGroPackets: number;
}

const MAX_UDP_PAYLOAD = 65535;

export class UdpBatchSocket {
  readonly stats: UdpStats = {
    rxPackets: 0, rxBatches: 0, rxTruncated: 0, rxErrors: 0, rxGroMessages: 0, rxGroPackets: 0,
    txPackets: 0, txBytes: 0, txFlushes: 0, txEagain: 0, txErrors: 0, txDropped: 0, txGsoMessages: 0, txGsoPackets: 0,
  };
  /** Errors and drops by cause: 'tx:EMSGSIZE', 'tx:queue-full', 'rx:ECONNREFUSED', 'poll:EBADF'... */
  readonly errors = new Counters();

  private readonly native: NativeBinding;
  private readonly maxBatchesPerWake: number;
  private readonly batchSize: number;
  private readonly batch: UdpBatch;
  private readonly slotSize: number;
  private readonly readStats = new Uint32Array(4);
  private readonly poll: PollHandle;
  private callback: UdpDatagramsCallback | undefined;
  private events: PollEvents = '';
  private closed = false;

  // Send queue: datagrams [0, queued) packed in sendArena[0, queuedBytes).
  private readonly sendArena: Uint8Array;
  private readonly txOffsets: Uint32Array;
  private readonly txLengths: Uint32Array;
  private readonly txDstAddrs: Uint32Array;
  private readonly txDstPorts: Uint16Array;
  private readonly txSrcAddrs: Uint32Array;
  private readonly txErrnos: Uint32Array;
  private queued = 0;
  private queuedBytes = 0;
  private readonly gsoSegments: number;
  private readonly gsoStats = new Uint32Array(2);
  private flushScheduled: ReturnType<typeof setImmediate> | undefined;
  /** The kernel said EAGAIN: wait for writability instead of flushing from setImmediate. */
  private blocked = false;
  private readonly flushFromImmediate = (): void => {
    this.flushScheduled = undefined;
    if (!this.blocked) this.flush();
  };

  /** Opens a socket bound to `address` (dotted IPv4, '0.0.0.0' for all) and `port` (0 picks one). */
  static bind(address: string, port: number, opts: UdpBatchOptions = {}): UdpBatchSocket {
    return new UdpBatchSocket(loadNative(), address, port, opts);
  }

  readonly fd: number;
  readonly address: string;
  readonly port: number;
  /** Actual kernel buffer sizes (the kernel doubles the requested value). */
  readonly rcvbuf: number;
  readonly sndbuf: number;
  /** UDP GRO is on (asked for and taken by the kernel). */
  readonly gro: boolean;

  private constructor(native: NativeBinding, address: string, port: number, opts: UdpBatchOptions) {
    this.native = native;
    // A GRO message holds up to 64 KiB of datagrams.
    const slotSize = positiveInt('slotSize', opts.slotSize ?? (opts.gro ? 65536 : 2048));
    this.batchSize = positiveInt('batchSize', opts.batchSize ?? 64);
    this.maxBatchesPerWake = positiveInt('maxBatchesPerWake', opts.maxBatchesPerWake ?? 16);
    const queuePackets = positiveInt('sendQueuePackets', opts.sendQueuePackets ?? 1024);
    const gso = opts.gsoSegments ?? 0;
    if (!Number.isSafeInteger(gso) || gso < 0 || gso > 64) throw new RangeError(`gsoSegments must be 0-64, got ${gso}`);
    this.gsoSegments = gso;
    const queueBytes = positiveInt('sendQueueBytes', opts.sendQueueBytes ?? 1 << 20);
    const s = native.udpOpen(address, port, {
      rcvbuf: opts.rcvbuf, sndbuf: opts.sndbuf, reuseAddr: opts.reuseAddr, freebind: opts.freebind, gro: opts.gro,
    });
    this.fd = s.fd;
    this.address = address;
    this.port = s.port;
    this.rcvbuf = s.rcvbuf;
    this.sndbuf = s.sndbuf;
    this.gro = s.gro;
    this.slotSize = slotSize;
    const arena = new Uint8Array(slotSize * this.batchSize);
    // Room for every datagram of batchSize messages, each of them possibly a GRO message.
    const entries = this.batchSize * UDP_SEGS_MAX;
    const offsets = new Uint32Array(entries);
    const lengths = new Uint32Array(entries);
    this.batch = {
      count: 0,
      arena,
      offsets,
      lengths,
      srcAddrs: new Uint32Array(entries),
      srcPorts: new Uint16Array(entries),
      dstAddrs: new Uint32Array(entries),
      localPort: s.port,
      datagram: (i: number): Uint8Array => arena.subarray(offsets[i]!, offsets[i]! + lengths[i]!),
    };
    this.sendArena = new Uint8Array(Math.max(queueBytes, MAX_UDP_PAYLOAD));
    this.txOffsets = new Uint32Array(queuePackets);
    this.txLengths = new Uint32Array(queuePackets);
    this.txDstAddrs = new Uint32Array(queuePackets);
    this.txDstPorts = new Uint16Array(queuePackets);
    this.txSrcAddrs = new Uint32Array(queuePackets);
    this.txErrnos = new Uint32Array(queuePackets);
    try {
      // One poll per fd (libuv's rule), idle until someone reads or a send blocks.
      this.poll = native.pollStart(this.fd, '', (status, events) => this.onPoll(status, events));
    } catch (e) {
      native.close(this.fd);
      throw e;
    }
  }

  /** Starts (or redirects) delivery of received datagrams, in batches. */
  onDatagrams(callback: UdpDatagramsCallback): void {
    if (this.closed) throw new Error(`UDP socket ${this.address}:${this.port} is closed`);
    this.callback = callback;
    this.updatePoll();
  }

  /**
   * Queues a datagram (the bytes are copied) for the flush at the end of this event-loop turn. `src` picks the
   * local source address (IP_PKTINFO); omitted or 0 lets the kernel choose. Returns false if it was dropped.
   */
  send(dst: Ipv4Port, data: Uint8Array, src?: Ipv4): boolean {
    return this.sendTo(dst.addr, dst.port, data, 0, data.length, src ?? 0);
  }

  /** send() without an endpoint object or a subarray: data[offset, offset+length). */
  sendTo(addr: Ipv4, port: number, data: Uint8Array, offset: number, length: number, src: Ipv4 = 0): boolean {
    const at = this.reserve(addr, port, length, src);
    if (at < 0) return false;
    this.sendArena.set(data.subarray(offset, offset + length), at);
    return true;
  }

  /**
   * Queues room for a datagram of `length` bytes to addr:port from `src` and returns its offset in `sendBuffer`,
   * or -1 if it was dropped (counted: socket closed, too big for UDP, queue full). sendTo() copies into it; the
   * Teredo server's fast path writes its answer there itself, at once, before the next call on this socket.
   */
  reserve(addr: Ipv4, port: number, length: number, src: Ipv4 = 0): number {
    if (this.closed) {
      this.drop('closed');
      return -1;
    }
    if (length > MAX_UDP_PAYLOAD) {
      this.stats.txErrors++;
      this.errors.inc('tx:EMSGSIZE');
      return -1;
    }
    if (this.queued === this.txOffsets.length || this.queuedBytes + length > this.sendArena.length) {
      if (!this.blocked) this.flush();
      if (this.queued === this.txOffsets.length || this.queuedBytes + length > this.sendArena.length) {
        this.drop('queue-full');
        return -1;
      }
    }
    const i = this.queued++;
    const at = this.queuedBytes;
    this.txOffsets[i] = at;
    this.txLengths[i] = length;
    this.txDstAddrs[i] = addr;
    this.txDstPorts[i] = port;
    this.txSrcAddrs[i] = src;
    this.queuedBytes += length;
    if (this.flushScheduled === undefined && !this.blocked) this.flushScheduled = setImmediate(this.flushFromImmediate);
    return at;
  }

  /** The send queue's bytes (see reserve()). */
  get sendBuffer(): Uint8Array {
    return this.sendArena;
  }

  /** Datagrams waiting in the queue. */
  get pending(): number {
    return this.queued;
  }

  /** Whether queued datagrams wait for writability (the kernel said EAGAIN): flushing now would only fail again. */
  get blockedOnWrite(): boolean {
    return this.blocked;
  }

  /**
   * Sends what is queued now (a flush already scheduled for the end of this loop turn is then dropped: the
   * driver flushes at the end of each batch, which saves the wake-up its own turn would cost). Leftovers after
   * EAGAIN go out when the socket is writable again.
   */
  flush(): void {
    if (this.flushScheduled !== undefined) {
      clearImmediate(this.flushScheduled);
      this.flushScheduled = undefined;
    }
    const count = this.queued;
    if (count === 0 || this.closed) return;
    const consumed = this.native.udpSendBatch(this.fd, this.sendArena, this.txOffsets, this.txLengths, this.txDstAddrs,
      this.txDstPorts, this.txSrcAddrs, count, this.txErrnos, this.gsoSegments, this.gsoStats);
    if (this.gsoStats[0] !== 0) {
      this.stats.txGsoMessages += this.gsoStats[0]!;
      this.stats.txGsoPackets += this.gsoStats[1]!;
      this.gsoStats[0] = 0;
      this.gsoStats[1] = 0;
    }
    this.stats.txFlushes++;
    let failed = 0;
    for (let i = 0; i < consumed; i++) {
      const e = this.txErrnos[i]!;
      if (e !== 0) {
        failed++;
        this.errors.inc(`tx:${errnoName(e)}`);
      } else this.stats.txBytes += this.txLengths[i]!;
    }
    this.stats.txPackets += consumed - failed;
    this.stats.txErrors += failed;
    if (consumed === count) {
      this.queued = 0;
      this.queuedBytes = 0;
      if (this.blocked) {
        this.blocked = false;
        this.updatePoll();
      }
      return;
    }
    // EAGAIN: move the unsent tail to the front and wait for POLLOUT.
    this.stats.txEagain++;
    const base = this.txOffsets[consumed]!;
    this.sendArena.copyWithin(0, base, this.queuedBytes);
    for (const a of [this.txLengths, this.txDstAddrs, this.txDstPorts, this.txSrcAddrs]) a.copyWithin(0, consumed, count);
    this.txOffsets.copyWithin(0, consumed, count);
    const left = count - consumed;
    for (let i = 0; i < left; i++) this.txOffsets[i]! -= base;
    this.queued = left;
    this.queuedBytes -= base;
    if (!this.blocked) {
      this.blocked = true;
      this.updatePoll();
    }
  }

  /** Whether this socket keeps the process alive while reading or waiting to write (default true). */
  ref(): void {
    if (!this.closed) this.native.pollRef(this.poll, true);
  }

  unref(): void {
    if (!this.closed) this.native.pollRef(this.poll, false);
  }

  counters(): Record<string, number> {
    return { ...this.stats, ...this.errors.snapshot() };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Tries one last flush, then stops polling and closes the fd. Unsent datagrams are counted as dropped. */
  close(): void {
    if (this.closed) return;
    if (!this.blocked) this.flush();
    if (this.queued > 0) {
      this.stats.txDropped += this.queued;
      this.errors.inc('tx:closed', this.queued);
      this.queued = 0;
      this.queuedBytes = 0;
    }
    this.closed = true;
    if (this.flushScheduled !== undefined) clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    this.callback = undefined;
    this.native.pollStop(this.poll);
    this.native.close(this.fd);
  }

  private drop(reason: string): boolean {
    this.stats.txDropped++;
    this.errors.inc(`tx:${reason}`);
    return false;
  }

  private updatePoll(): void {
    if (this.closed) return;
    const want: PollEvents = this.callback ? (this.blocked ? 'rw' : 'r') : this.blocked ? 'w' : '';
    if (want !== this.events) {
      this.native.pollUpdate(this.poll, want);
      this.events = want;
    }
  }

  private onPoll(status: number, events: number): void {
    if (this.closed) return;
    if (status < 0) {
      // libuv maps POLLERR to EBADF and stops the handle. On a UDP socket that is a pending socket error
      // (sk_err): the next receive reports and clears it. Count, read, and re-arm.
      this.errors.inc(`poll:${errnoName(-status)}`);
      this.drain();
      if (!this.closed && this.events !== '') this.native.pollUpdate(this.poll, this.events);
      return;
    }
    if (events & POLL_WRITABLE) this.flush();
    if (events & POLL_READABLE) this.drain();
  }

  private drain(): void {
    if (this.callback === undefined) return; // not reading: leave datagrams in the socket buffer
    const { native, fd, batch, batchSize, readStats, stats } = this;
    for (let b = 0; b < this.maxBatchesPerWake; b++) {
      const n = native.udpRecvBatch(fd, batch.arena, this.slotSize, batchSize, batch.lengths, batch.srcAddrs,
        batch.srcPorts, batch.dstAddrs, readStats, batch.offsets);
      if (readStats[0] !== 0) {
        stats.rxTruncated += readStats[0]!;
        this.errors.inc('rx:truncated', readStats[0]!);
        readStats[0] = 0;
      }
      if (readStats[1] !== 0) {
        stats.rxGroMessages += readStats[1]!;
        stats.rxGroPackets += readStats[2]!;
        readStats[1] = 0;
        readStats[2] = 0;
      }
      const messages = readStats[3]!;
      readStats[3] = 0;
      if (n < 0) {
        stats.rxErrors++;
        this.errors.inc(`rx:${errnoName(-n)}`);
        continue; // a socket error is reported once and cleared: datagrams may be waiting behind it
      }
      if (n === 0) {
        if (messages < batchSize) return;
        continue; // a full batch of truncated messages: more may wait
      }
      stats.rxPackets += n;
      stats.rxBatches++;
      batch.count = n;
      this.callback?.(batch);
      if (this.closed || messages < batchSize) return;
    }
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}
