/**
 * Floods against the cores in virtual time, at a scale the lab cannot reach on CI (SECURITY.md): a million distinct
 * sources at the relay from both sides, and spoofed RS floods at the server, with memory and legitimate service
 * checked. The lab (test/lab/hostile.test.ts) sends real packets through the kernel at the running daemons.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { TeredoServer } from '../../src/teredo/server.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { buildBubble } from '../../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket, parseTeredoPacket } from '../../src/wire/teredo.js';
import { authWithNonce, rsDatagram, v4, v6 } from './fixtures.js';

const MILLION = 1_000_000;
const PRIMARY = v4('198.51.100.1');
const SECONDARY = v4('198.51.100.2');
const P = { addr: PRIMARY, port: 3544 };
const NATIVE = v6('2001:db8:1::10');

function drainCount(e: { poll(): Action | undefined }, sink?: (a: Action) => void): number {
  let n = 0;
  for (let a = e.poll(); a; a = e.poll()) {
    n++;
    sink?.(a);
  }
  return n;
}

const heapMb = (): number => process.memoryUsage().heapUsed / 1048576;

test('relay: a million native sources, each its own /64 towards its own Teredo address — the caps and limits hold, a trusted peer keeps working', (t) => {
  // Small enough that the flood fills it (about 22 000 new peers get through the global limit in 20 s).
  const maxPeers = 4096;
  const relay = new TeredoRelay({ limits: { maxPeers } }, new SeededRng(9));
  // A trusted peer first: the native host talks to a client that answered the relay's bubble.
  const client = { addr: v4('203.0.113.1'), port: 20001 };
  const clientT = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: client.addr, mappedPort: client.port });
  const echo = (src: Uint8Array, dst: Uint8Array, seq = 1): Uint8Array => buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: 1, sequence: seq, data: new Uint8Array(8) });
  relay.handleIpv6(0, echo(NATIVE, clientT));
  relay.handleDatagram(1, client, { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: buildBubble(clientT, relay.bubbleSourceFor(clientT)) }));
  drainCount(relay);
  assert.ok(relay.peers.get(clientT)?.trusted);
  const heap0 = heapMb();
  const src = v6('2001:db8::1');
  const dst = new Uint8Array(16);
  let toClient = 0;
  let maxPeersSeen = 0;
  let maxQueued = 0;
  // 50 000 packets a second for 20 s of virtual time; the trusted peer gets one every 10 ms among them.
  for (let i = 0; i < MILLION; i++) {
    const now = 10 + i / 50;
    src[4] = (i >>> 24) & 0xff;
    src[5] = (i >>> 16) & 0xff;
    src[6] = (i >>> 8) & 0xff;
    src[7] = i & 0xff;
    dst.set(encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: (v4('203.0.113.128') + (i % 128)) >>> 0, mappedPort: 1024 + (i % 60000) }));
    relay.handleIpv6(now, echo(src, dst));
    if (i % 500 === 0) {
      relay.handleIpv6(now, echo(NATIVE, clientT, i & 0xffff));
      // The client keeps talking back, as a live peer does.
      relay.handleDatagram(now, client, { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: echo(clientT, NATIVE) }));
    }
    if (i % 1000 === 0) relay.handleTimeout(now);
    drainCount(relay, (a) => {
      if (a.kind === 'udp-send' && a.remote.addr === client.addr && a.remote.port === client.port) toClient++;
    });
    if (i % 10_000 === 0) {
      maxPeersSeen = Math.max(maxPeersSeen, relay.peers.size);
      maxQueued = Math.max(maxQueued, relay.peers.queuedBytes);
    }
  }
  const heap1 = heapMb();
  const d = relay.drops.snapshot();
  t.diagnostic(`peers at most ${maxPeersSeen}, queued at most ${maxQueued} B, heap ${heap0.toFixed(1)} -> ${heap1.toFixed(1)} MB, drops ${JSON.stringify(d)}`);
  assert.ok(maxPeersSeen <= maxPeers && relay.peers.size <= maxPeers, `peers ${maxPeersSeen}`);
  assert.ok(relay.peers.evictions > 0, 'the table was full and evicted untrusted entries');
  assert.ok(maxQueued <= 16 * 1024 * 1024);
  // 20 s at the default global limit (1000/s, burst 2000): about 22 000 new peers, the rest refused.
  assert.ok((d['rate-limited-new-peer-global'] ?? 0) >= 850_000, JSON.stringify(d));
  assert.equal(toClient, 2000, 'every packet for the trusted peer went out');
  assert.ok(relay.peers.get(clientT)?.trusted, 'the trusted peer was not evicted');
  // The table holds 4096 peers (a few hundred bytes each) and the limiter 320 KiB; a million sources add nothing more.
  assert.ok(heap1 - heap0 < 128, `heap grew by ${(heap1 - heap0).toFixed(1)} MB`);
});

test('relay: a million distinct Teredo-side sources create no state', () => {
  const relay = new TeredoRelay({}, new SeededRng(3));
  for (let i = 0; i < MILLION; i++) {
    const from = { addr: (v4('203.0.113.0') + (i & 0xff)) >>> 0, port: 1024 + (i >>> 8) };
    const srcT = encodeTeredoAddress({ server: PRIMARY, flags: 0, mappedAddr: from.addr, mappedPort: from.port });
    relay.handleDatagram(i / 100, from, { addr: v4('198.51.100.17'), port: 3545 }, encodeTeredoPacket({ ipv6: buildBubble(srcT, NATIVE) }));
    assert.equal(relay.poll(), undefined);
  }
  assert.equal(relay.peers.size, 0);
  assert.equal(relay.drops.get('unknown-peer'), MILLION);
});

test('server: a spoofed RS flood from 300 000 sources under the global limit — every legitimate qualification succeeds; over it, the RAs sent stay at the limit', () => {
  for (const [ratePerS, expectLegit] of [
    [15_000, 1],
    [100_000, 0],
  ] as const) {
    const s = new TeredoServer({ primary: PRIMARY, secondary: SECONDARY });
    const legit = { addr: v4('203.0.113.1'), port: 20001 };
    let ras = 0;
    let legitOk = 0;
    let legitTried = 0;
    const n = 300_000;
    for (let i = 0; i < n; i++) {
      const now = (i / ratePerS) * 1000;
      const from = { addr: (v4('198.18.0.0') + i) >>> 0, port: 1024 + (i % 60000) };
      s.handleDatagram(now, from, P, rsDatagram({ cone: i % 2 === 0 }));
      ras += drainCount(s);
      // A legitimate client qualifies every 100 ms: an RS with its nonce, up to 3 tries (RFC 4380 §5.2.1).
      if (i % Math.round(ratePerS / 10) === 0) {
        legitTried++;
        for (let tries = 0; tries < 3; tries++) {
          const nonce = [i & 0xff, (i >> 8) & 0xff, (i >> 16) & 0xff, 1, 2, 3, 4, tries];
          s.handleDatagram(now, legit, P, rsDatagram({ auth: authWithNonce(nonce) }));
          let answered = false;
          drainCount(s, (a) => {
            if (a.kind !== 'udp-send') return;
            const t = parseTeredoPacket(a.data);
            answered ||= t.ok && t.value.auth !== undefined && t.value.auth.nonce.every((b, k) => b === nonce[k]);
          });
          if (answered) {
            legitOk++;
            break;
          }
        }
      }
    }
    const seconds = n / ratePerS;
    const limit = 20_000 + 20_000 * seconds + legitTried;
    assert.ok(ras <= limit, `RAs ${ras} within the global limit ${limit}`);
    if (expectLegit) assert.equal(legitOk, legitTried, `${legitOk}/${legitTried} legitimate qualifications`);
    else assert.ok(s.drops.get('rate-limited-rs-global') > 0);
  }
});
