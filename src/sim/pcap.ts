/**
 * Classic libpcap files (https://wiki.wireshark.org/Development/LibpcapFileFormat) from simulator traces, so a
 * scenario can be opened in Wireshark or checked with tshark. LINKTYPE_RAW lets one file hold IPv4 and IPv6
 * packets without inventing link-layer headers; readers tell them apart by the version nibble.
 */
import { buildIpv4Udp } from '../wire/udp.js';
import type { Millis } from '../core/time.js';
import type { TraceEntry } from './trace.js';

export const PCAP_MAGIC = 0xa1b2c3d4;
export const LINKTYPE_RAW = 101;
const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
/** IPv4 total length is 16 bits: the largest UDP payload that fits beside a 20-byte header and 8-byte UDP header. */
const MAX_UDP_PAYLOAD = 0xffff - 28;

export interface PcapWriterOptions {
  snaplen?: number;
  linktype?: number;
}

export class PcapWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;
  private readonly snaplen: number;

  constructor(opts: PcapWriterOptions = {}) {
    this.snaplen = opts.snaplen ?? 65535;
    const h = new Uint8Array(GLOBAL_HEADER);
    const v = new DataView(h.buffer);
    // Little-endian throughout; readers detect the byte order from how the magic reads back.
    v.setUint32(0, PCAP_MAGIC, true);
    v.setUint16(4, 2, true);
    v.setUint16(6, 4, true);
    v.setInt32(8, 0, true); // thiszone: virtual time is already UTC
    v.setUint32(12, 0, true); // sigfigs
    v.setUint32(16, this.snaplen, true);
    v.setUint32(20, opts.linktype ?? LINKTYPE_RAW, true);
    this.push(h);
  }

  /** Appends one packet stamped `atMs` milliseconds after the epoch (virtual time 0 reads as 1970-01-01). */
  add(atMs: Millis, packet: Uint8Array): void {
    let sec = Math.floor(atMs / 1000);
    let usec = Math.round((atMs - sec * 1000) * 1000);
    if (usec >= 1_000_000) {
      sec += 1;
      usec -= 1_000_000;
    }
    const incl = Math.min(packet.length, this.snaplen);
    const rec = new Uint8Array(RECORD_HEADER + incl);
    const v = new DataView(rec.buffer);
    v.setUint32(0, sec >>> 0, true);
    v.setUint32(4, usec, true);
    v.setUint32(8, incl, true);
    v.setUint32(12, packet.length, true);
    rec.set(packet.subarray(0, incl), RECORD_HEADER);
    this.push(rec);
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  private push(c: Uint8Array): void {
    this.chunks.push(c);
    this.length += c.length;
  }
}

/**
 * One packet per trace entry the filter keeps (all by default, dropped hops included): UDP hops rebuilt as
 * IPv4+UDP with the addresses they carried on their segment, IPv6 hops as they were. A datagram that crossed a
 * NAT therefore appears once with its private source and once with its public one.
 */
export function pcapFromTrace(trace: readonly TraceEntry[], filter?: (e: TraceEntry) => boolean): Uint8Array {
  const w = new PcapWriter();
  for (const e of trace) {
    if (filter && !filter(e)) continue;
    if (e.kind === 'udp') {
      // Too long for one IPv4 packet: nothing a real capture could show either.
      if (e.data.length > MAX_UDP_PAYLOAD) continue;
      w.add(e.at, buildIpv4Udp(e.src.addr, e.src.port, e.dst.addr, e.dst.port, e.data));
    } else {
      w.add(e.at, e.packet);
    }
  }
  return w.bytes();
}
