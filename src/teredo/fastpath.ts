/**
 * The per-packet fast paths of the relay and the client (issue 6). Relay: the two decisions that carry the data — a
 * native packet to a trusted, recently heard Teredo client, and a packet from such a client, from its known
 * mapping, to a native destination. Client: a tunnel packet to a trusted peer reached at its mapping, and a packet
 * from a trusted peer, from an endpoint it proved, to our address. Both are taken straight from the receive arena
 * with no allocation: no parse objects, no views, no action
 * objects, the peer found from the packet bytes (PeerList.getAt). Everything else (bubbles, trailers, auth or
 * origin headers, unknown or untrusted peers, peers due for a new bubble, drops) returns false and goes to the
 * core, which stays the one place where the rules live.
 *
 * It updates the core's own state exactly as the core would (peer times, bubble budget, eviction order, event
 * counters), so stats() and the peer table read the same; test/teredo/fastpath.test.ts runs random traffic through
 * a core alone and through fast path + core and compares every output and the final state.
 *
 * Whoever adds a rule to TeredoRelay's data path (handleIpv6's trusted branch, handleDatagram's known branch,
 * fromClient) or TeredoClient's (handleIpv6/fromTunnel/transmit case 1, handleDatagram/onFromPeer case 1) adds it
 * here too, or makes the fast path decline those packets.
 */
import type { Millis } from '../core/time.js';
import { isGlobalIpv4 } from '../wire/ip.js';
import { PEER_VALIDITY_MS } from './peers.js';
import type { TeredoClient } from './client.js';
import { TEREDO_DISCOVERY_ADDRESS } from './constants.js';
import type { TeredoRelay } from './relay.js';

/** Where the fast path's output goes: bytes are borrowed, the sink copies them (into its send/write arenas). */
export interface FastSink {
  /** A UDP datagram to addr:port from the default socket, payload buf[offset, offset+length). */
  udp(addr: number, port: number, buf: Uint8Array, offset: number, length: number): void;
  /** An IPv6 packet out to the native side (what the core's 'ipv6-forward' does). */
  forward(buf: Uint8Array, offset: number, length: number): void;
  /** An IPv6 packet up the local stack, the tunnel (what the core's 'ipv6-deliver' does). */
  deliver(buf: Uint8Array, offset: number, length: number): void;
}

export interface FastPath {
  /**
   * A datagram from srcAddr:srcPort to dstAddr (the local address it was sent to) on the default socket. True:
   * handled (sent to the sink); false: ask the core.
   */
  datagram(now: Millis, srcAddr: number, srcPort: number, dstAddr: number, buf: Uint8Array, offset: number, length: number, sink: FastSink): boolean;
  /** An IPv6 packet from the tunnel. True: handled; false: ask the core. */
  ipv6(now: Millis, buf: Uint8Array, offset: number, length: number, sink: FastSink): boolean;
}

const NEXT_HEADER_NONE = 59;

function isTeredoAt(b: Uint8Array, o: number): boolean {
  return b[o] === 0x20 && b[o + 1] === 0x01 && b[o + 2] === 0x00 && b[o + 3] === 0x00;
}

export class RelayFastPath implements FastPath {
  constructor(private readonly relay: TeredoRelay) {}

  /** RFC 4380 §5.4.2 for a known client: the core's handleDatagram 'known' branch and fromClient, relay mode. */
  datagram(now: Millis, srcAddr: number, srcPort: number, _dstAddr: number, b: Uint8Array, o: number, len: number, sink: FastSink): boolean {
    const relay = this.relay;
    if (relay.mode !== 'relay' || len < 40) return false;
    // Starts with IPv6 (no auth header or origin indication) and ends with it (no trailers, no padding).
    if (b[o]! >> 4 !== 6) return false;
    const plen = (b[o + 4]! << 8) | b[o + 5]!;
    if (40 + plen !== len) return false;
    if (plen === 0 && b[o + 6] === NEXT_HEADER_NONE) return false; // a bubble
    if (!isTeredoAt(b, o + 8)) return false;
    // The table's reusable view, not the entry's object (peers.ts): a relay's million entries stay objectless.
    const slot = relay.peers.slotAt(b, o + 8);
    if (slot < 0) return false;
    const peer = relay.peers.view(slot);
    if (!peer.trusted) return false;
    const m = peer.mapped;
    if (m === undefined || m.addr !== srcAddr || m.port !== srcPort) return false;
    // Served destination: global unicast, not Teredo.
    const d = o + 24;
    if ((b[d]! & 0xe0) !== 0x20 || isTeredoAt(b, d)) return false;
    peer.lastRx = now;
    relay.peers.answered(peer, now);
    relay.peers.touch(peer, now);
    relay.events.inc('from-clients-packets');
    relay.events.inc('from-clients-bytes', len);
    sink.forward(b, o, len);
    return true;
  }

  /** RFC 4380 §5.4.1 case 1: the core's handleIpv6 for a trusted peer heard from within 30 s, relay mode. */
  ipv6(now: Millis, b: Uint8Array, o: number, len: number, sink: FastSink): boolean {
    const relay = this.relay;
    if (relay.mode !== 'relay' || len < 40 || b[o]! >> 4 !== 6) return false;
    const size = 40 + ((b[o + 4]! << 8) | b[o + 5]!);
    if (size > len) return false;
    if (!isTeredoAt(b, o + 24) || isTeredoAt(b, o + 8)) return false;
    if ((b[o + 8]! & 0xe0) !== 0x20) return false;
    const mapped = ~((b[o + 36]! << 24) | (b[o + 37]! << 16) | (b[o + 38]! << 8) | b[o + 39]!) >>> 0;
    if (!isGlobalIpv4(mapped)) return false;
    const slot = relay.peers.slotAt(b, o + 24);
    if (slot < 0) return false;
    const peer = relay.peers.view(slot);
    if (!peer.trusted) return false;
    const m = peer.mapped;
    if (m === undefined) return false;
    // Silent for 30 s: the core sends and bubbles again; leave both to it.
    if (now - peer.lastRx >= PEER_VALIDITY_MS && peer.nextAttemptAt === undefined) return false;
    relay.events.inc('to-clients-packets');
    relay.events.inc('to-clients-bytes', size);
    sink.udp(m.addr, m.port, b, o, size);
    peer.lastTx = now;
    return true;
  }
}

function sameAt(b: Uint8Array, o: number, a: Uint8Array): boolean {
  for (let k = 15; k >= 0; k--) if (b[o + k] !== a[k]) return false;
  return true;
}

export class ClientFastPath implements FastPath {
  constructor(private readonly client: TeredoClient) {}

  /** RFC 4380 §5.2.3 for a trusted peer (onFromPeer case 1), data only: delivered to the tunnel. */
  datagram(now: Millis, srcAddr: number, srcPort: number, dstAddr: number, b: Uint8Array, o: number, len: number, sink: FastSink): boolean {
    const client = this.client;
    if (len < 40 || b[o]! >> 4 !== 6) return false; // auth header / origin indication: the core
    const plen = (b[o + 4]! << 8) | b[o + 5]!;
    if (40 + plen !== len) return false; // trailers or a bad length
    const nh = b[o + 6]!;
    if (plen === 0 && nh === NEXT_HEADER_NONE) return false; // a bubble
    if (nh === 58 && plen > 0 && b[o + 40] === 134) return false; // a router advertisement
    if (client.isServerEndpoint(srcAddr, srcPort)) return false;
    const address = client.fastAddress;
    if (address === undefined) return false;
    if (dstAddr === TEREDO_DISCOVERY_ADDRESS || !sameAt(b, o + 24, address)) return false; // not for us (or all-nodes)
    const peer = client.peers.getAt(b, o + 8);
    if (peer === undefined || !peer.trusted) return false;
    const local = peer.local;
    let ok = local !== undefined && local.addr === srcAddr && local.port === srcPort;
    if (!ok) {
      for (const v of peer.verified) {
        if (v.addr === srcAddr && v.port === srcPort) {
          ok = true;
          break;
        }
      }
    }
    if (!ok) return false;
    client.events.inc('packets-received');
    peer.lastRx = now;
    client.peers.answered(peer, now);
    client.peers.touch(peer, now);
    client.events.inc('packets-to-tunnel');
    client.events.inc('bytes-to-tunnel', len);
    sink.deliver(b, o, len);
    return true;
  }

  /** RFC 4380 §5.2.4 case 1: from our address to a trusted peer reached at its mapping, heard from within 30 s. */
  ipv6(now: Millis, b: Uint8Array, o: number, len: number, sink: FastSink): boolean {
    const client = this.client;
    if (len < 40 || b[o]! >> 4 !== 6) return false;
    const size = 40 + ((b[o + 4]! << 8) | b[o + 5]!);
    if (size > len) return false;
    const d0 = b[o + 24]!;
    if (d0 === 0xff || (d0 === 0xfe && (b[o + 25]! & 0xc0) === 0x80)) return false; // multicast, link-local
    const address = client.fastAddress;
    if (address === undefined || !sameAt(b, o + 8, address)) return false;
    const peer = client.peers.getAt(b, o + 24);
    if (peer === undefined || !peer.trusted) return false;
    const m = peer.mapped;
    if (m === undefined || peer.sendFrom !== 0) return false;
    if (peer.local !== undefined && now < peer.localUntil) return false; // a same-link peer: the core
    if (now - peer.lastRx >= PEER_VALIDITY_MS && peer.nextAttemptAt === undefined) return false; // due a refresh
    client.noteTunnelPacket(now, len);
    client.events.inc('packets-sent');
    sink.udp(m.addr, m.port, b, o, size);
    peer.lastTx = now;
    return true;
  }
}
