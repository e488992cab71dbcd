/**
 * `--pcap FILE`: a daemon's traffic written as it happens to two classic libpcap files, the format tcpdump,
 * tshark and Wireshark all read:
 *   BASE-udp.pcap  its UDP side: every Teredo datagram in and out, as IPv4+UDP packets (LINKTYPE_RAW) with the
 *                  addresses and ports it had on the wire, so tshark decodes the Teredo inside;
 *   BASE-tun.pcap  its tunnel side: the IPv6 packets to and from the kernel (LINKTYPE_RAW).
 * The protocol-41 daemons (ISATAP, 6to4) write BASE-ipv4.pcap instead of BASE-udp.pcap: their protocol-41 packets
 * as received and sent, IPv4 header included (LINKTYPE_RAW), which tshark decodes as IPv6 in IPv4.
 * BASE is FILE without a trailing ".pcap". Files are created 0640 (they hold traffic); a file that is already a
 * capture of ours (a restart, a reload as root) is appended to, anything else refused. Records are buffered and
 * written at least once a second and when the daemon stops, so a capture read while the daemon runs is at most a
 * second behind. Write errors stop the capture with one log line, never the daemon.
 *
 * tshark decodes Teredo on port 3544 by itself; for the other ports (the probe port, a relay's or client's own
 * port) turn on the heuristic: tshark -o teredo.heuristic_teredo:TRUE -r BASE-udp.pcap
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import type { Ipv4Port } from '../wire/ip.js';
import type { TapPacket, TapSink } from './tap.js';

export const PCAP_MAGIC = 0xa1b2c3d4;
export const LINKTYPE_RAW = 101;
const SNAPLEN = 65535;
const BUFFER = 256 * 1024;
/** IPv4 total length is 16 bits: what fits beside a 20-byte IPv4 header and an 8-byte UDP header. */
const MAX_UDP_PAYLOAD = 0xffff - 28;

/** The outer side's capture: Teredo's UDP datagrams, or the protocol-41 daemons' IPv4 packets. */
export type OuterSide = 'udp' | 'ipv4';

/** The two file names for a --pcap value: BASE-udp.pcap (or BASE-ipv4.pcap) and BASE-tun.pcap. */
export function pcapPaths(base: string, outer: OuterSide = 'udp'): { outer: string; tun: string } {
  const b = base.endsWith('.pcap') ? base.slice(0, -5) : base;
  return { outer: `${b}-${outer}.pcap`, tun: `${b}-tun.pcap` };
}

/** One classic pcap file written through a buffer. */
export class PcapFile {
  private fd: number | undefined;
  private buf = Buffer.alloc(BUFFER);
  private used = 0;
  packets = 0;

  constructor(
    readonly path: string,
    private readonly onError: (e: Error) => void = () => {},
  ) {
    let fd: number;
    try {
      fd = openSync(path, 'a+', 0o640);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such directory' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
      throw new Error(`--pcap: cannot open ${path}: ${why}`);
    }
    const size = fstatSync(fd).size;
    if (size > 0) {
      const head = Buffer.alloc(24);
      const n = readSync(fd, head, 0, 24, 0);
      if (n < 24 || head.readUInt32LE(0) !== PCAP_MAGIC || head.readUInt32LE(20) !== LINKTYPE_RAW) {
        closeSync(fd);
        throw new Error(`--pcap: ${path} exists and is not a raw-IP capture written by transit6: move it away or choose another name`);
      }
      // Appending: the header is there already.
      this.fd = fd;
      return;
    }
    this.fd = fd;
    const h = Buffer.alloc(24);
    h.writeUInt32LE(PCAP_MAGIC, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeInt32LE(0, 8);
    h.writeUInt32LE(0, 12);
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_RAW, 20);
    this.append(h, 0, 24);
    this.flush();
  }

  get open(): boolean {
    return this.fd !== undefined;
  }

  /** One record stamped `atMs` (epoch milliseconds). */
  add(atMs: number, packet: Uint8Array): void {
    const o = this.record(atMs, packet.length);
    if (o < 0) return;
    this.buf.set(packet.subarray(0, Math.min(packet.length, SNAPLEN)), o);
  }

  /**
   * A UDP datagram as an IPv4+UDP packet, built in place in the buffer (no copy of the packet first). The UDP
   * checksum is left 0, "not computed" for IPv4 (RFC 768): the payload is what was sent or received, and summing
   * it would cost more than the rest of the capture.
   */
  addUdp(atMs: number, src: Ipv4Port, dst: Ipv4Port, payload: Uint8Array): void {
    const total = 28 + payload.length;
    const o = this.record(atMs, total);
    if (o < 0) return;
    const b = this.buf;
    b[o] = 0x45;
    b[o + 1] = 0;
    b.writeUInt16BE(total, o + 2);
    b.writeUInt32BE(0, o + 4); // identification, flags, fragment offset
    b[o + 8] = 64;
    b[o + 9] = 17;
    b.writeUInt16BE(0, o + 10);
    b.writeUInt32BE(src.addr >>> 0, o + 12);
    b.writeUInt32BE(dst.addr >>> 0, o + 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += (b[o + i]! << 8) | b[o + i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    b.writeUInt16BE(~sum & 0xffff, o + 10);
    b.writeUInt16BE(src.port, o + 20);
    b.writeUInt16BE(dst.port, o + 22);
    b.writeUInt16BE(8 + payload.length, o + 24);
    b.writeUInt16BE(0, o + 26);
    b.set(payload, o + 28);
  }

  /** Writes a record header for a packet of `length` bytes; returns where its data goes, or -1 when closed. */
  private record(atMs: number, length: number): number {
    if (this.fd === undefined) return -1;
    const incl = Math.min(length, SNAPLEN);
    if (this.used + 16 + incl > this.buf.length) this.flush();
    if (16 + incl > this.buf.length) this.buf = Buffer.alloc(16 + incl);
    const sec = Math.floor(atMs / 1000);
    const usec = Math.min(999_999, Math.floor((atMs - sec * 1000) * 1000));
    const o = this.used;
    this.buf.writeUInt32LE(sec >>> 0, o);
    this.buf.writeUInt32LE(usec, o + 4);
    this.buf.writeUInt32LE(incl, o + 8);
    this.buf.writeUInt32LE(length, o + 12);
    this.used += 16 + incl;
    this.packets++;
    return o + 16;
  }

  flush(): void {
    if (this.fd === undefined || this.used === 0) return;
    try {
      let off = 0;
      while (off < this.used) off += writeSync(this.fd, this.buf, off, this.used - off);
    } catch (e) {
      this.fail(e as Error);
    }
    this.used = 0;
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private append(b: Uint8Array, off: number, len: number): void {
    this.buf.set(b.subarray(off, off + len), this.used);
    this.used += len;
  }

  private fail(e: Error): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // Closing a file that failed to write: nothing more to do.
      }
    }
    this.onError(new Error(`pcap capture to ${this.path} stopped: ${e.message}`));
  }
}

export interface PcapCaptureOptions {
  /** Replaces a 0.0.0.0 local address (a wildcard bind) in the records with the address actually used. */
  localAddr?: number;
  onError?: (e: Error) => void;
  /** The outer side: udp (Teredo, the default) or ipv4 (protocol 41). */
  outer?: OuterSide;
  /** Flush interval in ms (default 1000). */
  flushMs?: number;
}

/** The two files of --pcap, fed from the daemon's tap (Teredo) or written directly (protocol 41). */
export class PcapCapture {
  /** The outer side: UDP datagrams as IPv4+UDP (Teredo), or the protocol-41 IPv4 packets as they are. */
  readonly outer: PcapFile;
  readonly tun: PcapFile;
  private readonly timer: NodeJS.Timeout;
  readonly sink: TapSink;

  constructor(base: string, private readonly opts: PcapCaptureOptions = {}) {
    const paths = pcapPaths(base, opts.outer);
    this.outer = new PcapFile(paths.outer, opts.onError);
    try {
      this.tun = new PcapFile(paths.tun, opts.onError);
    } catch (e) {
      this.outer.close();
      throw e;
    }
    this.timer = setInterval(() => this.flush(), opts.flushMs ?? 1000);
    this.timer.unref();
    this.sink = (p) => this.write(p);
  }

  write(p: TapPacket): void {
    if (p.dir === 'tun-in' || p.dir === 'tun-out') {
      this.tun.add(p.at, p.data);
      return;
    }
    // Snaplen 65535 keeps every record whole: a datagram that does not fit one IPv4 packet is left out.
    if (!p.src || !p.dst || p.data.length > MAX_UDP_PAYLOAD) return;
    this.outer.addUdp(p.at, this.fix(p.src), this.fix(p.dst), p.data);
  }

  flush(): void {
    this.outer.flush();
    this.tun.flush();
  }

  close(): void {
    clearInterval(this.timer);
    this.outer.close();
    this.tun.close();
  }

  private fix(e: Ipv4Port): Ipv4Port {
    return e.addr === 0 && this.opts.localAddr !== undefined ? { addr: this.opts.localAddr, port: e.port } : e;
  }
}
