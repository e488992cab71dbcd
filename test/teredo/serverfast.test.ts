/**
 * Differential test of the server's fast path (src/teredo/serverfast.ts): the same random datagrams — Router
 * Solicitations valid and not (auth headers with client ids and auth values, cone or not, options good and bad,
 * wrong hop limit, code, checksum, source, destination, lengths, trailers, origin indications), to every local
 * endpoint and some wrong ones, from global and private sources, interleaved with bubbles and echo requests that
 * only the core handles, with time passing and rate limits off, default or tight — go to a server core alone and to
 * fast path + core. Every datagram sent (source, destination, bytes, in order, including those a full socket queue
 * drops) and the final counters must be the same, and the fast path must have answered a good share.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { ServerFastPath, type ServerFastOutput } from '../../src/teredo/serverfast.js';
import { TeredoServer, type TeredoServerConfig } from '../../src/teredo/server.js';
import { finish, pseudoSumV6, sum16 } from '../../src/wire/checksum.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import type { Ipv4Port } from '../../src/wire/ip.js';
import { ALL_ROUTERS } from '../../src/wire/ipv6class.js';
import { buildBubble, emitIpv6Header } from '../../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket, teredoLinkLocal } from '../../src/wire/teredo.js';
import { withTrailers } from '../../src/wire/trailers.js';
import { rsDatagram, v4, v6 } from './fixtures.js';

const PRIMARY = v4('198.51.100.1');
const SECONDARY = v4('198.51.100.2');
const PROBE_PORT = 3546;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A socket's send queue as both paths see it: every datagram in order; with `dropEvery`, some are dropped. */
class FakeSocket implements ServerFastOutput {
  readonly sendBuffer = new Uint8Array(1 << 16);
  private pending: { at: number; length: number; head: string }[] = [];
  private n = 0;

  constructor(
    private readonly name: string,
    private readonly out: string[],
    private readonly dropEvery: number,
  ) {}

  private dropped(): boolean {
    this.n++;
    return this.dropEvery > 0 && this.n % this.dropEvery === 0;
  }

  send(remote: Ipv4Port, data: Uint8Array, src: number): void {
    if (!this.dropped()) this.out.push(`${this.name} ${src} -> ${remote.addr}:${remote.port} ${hex(data)}`);
  }

  reserve(addr: number, port: number, length: number, src: number): number {
    this.settle();
    if (this.dropped()) return -1;
    const at = 1 + (this.n % 512); // anywhere in the buffer, as in a real queue
    this.sendBuffer.fill(0xee, at, at + length);
    this.pending.push({ at, length, head: `${this.name} ${src} -> ${addr}:${port}` });
    return at;
  }

  /** The bytes written after reserve() become the datagram. */
  settle(): void {
    for (const p of this.pending) this.out.push(`${p.head} ${hex(this.sendBuffer.subarray(p.at, p.at + p.length))}`);
    this.pending = [];
  }
}

/** An IPv6 packet carrying `body` as ICMPv6 with a correct checksum. */
function icmpPacket(src: Uint8Array, dst: Uint8Array, body: Uint8Array, hopLimit = 255): Uint8Array {
  const p = new Uint8Array(40 + body.length);
  emitIpv6Header({ src, dst, nextHeader: 58, payloadLength: body.length, hopLimit }, p, 0);
  p.set(body, 40);
  fixChecksum(p);
  return p;
}

function fixChecksum(p: Uint8Array): void {
  if (p.length < 44) return;
  p[42] = 0;
  p[43] = 0;
  const body = p.subarray(40);
  const ck = finish(sum16(body, 0, body.length, pseudoSumV6(p.subarray(8, 24), p.subarray(24, 40), body.length, 58)));
  p[42] = ck >> 8;
  p[43] = ck & 0xff;
}

function runSeed(seed: number, steps: number): { fast: number; core: number; answeredFast: number } {
  const r = new SeededRng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[r.u32() % xs.length]!;
  const chance = (p: number): boolean => r.u32() / 2 ** 32 < p;
  const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => r.u32() & 0xff);
  const limits = pick<TeredoServerConfig['rateLimits']>([
    { rsPerSource: undefined, rsGlobal: undefined, forwardPerSource: undefined },
    {},
    { rsPerSource: { perSecond: 2, burst: 3 }, rsGlobal: { perSecond: 20, burst: 8 }, tableSlots: 16 },
    { rsPerSource: undefined, rsGlobal: { perSecond: 5, burst: 4 } },
  ]);
  const config: TeredoServerConfig = { primary: PRIMARY, secondary: SECONDARY, probePort: PROBE_PORT, rateLimits: limits, rateLimitKey: bytes(16) };
  if (chance(0.3)) config.mtu = 1280 + (r.u32() % 200);
  if (chance(0.3)) config.prefixValidLifetime = r.u32();
  const dropEvery = chance(0.3) ? 2 + (r.u32() % 6) : 0;
  const core = new TeredoServer(config);
  const dual = new TeredoServer(config);
  const outA: string[] = [];
  const outB: string[] = [];
  const socketsA = new Map<number, FakeSocket>();
  const socketsB = new Map<number, FakeSocket>();
  for (const l of core.localEndpoints()) {
    const key = l.addr * 65536 + l.port;
    socketsA.set(key, new FakeSocket(`${l.addr}:${l.port}`, outA, dropEvery));
    socketsB.set(key, new FakeSocket(`${l.addr}:${l.port}`, outB, dropEvery));
  }
  const fast = new ServerFastPath(dual, socketsB.get(PRIMARY * 65536 + 3544)!, socketsB.get(SECONDARY * 65536 + 3544)!);
  const perform = (s: TeredoServer, sockets: Map<number, FakeSocket>, out: string[]): void => {
    for (const sock of sockets.values()) sock.settle();
    for (let a: Action | undefined = s.poll(); a; a = s.poll()) {
      if (a.kind === 'udp-send') sockets.get(a.local!.addr * 65536 + a.local!.port)!.send(a.remote, a.data, a.local!.addr);
      else out.push(JSON.stringify({ ...a, packet: 'packet' in a ? hex(a.packet) : undefined }));
    }
  };

  const sources: Ipv4Port[] = [
    { addr: v4('203.0.113.1'), port: 23863 },
    { addr: v4('203.0.113.77'), port: 1 },
    { addr: v4('198.18.0.5'), port: 65535 },
    { addr: v4('192.168.1.10'), port: 5000 }, // not global
    { addr: v4('100.64.1.2'), port: 4000 },
  ];
  const locals: Ipv4Port[] = [
    { addr: PRIMARY, port: 3544 },
    { addr: SECONDARY, port: 3544 },
    { addr: SECONDARY, port: PROBE_PORT },
    { addr: PRIMARY, port: PROBE_PORT }, // wrong endpoints
    { addr: v4('198.51.100.3'), port: 3544 },
  ];
  const linkLocal = (): Uint8Array => {
    const a = teredoLinkLocal(r.u32() & 0xffff, { addr: r.u32(), port: r.u32() & 0xffff });
    if (chance(0.1)) a[1] = 0x80 | (r.u32() & 0x3f); // fe80::/10, not only fe80::/64
    return a;
  };
  const option = (): Uint8Array => {
    switch (r.u32() % 8) {
      case 0: // source link-layer, any length
        return Uint8Array.of(1, 1, ...bytes(6));
      case 1: {
        const o = new Uint8Array(32);
        o.set(bytes(32));
        o[0] = 3;
        o[1] = 4;
        o[2] = chance(0.8) ? r.u32() % 129 : 129 + (r.u32() % 127);
        return o;
      }
      case 2:
        return Uint8Array.of(3, 1, ...bytes(6)); // prefix information of the wrong length
      case 3:
        return Uint8Array.of(5, 1, ...bytes(6));
      case 4:
        return Uint8Array.of(5, 2, ...bytes(14)); // MTU of the wrong length
      case 5:
        return Uint8Array.of(r.u32() & 0xff, 0, ...bytes(6)); // zero length
      case 6:
        return Uint8Array.of(200, 3, ...bytes(22)); // unknown type
      default:
        return bytes(1 + (r.u32() % 7)); // a truncated one
    }
  };
  const rs = (): Uint8Array => {
    let body: Uint8Array;
    if (chance(0.6)) body = Uint8Array.of(133, 0, 0, 0, 0, 0, 0, 0);
    else {
      const opts: Uint8Array[] = [];
      for (let k = r.u32() % 3; k >= 0; k--) opts.push(option());
      const total = opts.reduce((n, o) => n + o.length, 0);
      body = new Uint8Array(8 + total);
      body[0] = 133;
      let o = 8;
      for (const x of opts) {
        body.set(x, o);
        o += x.length;
      }
    }
    if (chance(0.05)) body[1] = 1 + (r.u32() % 255); // bad code
    if (chance(0.05)) body[0] = pick([128, 134, 135]);
    if (chance(0.03)) body = body.subarray(0, r.u32() % 8); // too short
    if (chance(0.1)) body[4 + (r.u32() % 4)] = r.u32() & 0xff; // reserved bytes: ignored
    const src = chance(0.9) ? linkLocal() : pick([v6('2001:db8::1'), v6('fe00::1'), v6('fec0::1')]);
    const dst = chance(0.92) ? ALL_ROUTERS : pick([v6('ff02::1'), v6('ff02::2:0'), v6('fe80::1'), v6('ff12::2')]);
    return icmpPacket(src, dst, body, chance(0.95) ? 255 : r.u32() & 0xff);
  };
  const frame = (ipv6: Uint8Array): Uint8Array => {
    const auth = chance(0.7)
      ? { clientId: chance(0.8) ? new Uint8Array(0) : bytes(r.u32() % 12), authValue: chance(0.8) ? new Uint8Array(0) : bytes(r.u32() % 12), nonce: bytes(8), confirmation: r.u32() & 0xff }
      : undefined;
    const origin = chance(0.04) ? { addr: r.u32(), port: r.u32() & 0xffff } : undefined;
    return encodeTeredoPacket({ ...(auth ? { auth } : {}), ...(origin ? { origin } : {}), ipv6 });
  };
  const mangle = (d: Uint8Array): Uint8Array => {
    const x = r.u32() % 40;
    if (x === 0 && d.length > 0) return d.subarray(0, r.u32() % d.length); // truncated
    if (x === 1) return withTrailers(d, { nonce: bytes(4) }); // RFC 6081 trailer after the packet
    if (x === 2) return Uint8Array.of(...d, ...bytes(1 + (r.u32() % 9))); // padding
    if (x === 3 && d.length > 0) {
      const c = d.slice();
      c[r.u32() % c.length] ^= 1 << (r.u32() % 8); // a flipped bit anywhere
      return c;
    }
    if (x === 4) {
      // A changed field in the IPv6 packet, checksum fixed: auth lengths, payload length, hop limit...
      const c = d.slice();
      const start = c[0] === 0 && c[1] === 1 && c.length >= 4 ? 13 + c[2]! + c[3]! : 0;
      const ip = c.subarray(start);
      if (ip.length >= 48) {
        ip[pick([4, 5, 6, 7, 8, 9, 24, 25, 39, 41])] = r.u32() & 0xff;
        fixChecksum(ip);
      }
      return c;
    }
    if (x === 5 && d.length >= 4 && d[0] === 0 && d[1] === 1) {
      const c = d.slice();
      c[2 + (r.u32() % 2)] = r.u32() & 0xff; // auth header lengths
      return c;
    }
    return d;
  };
  const other = (): Uint8Array => {
    const s = pick(sources);
    const client = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: s.addr, mappedPort: s.port });
    const peer = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: v4('203.0.113.9'), mappedPort: 4444 });
    switch (r.u32() % 4) {
      case 0:
        return encodeTeredoPacket({ ipv6: buildBubble(client, peer) });
      case 1: // echo to the server's link-local address
        return encodeTeredoPacket({ ipv6: buildIcmpv6Packet(client, teredoLinkLocal(0x8000, { addr: PRIMARY, port: 3544 }), { type: 'echo-request', identifier: 1, sequence: 2, data: bytes(8) }) });
      case 2: // an RS as the client library builds it
        return rsDatagram({ cone: chance(0.5) });
      default:
        return bytes(r.u32() % 120);
    }
  };

  let now = 0;
  let fastCount = 0;
  let coreCount = 0;
  let answeredFast = 0;
  const arena = new Uint8Array(4096);
  for (let step = 0; step < steps; step++) {
    const data = mangle(chance(0.85) ? frame(rs()) : other());
    const from = chance(0.85) ? pick(sources.slice(0, 3)) : pick(sources);
    const to = chance(0.85) ? pick(locals.slice(0, 2)) : pick(locals);
    core.handleDatagram(now, from, to, data);
    perform(core, socketsA, outA);
    // The datagram sits in a larger arena at an offset, as the socket hands it over.
    const off = 1 + (r.u32() % 64);
    arena.fill(0xee);
    arena.set(data, off);
    const sent = fast.datagram(now, from.addr, from.port, to.addr, to.port, arena, off, data.length);
    if (sent >= 0) {
      fastCount++;
      if (sent > 0) answeredFast++;
    } else {
      coreCount++;
      dual.handleDatagram(now, from, to, arena.subarray(off, off + data.length));
    }
    perform(dual, socketsB, outB);
    if (chance(0.3)) fast.flush(); // the daemon flushes after each batch
    if (chance(0.2)) now += r.u32() % (chance(0.9) ? 50 : 5000);
    assert.deepEqual(outB, outA, `seed ${seed} step ${step}: outputs differ`);
  }
  fast.flush();
  assert.deepEqual(dual.stats(), core.stats(), `seed ${seed}: counters differ`);
  return { fast: fastCount, core: coreCount, answeredFast };
}

test('server fast path + core decide exactly as the core alone, over random valid and invalid datagrams', () => {
  let fast = 0;
  let core = 0;
  let answeredFast = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const s = runSeed(seed, 300);
    fast += s.fast;
    core += s.core;
    answeredFast += s.answeredFast;
  }
  // Only meaningful if both paths took real traffic: the fast path answers, the core keeps the rest.
  assert.ok(answeredFast > 12_000, `fast path answered ${answeredFast} RS`);
  assert.ok(fast > answeredFast, `no rate-limited RS on the fast path (${fast} taken, ${answeredFast} answered)`);
  assert.ok(core > 15_000, `core took ${core} datagrams`);
});

test('the fast path answers the bench RS (auth header, cone) from the other address with the core bytes', () => {
  const config: TeredoServerConfig = { primary: PRIMARY, secondary: SECONDARY, rateLimits: { rsPerSource: undefined, rsGlobal: undefined } };
  const core = new TeredoServer(config);
  const dual = new TeredoServer(config);
  const out: string[] = [];
  const p = new FakeSocket('primary', out, 0);
  const s = new FakeSocket('secondary', out, 0);
  const fast = new ServerFastPath(dual, p, s);
  const data = rsDatagram({ cone: true, auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), confirmation: 0 } });
  const from = { addr: v4('203.0.113.1'), port: 40000 };
  core.handleDatagram(0, from, { addr: PRIMARY, port: 3544 }, data);
  const a = core.poll();
  assert.ok(a && a.kind === 'udp-send');
  assert.deepEqual(a.local, { addr: SECONDARY, port: 3544 });
  const n = fast.datagram(0, from.addr, from.port, PRIMARY, 3544, data, 0, data.length);
  assert.equal(n, a.data.length);
  s.settle();
  assert.deepEqual(out, [`secondary ${SECONDARY} -> ${from.addr}:${from.port} ${hex(a.data)}`]);
  assert.equal(dual.events.get('router-solicitations'), 0, 'counted only at the flush');
  fast.flush();
  assert.deepEqual(dual.stats(), core.stats());
  fast.flush();
  assert.deepEqual(dual.stats(), core.stats(), 'a second flush adds nothing');
  assert.equal(dual.events.get('cone-probes'), 1);
  // The NAT-probe port and wrong endpoints are the core's.
  assert.equal(fast.datagram(0, from.addr, from.port, SECONDARY, PROBE_PORT, data, 0, data.length), -1);
  assert.equal(fast.datagram(0, from.addr, from.port, v4('198.51.100.3'), 3544, data, 0, data.length), -1);
});
