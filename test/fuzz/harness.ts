/**
 * The fuzz targets shared by the short run in `npm test` (test/fuzz/*.test.ts, fast-check) and the long run
 * (`npm run fuzz -- --inputs N`, scripts/fuzz.mjs): every decoder in src/wire and every entry point of the Teredo
 * cores, each with the invariants its answer must satisfy. A target throws (an assertion or a crash) when an
 * input breaks it; nothing else counts as a failure.
 *
 * Core invariants (RFC 4380 §5.3.1, §5.4, §7; SECURITY.md):
 *   server   only udp-send from its own endpoints and ipv6-forward; a udp-send is an RA to the RS's sender (with the
 *            RS's own nonce, or none when the RS had none), an echo reply to the sender, or the input's own bubble or
 *            ICMPv6 packet towards the global mapped address of a Teredo destination; ipv6-forward only for a small
 *            ICMPv6 echo from a Teredo source whose mapping is the sender, to global native IPv6. Nothing to a
 *            non-global IPv4 address, never more than two datagrams for one.
 *   relay    from UDP: only the input's IPv6 packet forwarded, from a Teredo source to global native IPv6 (never
 *            native to native, never Teredo to Teredo), and queued packets released to the sender; from IPv6: only
 *            Teredo datagrams to global IPv4 addresses (bubbles to a server, packets to a trusted mapping).
 *   client   no ipv6-forward; every udp-send a well-formed Teredo datagram, to a global, private or the discovery
 *            multicast address; every ipv6-deliver a well-formed IPv6 packet.
 */
import assert from 'node:assert/strict';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { parseIcmpv6, parseIcmpv6Packet, parseNdpOptions, buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { isGlobalIpv4, type Ipv4Port } from '../../src/wire/ip.js';
import { isGlobalUnicastIpv6, ALL_ROUTERS } from '../../src/wire/ipv6class.js';
import { buildBubble, emitIpv6Header, parseIpv6, NEXT_HEADER_ICMPV6, NEXT_HEADER_NONE } from '../../src/wire/ipv6.js';
import { parseIpv4 } from '../../src/wire/ipv4.js';
import { parseUdp } from '../../src/wire/udp.js';
import { finish, pseudoSumV6, sum16 } from '../../src/wire/checksum.js';
import { decodeTeredoAddress, encodeTeredoAddress, encodeTeredoPacket, isTeredoAddress, parseTeredoPacket } from '../../src/wire/teredo.js';
import { parseTrailers, withTrailers } from '../../src/wire/trailers.js';
import { decodeIsatap } from '../../src/wire/isatap.js';
import { decodeSixToFour } from '../../src/wire/sixtofour.js';
import { TeredoServer } from '../../src/teredo/server.js';
import { ServerFastPath, type ServerFastOutput } from '../../src/teredo/serverfast.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { TeredoClient } from '../../src/teredo/client.js';

// ---------------------------------------------------------------------------------------------------------------
// Addresses

const ip = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
export const SERVER_PRIMARY = ip(198, 51, 100, 1);
export const SERVER_SECONDARY = ip(198, 51, 100, 2);
export const SERVER_EP: Ipv4Port = { addr: SERVER_PRIMARY, port: 3544 };
export const RELAY_EP: Ipv4Port = { addr: ip(198, 51, 100, 17), port: 3545 };
export const CLIENT_EP: Ipv4Port = { addr: ip(203, 0, 113, 5), port: 40000 };
const OTHER_CLIENT: Ipv4Port = { addr: ip(203, 0, 113, 7), port: 50001 };
const NATIVE = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);
const LINK_LOCAL = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export function teredoAddr(mapped: Ipv4Port, server = SERVER_PRIMARY, flags = 0): Uint8Array {
  return encodeTeredoAddress({ server, flags, mappedAddr: mapped.addr, mappedPort: mapped.port });
}

const CLIENT_T = teredoAddr(CLIENT_EP);
const OTHER_T = teredoAddr(OTHER_CLIENT);
const PRIVATE_T = teredoAddr({ addr: ip(10, 1, 2, 3), port: 4000 });

/** Where a fuzzed datagram comes from: global, private, loopback, the server itself, or the mapping its source names. */
const FROM: readonly Ipv4Port[] = [CLIENT_EP, OTHER_CLIENT, { addr: ip(10, 0, 0, 1), port: 3544 }, { addr: ip(127, 0, 0, 1), port: 1 }, SERVER_EP, { addr: ip(192, 88, 99, 1), port: 3544 }];

export function pickFrom(data: Uint8Array, selector: number): Ipv4Port {
  // Half the time the sender is the mapping embedded in the packet's source, so that the source checks pass and the
  // deeper rules are reached (a spoofer can always do this).
  if (selector % 2 === 0) {
    const t = parseTeredoPacket(data);
    if (t.ok && t.value.ipv6.length >= 40) {
      const d = decodeTeredoAddress(t.value.ipv6.subarray(8, 24));
      if (d) return { addr: d.mappedAddr, port: d.mappedPort };
    }
  }
  return FROM[(selector >>> 1) % FROM.length]!;
}

// ---------------------------------------------------------------------------------------------------------------
// Valid inputs to mutate

function ipv6Packet(src: Uint8Array, dst: Uint8Array, nextHeader: number, payload: Uint8Array, hopLimit = 64): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  emitIpv6Header({ payloadLength: payload.length, nextHeader, hopLimit, src, dst }, p, 0);
  p.set(payload, 40);
  return p;
}

function rs(auth: boolean, cone: boolean): Uint8Array {
  const src = cone ? LINK_LOCAL : Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
  const p = buildIcmpv6Packet(src, ALL_ROUTERS, { type: 'router-solicitation', options: [] }, 255);
  return encodeTeredoPacket(auth ? { auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), confirmation: 0 }, ipv6: p } : { ipv6: p });
}

const echo = (src: Uint8Array, dst: Uint8Array, size = 8): Uint8Array =>
  buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: 7, sequence: 1, data: new Uint8Array(size).fill(0x61) });

/** Valid UDP payloads a Teredo node receives. */
export const DATAGRAM_SEEDS: readonly Uint8Array[] = [
  rs(true, false),
  rs(false, false),
  rs(true, true),
  encodeTeredoPacket({ ipv6: buildBubble(CLIENT_T, OTHER_T) }),
  encodeTeredoPacket({ ipv6: buildBubble(CLIENT_T, PRIVATE_T) }),
  encodeTeredoPacket({ ipv6: buildBubble(CLIENT_T, LINK_LOCAL) }),
  encodeTeredoPacket({ ipv6: withTrailers(buildBubble(CLIENT_T, OTHER_T), { nonce: Uint8Array.of(9, 9, 9, 9) }) }),
  encodeTeredoPacket({ origin: OTHER_CLIENT, ipv6: buildBubble(OTHER_T, CLIENT_T) }),
  encodeTeredoPacket({ ipv6: echo(CLIENT_T, NATIVE) }),
  encodeTeredoPacket({ ipv6: echo(CLIENT_T, NATIVE, 400) }),
  encodeTeredoPacket({ ipv6: echo(CLIENT_T, OTHER_T) }),
  encodeTeredoPacket({ ipv6: echo(NATIVE, CLIENT_T) }),
  encodeTeredoPacket({ ipv6: ipv6Packet(CLIENT_T, NATIVE, 17, Uint8Array.of(0x12, 0x34, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4)) }),
  encodeTeredoPacket({ ipv6: ipv6Packet(CLIENT_T, NATIVE, 6, new Uint8Array(20).fill(0x50)) }),
  encodeTeredoPacket({ ipv6: ipv6Packet(CLIENT_T, OTHER_T, NEXT_HEADER_NONE, new Uint8Array(0)) }),
  // The RA a server sends (origin indication, nonce).
  (() => {
    const ra = buildIcmpv6Packet(LINK_LOCAL, Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), {
      type: 'router-advertisement', curHopLimit: 0, managed: false, other: false, routerLifetime: 0, reachableTime: 0, retransTimer: 2000,
      options: [{ type: 'prefix-information', prefixLength: 64, onLink: false, autonomous: true, validLifetime: 0xffffffff, preferredLifetime: 0xffffffff, prefix: Uint8Array.of(0x20, 1, 0, 0, 198, 51, 100, 1, 0, 0, 0, 0, 0, 0, 0, 0) }, { type: 'mtu', mtu: 1280 }],
    });
    return encodeTeredoPacket({ origin: CLIENT_EP, auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), confirmation: 0 }, ipv6: ra });
  })(),
];

/** Valid IPv6 packets from a tunnel or the native side. */
export const IPV6_SEEDS: readonly Uint8Array[] = [
  echo(NATIVE, CLIENT_T),
  echo(NATIVE, PRIVATE_T),
  echo(NATIVE, NATIVE),
  echo(CLIENT_T, OTHER_T),
  echo(CLIENT_T, NATIVE),
  echo(LINK_LOCAL, CLIENT_T),
  ipv6Packet(NATIVE, CLIENT_T, 17, Uint8Array.of(0x12, 0x34, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4)),
  ipv6Packet(NATIVE, OTHER_T, 6, new Uint8Array(20).fill(0x50)),
  buildBubble(NATIVE, CLIENT_T),
];

// ---------------------------------------------------------------------------------------------------------------
// Mutations

export type Edit = [position: number, value: number, op: number];

/** Overwrite, insert, delete, truncate or extend at pseudo-random positions (fast-check shrinks the list). */
export function applyEdits(base: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Array.from(base);
  for (const [pos, value, op] of edits) {
    const at = b.length === 0 ? 0 : pos % (b.length + 1);
    switch (op % 6) {
      case 0:
      case 1:
        if (at < b.length) b[at] = value & 0xff;
        break;
      case 2:
        b.splice(at, 0, value & 0xff);
        break;
      case 3:
        b.splice(at, 1 + (value % 8));
        break;
      case 4:
        b = b.slice(0, at);
        break;
      default:
        // Lengths that lie: a 16-bit field set to an interesting value.
        if (at + 1 < b.length) {
          const v = [0, 1, 8, 40, 0x7fff, 0xffff, b.length, b.length - 40][value % 8]! & 0xffff;
          b[at] = v >> 8;
          b[at + 1] = v & 0xff;
        }
    }
  }
  return Uint8Array.from(b);
}

/**
 * Makes a mutated packet plausible again, so that the checks behind the framing are reached: the IPv6 payload
 * length set to what follows the header, and the ICMPv6 checksum recomputed.
 */
export function repair(b: Uint8Array): Uint8Array {
  const t = parseTeredoPacket(b);
  const off = t.ok ? b.length - t.value.ipv6.length : b[0]! >> 4 === 6 ? 0 : -1;
  if (off < 0 || b.length - off < 40) return b;
  const out = b.slice();
  const len = out.length - off - 40;
  out[off + 4] = len >> 8;
  out[off + 5] = len & 0xff;
  if (out[off + 6] === NEXT_HEADER_ICMPV6 && len >= 4) {
    out[off + 42] = 0;
    out[off + 43] = 0;
    const c = finish(sum16(out, off + 40, len, pseudoSumV6(out.subarray(off + 8, off + 24), out.subarray(off + 24, off + 40), len, NEXT_HEADER_ICMPV6)));
    out[off + 42] = c >> 8;
    out[off + 43] = c & 0xff;
  }
  return out;
}

/** The long run's generator: random bytes, or a seed with a few edits. */
export function generate(rng: SeededRng, seeds: readonly Uint8Array[]): Uint8Array {
  const r = rng.u32();
  if (r % 4 === 0) {
    const len = rng.u32() % 8 === 0 ? rng.u32() % 1600 : rng.u32() % 96;
    const b = new Uint8Array(len);
    rng.fill(b);
    if (len >= 2 && r % 3 === 0) b.set([0x00, (r >>> 8) & 1]);
    if (len >= 1 && r % 5 === 0) b[0] = 0x60;
    return b;
  }
  const base = seeds[rng.u32() % seeds.length]!;
  const edits: Edit[] = [];
  const n = 1 + (rng.u32() % 4);
  for (let i = 0; i < n; i++) edits.push([rng.u32(), rng.u32() & 0xffff, rng.u32()]);
  const m = applyEdits(base, edits);
  return rng.u32() % 2 === 0 ? repair(m) : m;
}

// ---------------------------------------------------------------------------------------------------------------
// Targets

function drain(e: { poll(): Action | undefined }): Action[] {
  const out: Action[] = [];
  for (let a = e.poll(); a; a = e.poll()) out.push(a);
  return out;
}

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export interface Target {
  name: string;
  /** Which seeds to mutate. */
  seeds: 'datagram' | 'ipv6';
  /** Runs one input; throws when an invariant breaks. `selector` picks the sender and the core's entry point. */
  run(data: Uint8Array, selector: number): number | void;
}

/** Every decoder in src/wire. */
const WIRE: Target[] = [
  {
    name: 'wire',
    seeds: 'datagram',
    run(b) {
      const v4 = parseIpv4(b);
      if (v4.ok) assert.equal(v4.value.payload.length, v4.value.header.totalLength - v4.value.header.headerLength);
      parseIpv4(b, false);
      parseUdp(b);
      parseUdp(b, { family: 4, src: CLIENT_EP.addr, dst: SERVER_PRIMARY });
      const t = parseTeredoPacket(b);
      if (t.ok) assert.deepEqual([...encodeTeredoPacket(t.value)], [...b]);
      const inner = t.ok ? t.value.ipv6 : b;
      const p = parseIpv6(inner);
      if (p.ok) {
        assert.equal(p.value.packet.length + p.value.trailing.length, inner.length);
        parseTrailers(p.value.trailing);
        parseIcmpv6(p.value.payload, p.value.header.src, p.value.header.dst);
      }
      parseIcmpv6Packet(inner);
      parseIcmpv6(b);
      parseNdpOptions(b);
      parseTrailers(b);
      for (let off = 0; off + 16 <= Math.min(b.length, 64); off += 8) {
        const a = b.subarray(off, off + 16);
        const d = decodeTeredoAddress(a);
        if (d) assert.deepEqual([...encodeTeredoAddress(d)], [...a]);
        decodeIsatap(a);
        decodeSixToFour(a);
      }
      // "Went deep": a well-formed Teredo packet carrying well-formed IPv6.
      return t.ok && p.ok ? 1 : 0;
    },
  },
];

function serverTarget(): Target {
  return {
    name: 'server.handleDatagram',
    seeds: 'datagram',
    run(data, selector) {
      // Fresh and without limits: the invariants are about what one datagram can make the server send.
      const server = new TeredoServer({ primary: SERVER_PRIMARY, secondary: SERVER_SECONDARY, probePort: 3546, rateLimits: { rsPerSource: undefined, rsGlobal: undefined, forwardPerSource: undefined } });
      const from = pickFrom(data, selector);
      const locals = server.localEndpoints();
      const to = locals[(selector >>> 4) % locals.length]!;
      server.handleDatagram(selector, from, to, data);
      const actions = drain(server);
      checkServerActions(server, actions, from, data);
      return actions.length;
    },
  };
}

/**
 * The server's fast path (teredo/serverfast.ts) against the core alone: for the same datagram, fast path + core
 * must send the same datagrams (from the same endpoints) and count the same, rate limits off or on.
 */
function serverFastTarget(): Target {
  const show = (local: Ipv4Port, remote: Ipv4Port, data: Uint8Array): string => `${local.addr}:${local.port} -> ${remote.addr}:${remote.port} ${Buffer.from(data).toString('hex')}`;
  return {
    name: 'server.fastPath',
    seeds: 'datagram',
    run(data, selector) {
      const limits = selector % 8 === 1 ? {} : { rsPerSource: undefined, rsGlobal: undefined, forwardPerSource: undefined };
      const config = { primary: SERVER_PRIMARY, secondary: SERVER_SECONDARY, probePort: 3546, rateLimits: limits };
      const core = new TeredoServer(config);
      const dual = new TeredoServer(config);
      const from = pickFrom(data, selector);
      const locals = core.localEndpoints();
      const to = locals[(selector >>> 4) % locals.length]!;
      const sendsOf = (s: TeredoServer): string[] => drain(s).map((a) => (a.kind === 'udp-send' ? show(a.local!, a.remote, a.data) : a.kind));
      core.handleDatagram(selector, from, to, data);
      const expected = sendsOf(core);
      const got: string[] = [];
      const written: (() => string)[] = [];
      const output = (addr: number): ServerFastOutput => {
        const sendBuffer = new Uint8Array(2048);
        return {
          sendBuffer,
          reserve(dst, port, length, src) {
            assert.equal(src, addr, 'the fast path answers from the socket of its source address');
            written.push(() => show({ addr, port: 3544 }, { addr: dst, port }, sendBuffer.subarray(7, 7 + length)));
            return 7;
          },
        };
      };
      const fastPath = new ServerFastPath(dual, output(SERVER_PRIMARY), output(SERVER_SECONDARY));
      const n = fastPath.datagram(selector, from.addr, from.port, to.addr, to.port, data, 0, data.length);
      fastPath.flush();
      if (n < 0) {
        assert.equal(written.length, 0, 'the fast path declined but sent');
        dual.handleDatagram(selector, from, to, data);
        got.push(...sendsOf(dual));
      } else got.push(...written.map((w) => w()));
      assert.deepEqual(got, expected);
      assert.deepEqual(dual.stats(), core.stats());
      return n >= 0 ? 1 : 0;
    },
  };
}

export function checkServerActions(server: TeredoServer, actions: Action[], from: Ipv4Port, data: Uint8Array): void {
  const locals = server.localEndpoints();
  assert.ok(actions.length <= 2, `${actions.length} actions for one datagram`);
  const input = parseTeredoPacket(data);
  for (const a of actions) {
    assert.ok(input.ok, 'the server acted on a datagram that is not a Teredo packet');
    const inIpv6 = parseIpv6(input.value.ipv6);
    assert.ok(inIpv6.ok);
    const h = inIpv6.value.header;
    if (a.kind === 'ipv6-forward') {
      // §5.3.1 + §5.2.9: only the connectivity test, from a client whose mapping is the sender, to global native IPv6.
      assert.ok(bytesEqual(a.packet, inIpv6.value.packet), 'ipv6-forward is the input packet');
      assert.equal(h.nextHeader, NEXT_HEADER_ICMPV6);
      assert.ok(a.packet[40] === 128 || a.packet[40] === 129, 'only echo leaves natively');
      assert.ok(a.packet.length <= 40 + 128);
      assert.ok(isGlobalUnicastIpv6(h.dst) && !isTeredoAddress(h.dst));
      const s = decodeTeredoAddress(h.src);
      assert.ok(s && s.mappedAddr === from.addr && s.mappedPort === from.port, 'native forward from a spoofed Teredo source');
      continue;
    }
    assert.equal(a.kind, 'udp-send', `server action ${a.kind}`);
    if (a.kind !== 'udp-send') continue;
    assert.ok(a.local && locals.some((l) => l.addr === a.local!.addr && l.port === a.local!.port), 'sent from one of its endpoints');
    assert.ok(isGlobalIpv4(a.remote.addr), 'nothing to a non-global IPv4 address');
    const out = parseTeredoPacket(a.data);
    assert.ok(out.ok, 'a well-formed Teredo datagram');
    const o = parseIpv6(out.value.ipv6);
    assert.ok(o.ok);
    const type = o.value.header.nextHeader === NEXT_HEADER_ICMPV6 ? o.value.payload[0] : undefined;
    if (type === 134) {
      // The RA answers an RS, to its sender, with the origin indication and the RS's own nonce (or none).
      assert.equal(h.nextHeader, NEXT_HEADER_ICMPV6);
      assert.equal(inIpv6.value.payload[0], 133, 'an RA only for an RS');
      assert.ok(a.remote.addr === from.addr && a.remote.port === from.port);
      assert.ok(out.value.origin && out.value.origin.addr === from.addr && out.value.origin.port === from.port);
      if (input.value.auth) assert.deepEqual([...out.value.auth!.nonce], [...input.value.auth.nonce]);
      else assert.equal(out.value.auth, undefined, 'no nonce in the RA answering an RS without one (Miredo leaks one, report §10.2)');
      continue;
    }
    if (type === 129 && a.remote.addr === from.addr && a.remote.port === from.port && !bytesEqual(o.value.packet, inIpv6.value.packet)) {
      // The echo reply to the server's own link-local address.
      assert.equal(inIpv6.value.payload[0], 128);
      continue;
    }
    // Forwarded: the same IPv6 packet (and trailers), a bubble or ICMPv6, to the mapping of a Teredo destination.
    assert.ok(bytesEqual(out.value.ipv6, input.value.ipv6), 'forwards the input unchanged');
    assert.ok(h.nextHeader === NEXT_HEADER_ICMPV6 || (h.nextHeader === NEXT_HEADER_NONE && h.payloadLength === 0), 'only bubbles and ICMPv6 (§5.3.1 case 2)');
    const d = decodeTeredoAddress(h.dst);
    assert.ok(d, 'only towards Teredo addresses');
    assert.ok(isGlobalIpv4(d.mappedAddr) && d.mappedAddr === a.remote.addr && d.mappedPort === a.remote.port);
    const s = decodeTeredoAddress(h.src);
    assert.ok((s && s.mappedAddr === from.addr && s.mappedPort === from.port) || (!isTeredoAddress(h.src) && d.server === SERVER_PRIMARY), 'source check (§5.3.1 cases 5-7)');
  }
}

/** A relay that already has peers (one trusted, some waiting), so that every path of §5.4.2 is reachable. */
function relayWithPeers(seed: number): TeredoRelay {
  const relay = new TeredoRelay({ local: RELAY_EP, rateLimits: { newPeerPerSource: undefined, newPeerGlobal: undefined } }, new SeededRng(seed));
  relay.handleIpv6(0, echo(NATIVE, CLIENT_T));
  relay.handleIpv6(0, echo(NATIVE, OTHER_T));
  relay.handleDatagram(1, CLIENT_EP, RELAY_EP, encodeTeredoPacket({ ipv6: buildBubble(CLIENT_T, relay.bubbleSourceFor(CLIENT_T)) }));
  drain(relay);
  return relay;
}

export function checkRelayActions(actions: Action[], from: Ipv4Port | undefined, input: Uint8Array): void {
  for (const a of actions) {
    if (a.kind === 'udp-send') {
      assert.ok(isGlobalIpv4(a.remote.addr), 'relay: nothing to a non-global IPv4 address');
      const t = parseTeredoPacket(a.data);
      assert.ok(t.ok && !t.value.origin && !t.value.auth, 'relay: plain Teredo datagrams');
      const p = parseIpv6(t.value.ipv6);
      assert.ok(p.ok);
      assert.ok(isTeredoAddress(p.value.header.dst), 'relay: datagrams carry packets to Teredo addresses');
      continue;
    }
    assert.equal(a.kind, 'ipv6-forward', `relay action ${a.kind}`);
    if (a.kind !== 'ipv6-forward') continue;
    const p = parseIpv6(a.packet);
    assert.ok(p.ok);
    const h = p.value.header;
    if (h.src[0] === 0xfe && h.src[1] === 0x80 && h.nextHeader === NEXT_HEADER_ICMPV6 && p.value.payload[0]! < 128) {
      // The relay's own ICMPv6 error (address unreachable) about a packet it gave up on.
      assert.equal(from, undefined, 'relay: errors only on timeouts');
      continue;
    }
    if (from !== undefined) {
      const t = parseTeredoPacket(input);
      assert.ok(t.ok && bytesEqual(a.packet, parseIpv6(t.value.ipv6).ok ? (parseIpv6(t.value.ipv6) as { ok: true; value: { packet: Uint8Array } }).value.packet : new Uint8Array()), 'relay: forwards the packet it received');
    }
    // §5.4.2: from a Teredo client to global native IPv6; never native to native, never Teredo to Teredo.
    assert.ok(isTeredoAddress(h.src), 'relay: native-to-native forwarding');
    assert.ok(isGlobalUnicastIpv6(h.dst) && !isTeredoAddress(h.dst), 'relay: forwarding to a non-global or Teredo destination');
  }
}

function relayTargets(): Target[] {
  let relay = relayWithPeers(1);
  let n = 0;
  const fresh = (): TeredoRelay => {
    // A new relay now and then, so that state from earlier inputs neither piles up nor hides paths.
    if (++n % 500 === 0) relay = relayWithPeers(n);
    return relay;
  };
  return [
    {
      name: 'relay.handleDatagram',
      seeds: 'datagram',
      run(data, selector) {
        const r = fresh();
        const from = pickFrom(data, selector);
        r.handleDatagram(n, from, RELAY_EP, data);
        const actions = drain(r);
        checkRelayActions(actions, from, data);
        return actions.length;
      },
    },
    {
      name: 'relay.handleIpv6',
      seeds: 'ipv6',
      run(data, selector) {
        const r = fresh();
        r.handleIpv6(n, data);
        if (selector % 16 === 0) r.handleTimeout(n + 10_000);
        const actions = drain(r);
        checkRelayActions(actions, undefined, data);
        return actions.length;
      },
    },
  ];
}

/** A client qualified against our server (no NAT: its mapping is its own endpoint), in virtual time. */
export function qualifiedClient(seed: number): TeredoClient {
  const client = new TeredoClient({ server: SERVER_PRIMARY, server2: SERVER_SECONDARY, local: CLIENT_EP, detectNat: false, localDiscovery: true }, new SeededRng(seed));
  const server = new TeredoServer({ primary: SERVER_PRIMARY, secondary: SERVER_SECONDARY });
  for (let now = 0; now < 10_000 && client.currentState !== 'qualified'; now += 100) {
    client.handleTimeout(now);
    for (let a = client.poll(); a; a = client.poll()) {
      if (a.kind !== 'udp-send') continue;
      server.handleDatagram(now, CLIENT_EP, { addr: a.remote.addr, port: a.remote.port }, a.data);
      for (let b = server.poll(); b; b = server.poll()) if (b.kind === 'udp-send') client.handleDatagram(now, b.local ?? SERVER_EP, CLIENT_EP, b.data);
    }
  }
  assert.equal(client.currentState, 'qualified');
  drain(client);
  return client;
}

export function checkClientActions(actions: Action[]): void {
  for (const a of actions) {
    assert.notEqual(a.kind, 'ipv6-forward', 'a client forwards nothing natively');
    if (a.kind === 'udp-send') {
      const r = a.remote.addr;
      const first = r >>> 24;
      assert.ok(first !== 0 && first !== 127 && r !== 0xffffffff && (first < 224 || r === ip(224, 0, 0, 253)), `client: udp-send to ${r >>> 0}`);
      assert.ok(a.remote.port !== 0);
      assert.ok(parseTeredoPacket(a.data).ok, 'client: a well-formed Teredo datagram');
    }
    if (a.kind === 'ipv6-deliver') assert.ok(parseIpv6(a.packet).ok, 'client: delivers well-formed IPv6');
  }
}

function clientTargets(): Target[] {
  let client = qualifiedClient(1);
  let n = 0;
  let now = 20_000;
  const fresh = (): TeredoClient => {
    if (++n % 300 === 0) {
      client = qualifiedClient(n);
      now = 20_000;
    }
    now += 7;
    return client;
  };
  return [
    {
      name: 'client.handleDatagram',
      seeds: 'datagram',
      run(data, selector) {
        const c = fresh();
        const from = selector % 3 === 0 ? SERVER_EP : pickFrom(data, selector);
        c.handleDatagram(now, from, CLIENT_EP, data);
        if (selector % 32 === 0) c.handleTimeout(c.pollTimeout() ?? now);
        const actions = drain(c);
        checkClientActions(actions);
        return actions.length;
      },
    },
    {
      name: 'client.handleIpv6',
      seeds: 'ipv6',
      run(data, selector) {
        const c = fresh();
        c.handleIpv6(now, data);
        if (selector % 32 === 0) c.handleTimeout(c.pollTimeout() ?? now);
        const actions = drain(c);
        checkClientActions(actions);
        return actions.length;
      },
    },
  ];
}

/** All targets, with fresh cores. */
export function allTargets(): Target[] {
  return [...WIRE, serverTarget(), serverFastTarget(), ...relayTargets(), ...clientTargets()];
}

export function seedsFor(t: Target): readonly Uint8Array[] {
  return t.seeds === 'datagram' ? DATAGRAM_SEEDS : IPV6_SEEDS;
}

// ---------------------------------------------------------------------------------------------------------------
// The corpus of regression vectors, and the long loop

/** One line per vector: `<target> <selector> <hex>`; `#` starts a comment. */
export interface Vector {
  target: string;
  selector: number;
  data: Uint8Array;
  line: number;
}

export function parseCorpus(text: string): Vector[] {
  const out: Vector[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(\S+)\s+([0-9]+)\s+((?:[0-9a-fA-F]{2})*)$/.exec(line);
    if (!m) throw new Error(`corpus line ${i + 1}: expected '<target> <selector> <hex>'`);
    out.push({ target: m[1]!, selector: Number(m[2]), data: Uint8Array.from(Buffer.from(m[3]!, 'hex')), line: i + 1 });
  });
  return out;
}

export function formatVector(target: string, selector: number, data: Uint8Array): string {
  return `${target} ${selector} ${Buffer.from(data).toString('hex')}`;
}

export interface FuzzCrash {
  target: string;
  selector: number;
  data: Uint8Array;
  error: string;
}

export interface FuzzResult {
  inputs: number;
  perTarget: Record<string, number>;
  /** Inputs that went deep: made a core act (send, forward, deliver), or decoded as Teredo + IPv6 (wire). */
  acted: Record<string, number>;
  crashes: FuzzCrash[];
}

/** `inputs` inputs spread over the targets round-robin, from `seed`; every failure is collected, none stops the run. */
export function runFuzz(inputs: number, seed: number, onProgress?: (done: number) => void): FuzzResult {
  const targets = allTargets();
  const rng = new SeededRng(seed);
  const perTarget: Record<string, number> = {};
  const acted: Record<string, number> = {};
  const crashes: FuzzCrash[] = [];
  for (let i = 0; i < inputs; i++) {
    const t = targets[i % targets.length]!;
    const data = generate(rng, seedsFor(t));
    const selector = rng.u32();
    perTarget[t.name] = (perTarget[t.name] ?? 0) + 1;
    try {
      if (Number(t.run(data, selector) ?? 0) > 0) acted[t.name] = (acted[t.name] ?? 0) + 1;
    } catch (e) {
      crashes.push({ target: t.name, selector, data, error: e instanceof Error ? (e.stack ?? e.message).split('\n').slice(0, 3).join(' | ') : String(e) });
    }
    if (onProgress && (i + 1) % 100_000 === 0) onProgress(i + 1);
  }
  return { inputs, perTarget, acted, crashes };
}
