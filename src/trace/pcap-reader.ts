/**
 * Reads packet captures for `transit6 trace`: classic libpcap files in either byte order, with micro- or
 * nanosecond time stamps (https://wiki.wireshark.org/Development/LibpcapFileFormat), and pcapng files (section
 * header, interface description, enhanced and simple packet blocks; draft-ietf-opsawg-pcapng). Link layers: raw
 * IP (what `--pcap` and the simulator write), Ethernet with VLAN tags, Linux cooked captures v1 and v2 (tcpdump -i
 * any), BSD loopback, and raw IPv4/IPv6.
 *
 * Out come the packets a Teredo trace needs: IPv4 UDP datagrams (addresses, ports, payload) and IPv6 packets.
 * Anything else (ARP, TCP over IPv4, later IPv4 fragments) is counted as skipped. A truncated or malformed file
 * gives the packets before the damage and a `problem` saying where it is, never an exception.
 *
 * Pure: bytes in, data out.
 */
import type { Ipv4Port } from '../wire/ip.js';

export type CapturedPacket =
  | { at: number; kind: 'udp'; src: Ipv4Port; dst: Ipv4Port; data: Uint8Array; dir?: 'in' | 'out'; iface?: number }
  | { at: number; kind: 'ipv6'; packet: Uint8Array; dir?: 'in' | 'out'; iface?: number };

export interface CaptureFile {
  format: 'pcap' | 'pcapng';
  packets: CapturedPacket[];
  /** Records read that were not IPv4 UDP or IPv6. */
  skipped: number;
  /** What stopped the reading early (a truncated record, a bad block), if anything. */
  problem?: string;
}

export const LINKTYPE = { NULL: 0, ETHERNET: 1, RAW: 101, LOOP: 108, LINUX_SLL: 113, IPV4: 228, IPV6: 229, LINUX_SLL2: 276 } as const;

const MAGIC_USEC = 0xa1b2c3d4;
const MAGIC_NSEC = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

/** Where the IP packet starts in a frame of `linktype`, and which version it is (4, 6), or undefined. */
export function ipOffset(linktype: number, frame: Uint8Array): number | undefined {
  const u16 = (o: number) => (frame[o]! << 8) | frame[o + 1]!;
  const etherType = (type: number, off: number): number | undefined => {
    // 802.1Q and 802.1ad tags: skip them.
    while ((type === 0x8100 || type === 0x88a8) && frame.length >= off + 4) {
      type = u16(off + 2);
      off += 4;
    }
    return type === 0x0800 || type === 0x86dd ? off : undefined;
  };
  switch (linktype) {
    case LINKTYPE.RAW:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6:
      return 0;
    case LINKTYPE.ETHERNET:
      return frame.length >= 14 ? etherType(u16(12), 14) : undefined;
    case LINKTYPE.LINUX_SLL:
      return frame.length >= 16 ? etherType(u16(14), 16) : undefined;
    case LINKTYPE.LINUX_SLL2:
      return frame.length >= 20 ? etherType(u16(0), 20) : undefined;
    case LINKTYPE.NULL:
    case LINKTYPE.LOOP: {
      if (frame.length < 4) return undefined;
      // The address family, in the capturing host's byte order (NULL) or network order (LOOP): 2 is AF_INET,
      // 24, 28 or 30 AF_INET6 depending on the BSD.
      const le = frame[0]! | (frame[1]! << 8);
      const be = u16(2);
      const fam = frame[0] !== 0 ? le : be;
      return fam === 2 || fam === 24 || fam === 28 || fam === 30 ? 4 : undefined;
    }
    default:
      return undefined;
  }
}

/** An IP packet (at `off` in `frame`) as a trace packet, or undefined when it is neither IPv4 UDP nor IPv6. */
export function decodeIp(frame: Uint8Array, off: number, at: number): CapturedPacket | undefined {
  if (frame.length < off + 1) return undefined;
  const version = frame[off]! >> 4;
  if (version === 6) {
    if (frame.length < off + 40) return undefined;
    const payloadLength = (frame[off + 4]! << 8) | frame[off + 5]!;
    const end = Math.min(frame.length, off + 40 + payloadLength);
    return { at, kind: 'ipv6', packet: frame.slice(off, end) };
  }
  if (version !== 4 || frame.length < off + 20) return undefined;
  const ihl = (frame[off]! & 0x0f) * 4;
  const total = (frame[off + 2]! << 8) | frame[off + 3]!;
  const fragOffset = ((frame[off + 6]! & 0x1f) << 8) | frame[off + 7]!;
  if (ihl < 20 || frame[off + 9] !== 17 || fragOffset !== 0) return undefined;
  const u = off + ihl;
  const end = Math.min(frame.length, off + total);
  if (end < u + 8) return undefined;
  const rd32 = (o: number) => ((frame[o]! << 24) | (frame[o + 1]! << 16) | (frame[o + 2]! << 8) | frame[o + 3]!) >>> 0;
  const udpLen = (frame[u + 4]! << 8) | frame[u + 5]!;
  const dataEnd = Math.min(end, u + Math.max(8, udpLen));
  return {
    at,
    kind: 'udp',
    src: { addr: rd32(off + 12), port: (frame[u]! << 8) | frame[u + 1]! },
    dst: { addr: rd32(off + 16), port: (frame[u + 2]! << 8) | frame[u + 3]! },
    data: frame.slice(u + 8, dataEnd),
  };
}

function fromFrame(linktype: number, frame: Uint8Array, at: number): CapturedPacket | undefined {
  const off = ipOffset(linktype, frame);
  return off === undefined ? undefined : decodeIp(frame, off, at);
}

/** Reads a classic pcap or a pcapng file. Throws only when the bytes are neither. */
export function readCapture(bytes: Uint8Array): CaptureFile {
  if (bytes.length < 4) throw new Error('not a packet capture: too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) === PCAPNG_SHB) return readPcapng(bytes, view);
  const le = view.getUint32(0, true);
  const be = view.getUint32(0, false);
  const little = le === MAGIC_USEC || le === MAGIC_NSEC;
  if (!little && be !== MAGIC_USEC && be !== MAGIC_NSEC) throw new Error('not a packet capture (neither pcap nor pcapng magic)');
  const nsec = (little ? le : be) === MAGIC_NSEC;
  const out: CaptureFile = { format: 'pcap', packets: [], skipped: 0 };
  if (bytes.length < 24) return { ...out, problem: 'truncated file header' };
  // The low 16 bits carry the link type; the upper ones may hold FCS information.
  const linktype = view.getUint32(20, little) & 0xffff;
  let off = 24;
  let n = 0;
  while (off < bytes.length) {
    n++;
    if (off + 16 > bytes.length) return { ...out, problem: `record ${n}: truncated header at byte ${off}` };
    const sec = view.getUint32(off, little);
    const frac = view.getUint32(off + 4, little);
    const incl = view.getUint32(off + 8, little);
    if (off + 16 + incl > bytes.length) return { ...out, problem: `record ${n}: truncated data at byte ${off}` };
    const at = sec * 1000 + (nsec ? frac / 1e6 : frac / 1e3);
    const p = fromFrame(linktype, bytes.subarray(off + 16, off + 16 + incl), at);
    if (p) out.packets.push(p);
    else out.skipped++;
    off += 16 + incl;
  }
  return out;
}

function readPcapng(bytes: Uint8Array, view: DataView): CaptureFile {
  const out: CaptureFile = { format: 'pcapng', packets: [], skipped: 0 };
  let little = true;
  let ifaces: { linktype: number; tsDiv: number }[] = [];
  let off = 0;
  while (off < bytes.length) {
    if (off + 12 > bytes.length) return { ...out, problem: `truncated block at byte ${off}` };
    const type = view.getUint32(off, true);
    if (type === PCAPNG_SHB) {
      const bom = view.getUint32(off + 8, true);
      if (bom === BYTE_ORDER_MAGIC) little = true;
      else if (bom === 0x4d3c2b1a) little = false;
      else return { ...out, problem: `bad byte-order magic at byte ${off}` };
      ifaces = [];
    }
    const btype = view.getUint32(off, little);
    const len = view.getUint32(off + 4, little);
    if (len < 12 || len % 4 !== 0 || off + len > bytes.length) return { ...out, problem: `bad block length ${len} at byte ${off}` };
    const body = off + 8;
    if (btype === 1) {
      // Interface description: link type, snaplen, options (if_tsresol).
      const linktype = view.getUint16(body, little);
      let tsDiv = 1e3; // microseconds → ms
      let o = body + 8;
      while (o + 4 <= off + len - 4) {
        const code = view.getUint16(o, little);
        const olen = view.getUint16(o + 2, little);
        if (code === 0) break;
        if (code === 9 && olen >= 1) {
          const r = bytes[o + 4]!;
          const units = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
          tsDiv = units / 1000;
        }
        o += 4 + ((olen + 3) & ~3);
      }
      ifaces.push({ linktype, tsDiv });
    } else if (btype === 6 || btype === 3) {
      let iface = 0;
      let at = 0;
      let data: Uint8Array;
      let dir: 'in' | 'out' | undefined;
      if (btype === 6) {
        iface = view.getUint32(body, little);
        const ts = view.getUint32(body + 4, little) * 2 ** 32 + view.getUint32(body + 8, little);
        const cap = view.getUint32(body + 12, little);
        if (body + 20 + cap > off + len) return { ...out, problem: `enhanced packet block at byte ${off}: captured length past the block` };
        data = bytes.subarray(body + 20, body + 20 + cap);
        at = ts / (ifaces[iface]?.tsDiv ?? 1e3);
        // epb_flags (option 2): bits 0-1 are the direction, 1 inbound, 2 outbound.
        let o = body + 20 + ((cap + 3) & ~3);
        while (o + 4 <= off + len - 4) {
          const code = view.getUint16(o, little);
          const olen = view.getUint16(o + 2, little);
          if (code === 0) break;
          if (code === 2 && olen === 4) {
            const d = view.getUint32(o + 4, little) & 3;
            dir = d === 1 ? 'in' : d === 2 ? 'out' : undefined;
          }
          o += 4 + ((olen + 3) & ~3);
        }
      } else {
        const orig = view.getUint32(body, little);
        data = bytes.subarray(body + 4, body + 4 + Math.min(orig, len - 16));
      }
      const lt = ifaces[iface]?.linktype;
      const p = lt === undefined ? undefined : fromFrame(lt, data, at);
      if (p) {
        if (dir) p.dir = dir;
        if (ifaces.length > 1) p.iface = iface;
        out.packets.push(p);
      } else out.skipped++;
    }
    off += len;
  }
  return out;
}
