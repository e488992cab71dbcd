/**
 * Hostile input and floods against our running daemons (root only): the Teredo lab with cli-prc (behind a
 * port-restricted NAT) and cli-pub (public), plus an attacker namespace `atk` hanging off inet, whose raw sockets
 * spoof any IPv4 source (203.0.113.128/25 is routed to it, so answers to spoofed sources come back there and die).
 *
 *   1. the Miredo report §10.1 datagrams and more (truncated, empty, oversized, auth lengths beyond the datagram,
 *      origin indication misplaced or repeated, lying payload lengths, wrong versions, bubbles to private and
 *      link-local mapped addresses, TCP/UDP to native IPv6 through the server, non-global sources) at the server's
 *      three endpoints, the relay and cli-pub;
 *   2. an RS storm (spoofed sources, half with the cone bit) while a prober in cli-pub's namespace runs 200
 *      qualifications and cli-prc's daemon re-qualifies: ≥ 99 % succeed, no RA carries another client's nonce;
 *   3. distinct sources at the relay: 1 000 000 IPv6 packets from v6host, each from its own /64 to its own Teredo
 *      address, sent through a raw socket at 20 000 a second, while v6host keeps pinging cli-pub through the relay
 *      (≥ 99 % answered). TRANSIT6_FLOOD_SOURCES=N sends fewer for a quicker local run.
 * Afterwards: every daemon runs, its counters show the drops, its RSS stays under 256 MiB (the configured caps plus
 * Node's own), legitimate clients still work. The numbers measured are printed (t.diagnostic).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inNs } from '../../src/lab/exec.js';
import { installCleanupHandlers } from '../../src/lab/netns.js';
import { ping6, showJson, startTeredoLab, waitForClients, type RunningTeredoLab } from '../../src/lab/teredo-lab.js';
import { topologyClient } from '../../src/lab/teredo-topology.js';
import type { ClientStateJson } from '../../src/io/control.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { parseIpv4, parseIpv6 } from '../../src/wire/ip.js';
import { ALL_ROUTERS } from '../../src/wire/ipv6class.js';
import { buildBubble, emitIpv6Header } from '../../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket } from '../../src/wire/teredo.js';
import { skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

const HOSTILE = fileURLToPath(new URL('../../src/lab/hostile.js', import.meta.url));
const ATK_ADDR = '198.51.100.242';
const SPOOF_NET = '203.0.113.131';
/** Node's own ~60 MB, the configured caps (16 384 peers, 16 MiB of queues), and the garbage collector's slack. */
const RSS_MAX_KB = 256 * 1024;
const RELAY_SOURCES = Number(process.env.TRANSIT6_FLOOD_SOURCES ?? 1_000_000);

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const v6 = (t: string): Uint8Array => parseIpv6(t)!;
const v4 = (t: string): number => parseIpv4(t)!;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Adds the attacker namespace: 198.51.100.242/30 towards inet, 203.0.113.128/25 routed to it. */
async function addAttacker(l: RunningTeredoLab): Promise<string> {
  const { lab, topology: t } = l;
  const atk = await lab.addNamespace('atk');
  await lab.link(t.inet.ns, 'i-atk', atk, 'eth0');
  await lab.addAddress(t.inet.ns, 'i-atk', '198.51.100.241/30');
  await lab.addAddress(atk, 'eth0', `${ATK_ADDR}/30`);
  await lab.ip(t.inet.ns, ['link', 'set', 'i-atk', 'up']);
  await lab.ip(atk, ['link', 'set', 'eth0', 'up']);
  await lab.addRoute(atk, 'default', '198.51.100.241');
  await lab.addRoute(t.inet.ns, '203.0.113.128/25', ATK_ADDR);
  // Let spoofed sources through inet (the point is what the daemons do with them).
  await lab.sysctl(t.inet.ns, { 'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.i-atk.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0 });
  return atk;
}

async function hostile(ns: string, job: Record<string, unknown>, timeoutMs = 300_000): Promise<Record<string, unknown>> {
  const r = await inNs(ns, process.execPath, [HOSTILE, JSON.stringify(job)], { timeoutMs, allowFailure: true });
  if (r.exitCode !== 0) throw new Error(`hostile ${String(job.kind)} in ${ns}: exit ${String(r.exitCode)}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

interface Stats {
  events: Record<string, number>;
  drops: Record<string, number>;
  peers?: number;
}

/** The crafted datagrams: the Miredo report's §10.1 list and the issue's. */
function craftedDatagrams(): Uint8Array[] {
  const ll = v6('fe80::ffff:ffff:ffff');
  const rs = buildIcmpv6Packet(ll, ALL_ROUTERS, { type: 'router-solicitation', options: [] }, 255);
  const me = encodeTeredoAddress({ server: v4('198.51.100.1'), flags: 0, mappedAddr: v4(ATK_ADDR), mappedPort: 40000 });
  const origin = Uint8Array.from([0x00, 0x00, 0xa2, 0xc8, 0x34, 0xff, 0x8e, 0xfe]);
  const auth = Uint8Array.from([0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 0x00]);
  const cat = (...b: Uint8Array[]): Uint8Array => Uint8Array.from(b.flatMap((x) => [...x]));
  const lying = rs.slice();
  lying[4] = 0xff;
  lying[5] = 0xff;
  const v4nibble = rs.slice();
  v4nibble[0] = 0x40;
  const tcp = new Uint8Array(60);
  emitIpv6Header({ payloadLength: 20, nextHeader: 6, hopLimit: 64, src: me, dst: v6('2001:db8:1::10') }, tcp, 0);
  const udp = new Uint8Array(52);
  emitIpv6Header({ payloadLength: 12, nextHeader: 17, hopLimit: 64, src: me, dst: v6('2001:db8:1::10') }, udp, 0);
  const bigEcho = buildIcmpv6Packet(me, v6('2001:db8:1::10'), { type: 'echo-request', identifier: 1, sequence: 1, data: new Uint8Array(400) });
  const random = new Uint8Array(1400).map((_, i) => (i * 151 + 7) & 0xff);
  return [
    new Uint8Array(0),
    Uint8Array.of(0),
    new Uint8Array(7),
    Uint8Array.of(0x00, 0x01, 0xff, 0xff),
    cat(Uint8Array.of(0x00, 0x01, 0x20, 0x20), new Uint8Array(10)),
    origin,
    cat(origin, rs),
    cat(origin, auth, rs),
    cat(origin, origin, rs),
    cat(auth, auth, rs),
    lying,
    v4nibble,
    rs.subarray(0, 39),
    encodeTeredoPacket({ ipv6: buildBubble(me, encodeTeredoAddress({ server: v4('198.51.100.1'), flags: 0, mappedAddr: v4('10.1.2.3'), mappedPort: 53 })) }),
    encodeTeredoPacket({ ipv6: buildBubble(me, encodeTeredoAddress({ server: v4('198.51.100.1'), flags: 0, mappedAddr: v4('192.168.1.1'), mappedPort: 53 })) }),
    encodeTeredoPacket({ ipv6: buildBubble(me, v6('fe80::1')) }),
    encodeTeredoPacket({ ipv6: tcp }),
    encodeTeredoPacket({ ipv6: udp }),
    encodeTeredoPacket({ ipv6: bigEcho }),
    random,
  ];
}

test('hostile input, an RS storm and a million sources: the daemons keep running, drop and count, and serve legitimate clients', { timeout: 900_000 }, async (t) => {
  if (skipUnlessRoot(t)) return;
  const l = await startTeredoLab({ clients: ['cli-prc', 'cli-pub'], relayExtra: ['--max-peers', '16384'] });
  try {
    const atk = await addAttacker(l);
    const ready = await waitForClients(l, ['cli-prc', 'cli-pub']);
    const pub = ready['cli-pub']!.state;
    const { server, relay } = l.daemons;
    const rss0 = { server: rssKb(server.pid), relay: rssKb(relay!.pid), pub: rssKb(l.daemons.clients['cli-pub']!.pid) };

    // ---- 1. crafted datagrams at every endpoint, from a real and from spoofed sources --------------------------
    // 65 507 bytes of zeros: the largest UDP datagram, IPv4-fragmented (report §10.1).
    const payloads = [...craftedDatagrams().map(hex), 'zeros:65507'];
    const pubEp = pub.localMapping!;
    const targets = ['198.51.100.1:3544', '198.51.100.2:3544', '198.51.100.2:3546', '198.51.100.17:3545', pubEp];
    for (const to of targets) {
      const r = await hostile(atk, { kind: 'udp', to, payloads, repeat: 3 });
      assert.equal(r.sent, payloads.length * 3, `all sent to ${to}: ${JSON.stringify(r)}`);
      // The same (those that fit a raw packet) from spoofed global and non-global sources.
      for (const p of payloads.filter((x) => x.length < 2800 && !x.startsWith('zeros'))) {
        await hostile(atk, { kind: 'spoof4', to, count: 20, srcNet: SPOOF_NET, srcCount: 100, payload: p || '00' });
        await hostile(atk, { kind: 'spoof4', to, count: 5, srcNet: '10.9.9.1', srcCount: 100, payload: p || '00' });
        // From the mapping the packets' Teredo source names, so that the source checks pass and the rules behind
        // them are reached.
        await hostile(atk, { kind: 'spoof4', to, count: 2, srcNet: ATK_ADDR, srcCount: 1, srcPort: 40000, payload: p || '00' });
      }
    }
    // A single-source RS storm (from the attacker's own address) and a cone-flag flood from non-global sources.
    await hostile(atk, { kind: 'spoof4', to: '198.51.100.1:3544', count: 20_000, srcNet: ATK_ADDR, srcCount: 1, payload: 'rs', pps: 5000 });
    await hostile(atk, { kind: 'spoof4', to: '198.51.100.1:3544', count: 5_000, srcNet: '10.0.0.1', srcCount: 200, payload: 'rs' });
    await sleep(1000);
    for (const [name, p] of Object.entries(l.daemons).filter(([k]) => k !== 'clients')) assert.ok((p as { running: boolean }).running, `${name} still runs`);
    assert.ok(l.daemons.clients['cli-pub']!.running && l.daemons.clients['cli-prc']!.running, 'clients still run');
    const s1 = await showJson<Stats>(l.topology.server.ns, 'stats', 'server');
    const r1 = await showJson<Stats>(l.topology.relay.ns, 'stats', 'relay');
    const c1 = await showJson<Stats>(topologyClient(l.topology, 'cli-pub').ns, 'stats', 'client');
    t.diagnostic(`server drops after the crafted datagrams: ${JSON.stringify(s1.drops)}`);
    t.diagnostic(`relay drops: ${JSON.stringify(r1.drops)}`);
    t.diagnostic(`cli-pub drops: ${JSON.stringify(c1.drops)}`);
    for (const reason of ['malformed-truncated', 'unexpected-origin-indication', 'non-global-source', 'non-global-mapped-destination', 'non-global-destination', 'not-bubble-or-icmpv6', 'native-too-big', 'rate-limited-rs-source']) {
      assert.ok((s1.drops[reason] ?? 0) > 0, `server counted ${reason}`);
    }
    assert.ok(Object.entries(s1.drops).some(([k, v]) => k.startsWith('malformed-ipv6') && v > 0), 'server counted malformed IPv6');
    assert.ok(Object.entries(r1.drops).some(([k, v]) => k.startsWith('malformed') && v > 0) && (r1.drops['non-teredo-source'] ?? 0) + (r1.drops['unknown-peer'] ?? 0) > 0, 'relay counted its drops');
    assert.ok(Object.values(c1.drops).reduce((a, b) => a + b, 0) > 0, 'cli-pub counted its drops');
    // The single-source storm: at most the burst and the rate for its duration got answers.
    // 4 s at 5000/s: 20 + 10 × 4 may be answered (a few datagrams may be lost in the socket buffer, too).
    assert.ok((s1.drops['rate-limited-rs-source'] ?? 0) >= 18_000, `rate-limited ${s1.drops['rate-limited-rs-source']}`);

    // ---- 2. a spoofed RS flood while legitimate clients qualify ----------------------------------------------
    const pubNs = topologyClient(l.topology, 'cli-pub').ns;
    const flood = hostile(atk, { kind: 'spoof4', to: '198.51.100.1:3544', count: 400_000, srcNet: SPOOF_NET, srcCount: 120, payload: 'rs', pps: 20_000 });
    await sleep(500);
    // cli-prc's daemon starts over during the flood and must qualify again.
    const prc = l.daemons.clients['cli-prc']!;
    await prc.stop(5000);
    const { startLabClient } = await import('../../src/lab/teredo-lab.js');
    startLabClient(l, 'cli-prc');
    const probe = await hostile(pubNs, { kind: 'qualify', to: '198.51.100.1:3544', count: 200, tries: 3, timeoutMs: 1000, noAuth: 20 });
    const requalified = await waitForClients(l, ['cli-prc'], { timeoutMs: 60_000 });
    const floodResult = await flood;
    t.diagnostic(`RS flood: ${JSON.stringify(floodResult)}; prober: ${JSON.stringify(probe)}`);
    assert.ok((floodResult.sent as number) >= 390_000, 'the flood was sent');
    assert.ok((probe.succeeded as number) >= 198, `≥ 99 % of 200 qualifications succeeded during the flood: ${String(probe.succeeded)}`);
    assert.equal(probe.foreignNonces, 0, 'no RA carried a nonce the prober did not send');
    assert.equal(probe.raWithNonceForNoAuth, 0, 'RAs answering RSs without an auth header carry no nonce (report §10.2)');
    assert.ok((probe.raNoAuth as number) >= 1, 'RSs without an auth header were answered without one');
    assert.equal(requalified['cli-prc']!.state.state, 'qualified');
    const s2 = await showJson<Stats>(l.topology.server.ns, 'stats', 'server');
    t.diagnostic(`server after the RS flood: events ${JSON.stringify(s2.events)} drops ${JSON.stringify(s2.drops)}`);
    assert.ok((s2.drops['rate-limited-rs-source'] ?? 0) > (s1.drops['rate-limited-rs-source'] ?? 0), 'the flood hit the per-source limits');

    // ---- 3. a million distinct sources at the relay, while v6host pings cli-pub through it --------------------
    const pubAddr = (await showJson<ClientStateJson>(pubNs, 'state', 'client')).teredoAddress!;
    const warm = await ping6(l.lab, l.topology.v6host.ns, pubAddr, { count: 3 });
    assert.ok(warm.received >= 1, 'v6host reaches cli-pub through the relay');
    // Pings for as long as the flood lasts (20 000 packets a second).
    const pings = Math.max(20, Math.ceil(RELAY_SOURCES / 20_000 / 0.2));
    const ping = ping6(l.lab, l.topology.v6host.ns, pubAddr, { count: pings, intervalS: 0.2, waitS: 2 });
    const flood6 = await hostile(l.topology.v6host.ns, { kind: 'spoof6', count: RELAY_SOURCES, srcPrefix: '2001:db8', dstServer: '198.51.100.1', mappedNet: '203.0.113.128', pps: 20_000 }, 600_000);
    const pinged = await ping;
    await sleep(2000);
    const r3 = await showJson<Stats>(l.topology.relay.ns, 'stats', 'relay');
    t.diagnostic(`relay flood: ${JSON.stringify(flood6)}; relay events ${JSON.stringify(r3.events)} drops ${JSON.stringify(r3.drops)} peers ${String(r3.peers)}`);
    t.diagnostic(`v6host -> cli-pub during the relay flood: ${pinged.received}/${pinged.sent}`);
    assert.equal(flood6.sent, RELAY_SOURCES, 'every packet of the relay flood was sent');
    assert.ok((r3.peers ?? Infinity) <= 16_384, `peer table within its cap: ${String(r3.peers)}`);
    assert.ok((r3.drops['rate-limited-new-peer-global'] ?? 0) > 0, 'the global new-peer limit held');
    // On a quiet 2-core machine 249/250 get through; with the global new-peer limit off (or at 5000/s) the flood
    // saturates both cores and only ~30 % do. 90 % separates the two without depending on a quiet machine
    // (238/250 were seen while other builds shared the cores).
    assert.ok(pinged.received >= Math.ceil(pinged.sent * 0.9), `a trusted peer kept working during the flood: ${pinged.received}/${pinged.sent}`);

    // ---- afterwards -------------------------------------------------------------------------------------------
    assert.ok(server.running && relay!.running && l.daemons.clients['cli-pub']!.running, 'all daemons still run');
    const rss1 = { server: rssKb(server.pid), relay: rssKb(relay!.pid), pub: rssKb(l.daemons.clients['cli-pub']!.pid) };
    t.diagnostic(`RSS before/after (kB): ${JSON.stringify(rss0)} -> ${JSON.stringify(rss1)}`);
    for (const k of ['server', 'relay', 'pub'] as const) assert.ok(rss1[k] < RSS_MAX_KB, `${k} RSS ${rss1[k]} kB stays under ${RSS_MAX_KB} kB`);
    assert.ok((r3.drops['rate-limited-icmp-error'] ?? 0) > 0 || (r3.events['unreachable-errors'] ?? 0) <= 200 + 100 * 60, 'ICMPv6 errors to spoofed sources were limited');
    const again = await ping6(l.lab, topologyClient(l.topology, 'cli-prc').ns, '2001:db8:1::10', { count: 3 });
    assert.ok(again.received >= 1, 'cli-prc reaches the native host afterwards');
  } finally {
    await l.lab.destroy();
  }
});
