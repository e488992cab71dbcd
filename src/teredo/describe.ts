/**
 * Names a Teredo datagram the way the seeds and the RFC name it (RS with cone flag, RA with origin indication,
 * direct bubble, indirect bubble, connectivity-test echo...). Used by the simulator's packet lists, traces and
 * ladder diagrams, so every view labels a packet the same way.
 */
import { parseIcmpv6 } from '../wire/icmpv6.js';
import { formatIpv4Port, formatIpv6, type Ipv4Port } from '../wire/ip.js';
import { isAllNodes, isAllRouters, isLinkLocal } from '../wire/ipv6class.js';
import { isBubble, NEXT_HEADER_ICMPV6, NEXT_HEADER_TCP, NEXT_HEADER_UDP, parseIpv6 } from '../wire/ipv6.js';
import { isTeredoAddress, parseTeredoPacket, TEREDO_PORT } from '../wire/teredo.js';

export interface DatagramLabel {
  /** Short name: "RS", "RA", "bubble", "echo request", "data"... */
  kind: string;
  /** The full label, e.g. "RA from the secondary address, origin indication 203.0.113.1:23863". */
  text: string;
  /** IPv6 source and destination inside, when there is an IPv6 packet. */
  inner?: { src: string; dst: string };
}

export interface LabelContext {
  /** The server's addresses, to say "from the secondary address" and to tell direct from indirect bubbles. */
  serverPrimary?: number;
  serverSecondary?: number;
}

function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export function describeTeredoDatagram(src: Ipv4Port, dst: Ipv4Port, data: Uint8Array, ctx: LabelContext = {}): DatagramLabel {
  const t = parseTeredoPacket(data);
  if (!t.ok) return { kind: 'malformed', text: `not a Teredo packet (${t.reason}, ${data.length} bytes)` };
  const p = parseIpv6(t.value.ipv6);
  if (!p.ok) return { kind: 'malformed', text: `bad IPv6 inside (${p.reason})` };
  const h = p.value.header;
  const inner = { src: formatIpv6(h.src), dst: formatIpv6(h.dst) };
  const extras: string[] = [];
  if (t.value.auth) extras.push(`auth nonce ${hex(t.value.auth.nonce)}`);
  if (t.value.origin) extras.push(`origin indication ${formatIpv4Port(t.value.origin)}`);
  const toServer = ctx.serverPrimary !== undefined && (dst.addr === ctx.serverPrimary || dst.addr === ctx.serverSecondary);
  const fromServer = ctx.serverPrimary !== undefined && (src.addr === ctx.serverPrimary || src.addr === ctx.serverSecondary);
  const fromSecondary = ctx.serverSecondary !== undefined && src.addr === ctx.serverSecondary;
  const toSecondary = ctx.serverSecondary !== undefined && dst.addr === ctx.serverSecondary;
  let kind: string;
  let what: string;
  if (isBubble(h)) {
    if (isAllNodes(h.dst)) {
      kind = 'bubble';
      what = 'local discovery bubble';
    } else if (toServer) {
      kind = 'bubble';
      what = 'indirect bubble (via the server)';
    } else if (fromServer) {
      kind = 'bubble';
      what = 'indirect bubble forwarded by the server';
    } else {
      kind = 'bubble';
      what = 'direct bubble';
    }
  } else if (h.nextHeader === NEXT_HEADER_ICMPV6) {
    const m = parseIcmpv6(p.value.payload);
    if (!m.ok) {
      kind = 'icmpv6';
      what = `ICMPv6 (${m.reason})`;
    } else {
      switch (m.value.type) {
        case 'router-solicitation': {
          kind = 'RS';
          const cone = (h.src[8]! & 0x80) !== 0;
          what = cone ? 'RS with cone flag' : 'RS';
          if (toSecondary) what += dst.port === TEREDO_PORT ? ' to the secondary address' : ` to the secondary address, probe port ${dst.port}`;
          break;
        }
        case 'router-advertisement': {
          kind = 'RA';
          what = 'RA';
          if (fromSecondary) what += src.port === TEREDO_PORT ? ' from the secondary address' : ` from the secondary address, port ${src.port}`;
          const pio = m.value.options.find((o) => o.type === 'prefix-information');
          if (pio && pio.type === 'prefix-information') extras.push(`prefix ${formatIpv6(pio.prefix)}/${pio.prefixLength}`);
          break;
        }
        case 'echo-request':
        case 'echo-reply': {
          kind = m.value.type === 'echo-request' ? 'echo request' : 'echo reply';
          const test = !isTeredoAddress(h.dst) && !isLinkLocal(h.dst) && isTeredoAddress(h.src) && toServer;
          what = test ? 'connectivity-test echo request' : `${kind} id ${m.value.identifier} seq ${m.value.sequence}`;
          break;
        }
        default:
          kind = 'icmpv6';
          what = `ICMPv6 ${m.value.type}`;
      }
    }
    if (isAllRouters(h.dst) && kind !== 'RS') what += ' to ff02::2';
  } else {
    kind = 'data';
    const proto = h.nextHeader === NEXT_HEADER_TCP ? 'TCP' : h.nextHeader === NEXT_HEADER_UDP ? 'UDP' : `next header ${h.nextHeader}`;
    what = `data (${proto}, ${h.payloadLength} bytes)`;
  }
  return { kind, text: extras.length ? `${what}, ${extras.join(', ')}` : what, inner };
}
