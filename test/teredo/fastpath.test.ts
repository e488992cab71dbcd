/**
 * Differential tests of the fast paths (src/teredo/fastpath.ts). Relay: the same random traffic — native packets to
 * a pool of Teredo clients, datagrams from those clients (from their mappings or elsewhere; data, bubbles to the
 * relay's hash, trailers, auth and origin headers, truncated and padded packets), time passing with timeouts — goes
 * to a relay core alone and to fast path + core. Every output, in order, and the final stats, peer table and next
 * deadline must be the same; the fast path must have taken a good share of the packets in both directions.
 * Client: the same for a qualified client (qualified by a real server core) exchanging with Teredo peers (trusted
 * by packets from their mappings) and native hosts behind relays (trusted by answers to its connectivity tests),
 * with tunnel packets from the right and wrong sources, to multicast and link-local, stray datagrams, bubbles,
 * datagrams from the server, and time passing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { ClientFastPath, RelayFastPath, type FastSink } from '../../src/teredo/fastpath.js';
import { TeredoClient } from '../../src/teredo/client.js';
import { TeredoServer } from '../../src/teredo/server.js';
import { TEREDO_DISCOVERY_ADDRESS } from '../../src/teredo/constants.js';
import { ALL_NODES } from '../../src/wire/ipv6class.js';
import { buildIcmpv6Packet, parseIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { parseTeredoPacket } from '../../src/wire/teredo.js';
import { peerInfoList } from '../../src/teredo/peers.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import type { Ipv4Port } from '../../src/wire/ip.js';
import { buildBubble, emitIpv6Header } from '../../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket } from '../../src/wire/teredo.js';
import { withTrailers } from '../../src/wire/trailers.js';

const RELAY: Ipv4Port = { addr: 0xc6336411, port: 3545 }; // 198.51.100.17
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function show(a: Action): string {
  switch (a.kind) {
    case 'udp-send':
      return `udp ${a.local ? `${a.local.addr}:${a.local.port}` : '-'} -> ${a.remote.addr}:${a.remote.port} ${hex(a.data)}`;
    case 'ipv6-forward':
    case 'ipv6-deliver':
      return `${a.kind} ${hex(a.packet)}`;
    default:
      return JSON.stringify(a);
  }
}

interface Client {
  addr: Uint8Array;
  mapped: Ipv4Port;
}

function runSeed(seed: number, steps: number): { fastUdp: number; fastIpv6: number; coreInputs: number } {
  const r = new SeededRng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[r.u32() % xs.length]!;
  const chance = (p: number): boolean => r.u32() / 2 ** 32 < p;
  const config = { directBubbles: chance(0.3), limits: { maxPeers: 4 + (r.u32() % 12) } };
  const core = new TeredoRelay(config, new SeededRng(seed + 1));
  const dual = new TeredoRelay(config, new SeededRng(seed + 1));
  const fast = new RelayFastPath(dual);

  const servers = [0xc6336401, 0xcb007101, 0x0a000001]; // two global, one private
  const clients: Client[] = [];
  for (let i = 0; i < 12; i++) {
    const mapped = { addr: chance(0.85) ? 0xcb007100 + (r.u32() % 200) : 0xc0a80000 + (r.u32() % 200), port: 1024 + (r.u32() % 60000) };
    clients.push({ addr: encodeTeredoAddress({ server: pick(servers), flags: 0, mappedAddr: mapped.addr, mappedPort: mapped.port }), mapped });
  }
  const natives = [
    Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10),
    Uint8Array.of(0x2a, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20),
    Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), // not global
    Uint8Array.of(0xfc, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), // not global
  ];

  const packet = (src: Uint8Array, dst: Uint8Array): Uint8Array => {
    if (chance(0.1)) return buildBubble(src, dst);
    const plen = r.u32() % 80;
    const p = new Uint8Array(40 + plen);
    emitIpv6Header({ src, dst, nextHeader: chance(0.8) ? 17 : pick([6, 58, 59]), payloadLength: plen, hopLimit: 64 }, p, 0);
    for (let i = 40; i < p.length; i++) p[i] = r.u32() & 0xff;
    return p;
  };
  const mangle = (p: Uint8Array): Uint8Array => {
    if (chance(0.03)) return p.subarray(0, r.u32() % p.length); // truncated
    if (chance(0.03)) {
      const q = new Uint8Array(p.length + 1 + (r.u32() % 8)); // padded
      q.set(p);
      return q;
    }
    if (chance(0.02)) {
      const q = p.slice();
      q[0] = 0x45; // not IPv6
      return q;
    }
    return p;
  };

  let now = 0;
  let fastUdp = 0;
  let fastIpv6 = 0;
  let coreInputs = 0;
  const outA: string[] = [];
  const outB: string[] = [];
  const drainTo = (relay: TeredoRelay, out: string[]): void => {
    for (let a = relay.poll(); a; a = relay.poll()) out.push(show(a));
  };
  const sink: FastSink = {
    udp: (addr, port, buf, offset, length) => outB.push(`udp - -> ${addr}:${port} ${hex(buf.subarray(offset, offset + length))}`),
    forward: (buf, offset, length) => outB.push(`ipv6-forward ${hex(buf.subarray(offset, offset + length))}`),
    deliver: (buf, offset, length) => outB.push(`ipv6-deliver ${hex(buf.subarray(offset, offset + length))}`),
  };
  // Inputs reach the fast path inside a larger arena, at an offset, as the driver hands them over.
  const arena = new Uint8Array(4096);
  const place = (data: Uint8Array): number => {
    const off = 1 + (r.u32() % 64);
    arena.fill(0xee);
    arena.set(data, off);
    return off;
  };

  for (let step = 0; step < steps; step++) {
    const kind = r.u32() % 10;
    if (kind < 4) {
      // Native side to a client (sometimes to something else).
      const dst = chance(0.9) ? pick(clients).addr : pick(natives);
      const src = chance(0.85) ? pick(natives.slice(0, 2)) : chance(0.5) ? pick(natives) : pick(clients).addr;
      const p = mangle(packet(src, dst));
      core.handleIpv6(now, p);
      drainTo(core, outA);
      const off = place(p);
      if (fast.ipv6(now, arena, off, p.length, sink)) fastIpv6++;
      else {
        coreInputs++;
        dual.handleIpv6(now, arena.subarray(off, off + p.length));
        drainTo(dual, outB);
      }
    } else if (kind < 9) {
      // From a client: mostly from its mapping, towards native IPv6 or the relay's bubble address.
      const c = pick(clients);
      const from = chance(0.8) ? c.mapped : { addr: c.mapped.addr, port: (c.mapped.port + 1) & 0xffff };
      let ipv6: Uint8Array;
      if (chance(0.2)) {
        const bubble = buildBubble(c.addr, chance(0.7) ? core.bubbleSourceFor(c.addr) : pick(natives));
        ipv6 = chance(0.3) ? withTrailers(bubble, { nonce: Uint8Array.of(1, 2, 3, 4) }) : bubble;
      } else ipv6 = packet(chance(0.95) ? c.addr : pick(natives), chance(0.85) ? pick(natives) : pick(clients).addr);
      let data = chance(0.05) ? encodeTeredoPacket({ origin: { addr: 1, port: 2 }, ipv6 }) : ipv6;
      if (chance(0.03)) data = withTrailers(data, { nonce: Uint8Array.of(9, 9, 9, 9) });
      data = mangle(data);
      core.handleDatagram(now, from, RELAY, data);
      drainTo(core, outA);
      const off = place(data);
      if (fast.datagram(now, from.addr, from.port, RELAY.addr, arena, off, data.length, sink)) fastUdp++;
      else {
        coreInputs++;
        dual.handleDatagram(now, from, RELAY, arena.subarray(off, off + data.length));
        drainTo(dual, outB);
      }
    } else {
      now += chance(0.5) ? r.u32() % 3000 : r.u32() % 40_000;
      core.handleTimeout(now);
      dual.handleTimeout(now);
      drainTo(core, outA);
      drainTo(dual, outB);
    }
    if (step % 5 === 0) now += r.u32() % 200;
    assert.deepEqual(outB, outA, `seed ${seed} step ${step}: outputs differ`);
  }
  assert.deepEqual(dual.stats(), core.stats(), `seed ${seed}: stats differ`);
  assert.deepEqual(peerInfoList(dual.peers), peerInfoList(core.peers), `seed ${seed}: peer tables differ`);
  assert.equal(dual.pollTimeout(), core.pollTimeout(), `seed ${seed}: next deadline differs`);
  return { fastUdp, fastIpv6, coreInputs };
}

test('relay fast path + core decide exactly as the core alone, over random traffic', () => {
  let fastUdp = 0;
  let fastIpv6 = 0;
  let coreInputs = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const s = runSeed(seed, 400);
    fastUdp += s.fastUdp;
    fastIpv6 += s.fastIpv6;
    coreInputs += s.coreInputs;
  }
  // The comparison only means something if the fast path took real traffic both ways.
  assert.ok(fastUdp > 3000, `fast path took ${fastUdp} datagrams`);
  assert.ok(fastIpv6 > 10000, `fast path took ${fastIpv6} native packets`);
  assert.ok(coreInputs > 50000, `core took ${coreInputs} inputs`);
});

test('the fast path declines everything in host mode', () => {
  const host = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);
  const relay = new TeredoRelay({ mode: 'host', hostAddresses: [host] }, new SeededRng(1));
  const fast = new RelayFastPath(relay);
  const client = encodeTeredoAddress({ server: 0xc6336401, flags: 0, mappedAddr: 0xcb007101, mappedPort: 4000 });
  const p = new Uint8Array(48);
  emitIpv6Header({ src: host, dst: client, nextHeader: 17, payloadLength: 8, hopLimit: 64 }, p, 0);
  const sink: FastSink = { udp: () => assert.fail('udp'), forward: () => assert.fail('forward'), deliver: () => assert.fail('deliver') };
  assert.equal(fast.ipv6(0, p, 0, p.length, sink), false);
  assert.equal(fast.datagram(0, 0xcb007101, 4000, RELAY.addr, p, 0, p.length, sink), false);
});

// ---------------------------------------------------------------------------------------------------------------
// Client

const C_SERVER: Ipv4Port = { addr: 0xc6336401, port: 3544 }; // 198.51.100.1
const C_LOCAL: Ipv4Port = { addr: 0xc0a8010a, port: 50000 }; // 192.168.1.10
const C_MAPPED: Ipv4Port = { addr: 0xcb007101, port: 40000 }; // 203.0.113.1

function qualified(seed: number): TeredoClient {
  const client = new TeredoClient({ server: C_SERVER.addr, local: C_LOCAL, detectNat: false, localDiscovery: true, limits: { maxPeers: 3 + (seed % 7) } }, new SeededRng(seed));
  const server = new TeredoServer({ primary: C_SERVER.addr, secondary: 0xc6336402 });
  client.handleTimeout(0);
  let rs: Action | undefined;
  for (let a = client.poll(); a; a = client.poll()) if (a.kind === 'udp-send') rs = a;
  assert.ok(rs && rs.kind === 'udp-send');
  server.handleDatagram(0, C_MAPPED, C_SERVER, rs.data);
  const ra = server.poll();
  assert.ok(ra && ra.kind === 'udp-send');
  client.handleDatagram(1, C_SERVER, C_LOCAL, ra.data);
  assert.equal(client.currentState, 'qualified');
  while (client.poll());
  return client;
}

function runClientSeed(seed: number, steps: number): { fastUdp: number; fastIpv6: number; coreInputs: number } {
  const r = new SeededRng(seed * 7 + 3);
  const pick = <T>(xs: readonly T[]): T => xs[r.u32() % xs.length]!;
  const chance = (p: number): boolean => r.u32() / 2 ** 32 < p;
  const core = qualified(seed);
  const dual = qualified(seed);
  const fast = new ClientFastPath(dual);
  const me = core.fastAddress!;
  assert.deepEqual(dual.fastAddress, me);

  const teredoPeers: Client[] = [];
  for (let i = 0; i < 6; i++) {
    const mapped = { addr: 0xcb007110 + (r.u32() % 50), port: 1024 + (r.u32() % 60000) };
    teredoPeers.push({ addr: encodeTeredoAddress({ server: chance(0.8) ? C_SERVER.addr : 0xcb007101, flags: 0, mappedAddr: mapped.addr, mappedPort: mapped.port }), mapped });
  }
  // Two peers behind our own NAT (same mapped address), found by local discovery bubbles from the LAN.
  const lan: Ipv4Port[] = [{ addr: 0xc0a80114, port: 50001 }, { addr: 0xc0a80115, port: 50002 }];
  for (let i = 0; i < 2; i++) {
    const mapped = { addr: C_MAPPED.addr, port: 41000 + i };
    teredoPeers.push({ addr: encodeTeredoAddress({ server: C_SERVER.addr, flags: 0, mappedAddr: mapped.addr, mappedPort: mapped.port }), mapped });
  }
  const natives = [
    Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10),
    Uint8Array.of(0x2a, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20),
    Uint8Array.of(0x2a, 0x00, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x30),
  ];
  const odd = [
    Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
    Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
  ];
  const relays: Ipv4Port[] = [{ addr: 0xc6336411, port: 3545 }, { addr: 0xc6336412, port: 3544 }];
  const packet = (src: Uint8Array, dst: Uint8Array): Uint8Array => {
    const plen = r.u32() % 80;
    const p = new Uint8Array(40 + plen);
    emitIpv6Header({ src, dst, nextHeader: chance(0.8) ? 17 : pick([6, 58, 59]), payloadLength: plen, hopLimit: 64 }, p, 0);
    for (let i = 40; i < p.length; i++) p[i] = r.u32() & 0xff;
    return p;
  };
  const mangle = (p: Uint8Array): Uint8Array => {
    if (chance(0.03)) return p.subarray(0, r.u32() % p.length);
    if (chance(0.03)) {
      const q = new Uint8Array(p.length + 1 + (r.u32() % 8));
      q.set(p);
      return q;
    }
    return p;
  };

  let now = 10;
  let fastUdp = 0;
  let fastIpv6 = 0;
  let coreInputs = 0;
  const outA: string[] = [];
  const outB: string[] = [];
  // Connectivity tests the client sent (echo requests through its server), to answer from a relay.
  const echoes: { src: Uint8Array; dst: Uint8Array; id: number; seq: number; data: Uint8Array }[] = [];
  const drainTo = (c: TeredoClient, out: string[], record: boolean): void => {
    for (let a = c.poll(); a; a = c.poll()) {
      out.push(show(a));
      if (record && a.kind === 'udp-send') {
        const t = parseTeredoPacket(a.data);
        if (!t.ok) continue;
        const m = parseIcmpv6Packet(t.value.ipv6);
        if (m.ok && m.value.message.type === 'echo-request') {
          const e = m.value.message;
          echoes.push({ src: m.value.src.slice(), dst: m.value.dst.slice(), id: e.identifier, seq: e.sequence, data: e.data.slice() });
        }
      }
    }
  };
  const sink: FastSink = {
    udp: (addr, port, buf, offset, length) => outB.push(`udp - -> ${addr}:${port} ${hex(buf.subarray(offset, offset + length))}`),
    forward: (buf, offset, length) => outB.push(`ipv6-forward ${hex(buf.subarray(offset, offset + length))}`),
    deliver: (buf, offset, length) => outB.push(`ipv6-deliver ${hex(buf.subarray(offset, offset + length))}`),
  };
  const arena = new Uint8Array(4096);
  const place = (data: Uint8Array): number => {
    const off = 1 + (r.u32() % 64);
    arena.fill(0xee);
    arena.set(data, off);
    return off;
  };
  const datagram = (from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void => {
    core.handleDatagram(now, from, to, data);
    drainTo(core, outA, true);
    const off = place(data);
    if (to.port === C_LOCAL.port && to.addr === C_LOCAL.addr && fast.datagram(now, from.addr, from.port, to.addr, arena, off, data.length, sink)) fastUdp++;
    else {
      coreInputs++;
      dual.handleDatagram(now, from, to, arena.subarray(off, off + data.length));
      drainTo(dual, outB, false);
    }
  };

  for (let step = 0; step < steps; step++) {
    const kind = r.u32() % 20;
    if (kind < 8) {
      // From the tunnel: mostly from our address, to peers.
      const src = chance(0.92) ? me : pick(natives);
      const dst = chance(0.9) ? (chance(0.5) ? pick(teredoPeers).addr : pick(natives)) : pick(odd);
      const p = mangle(packet(src, dst));
      core.handleIpv6(now, p);
      drainTo(core, outA, true);
      const off = place(p);
      if (fast.ipv6(now, arena, off, p.length, sink)) fastIpv6++;
      else {
        coreInputs++;
        dual.handleIpv6(now, arena.subarray(off, off + p.length));
        drainTo(dual, outB, false);
      }
    } else if (kind < 13) {
      // From a Teredo peer, mostly from its mapping (or, behind our NAT, its LAN endpoint), to us.
      const i = r.u32() % teredoPeers.length;
      const peer = teredoPeers[i]!;
      const from = i >= teredoPeers.length - 2 && chance(0.5) ? lan[i - (teredoPeers.length - 2)]! : chance(0.85) ? peer.mapped : pick(relays);
      const ipv6 = chance(0.15) ? buildBubble(peer.addr, me) : packet(peer.addr, chance(0.95) ? me : pick(natives));
      const data = chance(0.05) ? withTrailers(ipv6, { nonce: Uint8Array.of(1, 2, 3, 4) }) : mangle(ipv6);
      datagram(from, chance(0.97) ? C_LOCAL : { addr: C_LOCAL.addr, port: 3546 }, data);
    } else if (kind === 13) {
      // A local discovery bubble from a peer behind our NAT (RFC 4380 §5.2.8).
      const k = r.u32() % 2;
      datagram(lan[k]!, { addr: TEREDO_DISCOVERY_ADDRESS, port: 3544 }, buildBubble(teredoPeers[teredoPeers.length - 2 + k]!.addr, ALL_NODES));
    } else if (kind < 17) {
      // From a native host through a relay (some relays, some hosts).
      const from = chance(0.9) ? pick(relays) : C_SERVER;
      datagram(from, C_LOCAL, mangle(packet(pick(natives), chance(0.95) ? me : pick(natives))));
    } else if (kind < 19) {
      // The answer to a connectivity test, from a relay.
      const e = echoes.length > 0 ? echoes.splice(r.u32() % echoes.length, 1)[0] : undefined;
      if (e) {
        const reply = buildIcmpv6Packet(e.dst, e.src, { type: 'echo-reply', identifier: e.id, sequence: e.seq, data: e.data }, 64);
        datagram(chance(0.2) ? C_SERVER : pick(relays), C_LOCAL, reply); // a server that is also a relay, sometimes
      }
    } else {
      now += chance(0.6) ? r.u32() % 3000 : r.u32() % 40_000;
      core.handleTimeout(now);
      dual.handleTimeout(now);
      drainTo(core, outA, true);
      drainTo(dual, outB, false);
    }
    if (step % 5 === 0) now += r.u32() % 200;
    assert.deepEqual(outB, outA, `client seed ${seed} step ${step}: outputs differ`);
    assert.deepEqual(dual.status(), core.status(), `client seed ${seed} step ${step}: status differs`);
  }
  assert.deepEqual([dual.events.snapshot(), dual.drops.snapshot()], [core.events.snapshot(), core.drops.snapshot()], `client seed ${seed}: counters differ`);
  assert.deepEqual(dual.peerTable(), core.peerTable(), `client seed ${seed}: peer tables differ`);
  assert.deepEqual(dual.status(), core.status(), `client seed ${seed}: status differs`);
  assert.equal(dual.pollTimeout(), core.pollTimeout(), `client seed ${seed}: next deadline differs`);
  return { fastUdp, fastIpv6, coreInputs };
}

test('client fast path + core decide exactly as the core alone, over random traffic', () => {
  let fastUdp = 0;
  let fastIpv6 = 0;
  let coreInputs = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const s = runClientSeed(seed, 500);
    fastUdp += s.fastUdp;
    fastIpv6 += s.fastIpv6;
    coreInputs += s.coreInputs;
  }
  assert.ok(fastUdp > 3000, `fast path took ${fastUdp} datagrams`);
  assert.ok(fastIpv6 > 3000, `fast path took ${fastIpv6} tunnel packets`);
  assert.ok(coreInputs > 20000, `core took ${coreInputs} inputs`);
});
