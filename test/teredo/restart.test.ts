/**
 * A relay that restarted has forgotten its clients; the clients have not forgotten it. A packet from a client sent
 * from its own mapping makes the new relay bubble it through its server, and once the client answers, its packets
 * are forwarded again (test/lab/faults.test.ts measures the same with kill -9 on running daemons).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Action } from '../../src/core/endpoint.js';
import { SeededRng } from '../../src/core/rng.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { buildIcmpv6Packet } from '../../src/wire/icmpv6.js';
import { buildBubble } from '../../src/wire/ipv6.js';
import { encodeTeredoAddress, encodeTeredoPacket, parseTeredoPacket } from '../../src/wire/teredo.js';
import { v4, v6 } from './fixtures.js';

const RELAY = { addr: v4('198.51.100.17'), port: 3545 };

function drain(r: TeredoRelay): Action[] {
  const out: Action[] = [];
  for (let a = r.poll(); a; a = r.poll()) out.push(a);
  return out;
}

test('after a relay restart, a client sending from its own mapping is bubbled and served again; a spoofer is not', () => {
  const mapping = { addr: v4('203.0.113.1'), port: 20001 };
  const client = encodeTeredoAddress({ server: v4('198.51.100.1'), flags: 0, mappedAddr: mapping.addr, mappedPort: mapping.port });
  const echo = (seq: number): Uint8Array => encodeTeredoPacket({ ipv6: buildIcmpv6Packet(client, v6('2001:db8:1::10'), { type: 'echo-request', identifier: 1, sequence: seq, data: new Uint8Array(8) }) });
  const relay = new TeredoRelay({}, new SeededRng(77));
  // The first packet after the restart: dropped, and an indirect bubble goes to the client's server.
  relay.handleDatagram(0, mapping, RELAY, echo(1));
  let out = drain(relay);
  assert.equal(out.length, 1);
  const b = out[0]!;
  assert.ok(b.kind === 'udp-send' && b.remote.addr === v4('198.51.100.1') && b.remote.port === 3544);
  const bubble = parseTeredoPacket(b.data);
  assert.ok(bubble.ok);
  assert.equal(relay.drops.get('unknown-peer'), 1);
  // The client answers the bubble it received through its server (a direct bubble to the relay's hash address).
  relay.handleDatagram(100, mapping, RELAY, encodeTeredoPacket({ ipv6: buildBubble(client, relay.bubbleSourceFor(client)) }));
  assert.ok(relay.peers.get(client)?.trusted);
  drain(relay);
  // Its next packet is forwarded to native IPv6.
  relay.handleDatagram(1000, mapping, RELAY, echo(2));
  out = drain(relay);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.kind, 'ipv6-forward');
  // A spoofed copy (the address names a mapping it did not come from) creates nothing and sends nothing.
  const fresh = new TeredoRelay({}, new SeededRng(78));
  fresh.handleDatagram(0, { addr: v4('203.0.113.99'), port: 1 }, RELAY, echo(1));
  assert.equal(drain(fresh).length, 0);
  assert.equal(fresh.peers.size, 0);
  // Bubbles from unknown clients never create anything either (a flood of them costs nothing).
  fresh.handleDatagram(0, mapping, RELAY, encodeTeredoPacket({ ipv6: buildBubble(client, v6('fe80::1')) }));
  assert.equal(drain(fresh).length, 0);
  assert.equal(fresh.peers.size, 0);
});
