import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { SimNetwork } from '../../src/sim/network.js';
import { natPreset, NatModel } from '../../src/sim/nat.js';
import { Ipv6EchoHost } from '../../src/sim/hosts.js';
import { formatTrace, type TraceUdp } from '../../src/sim/trace.js';
import { ActionQueue, type Action, type Endpoint } from '../../src/core/endpoint.js';
import { ConfigError } from '../../src/core/errors.js';
import type { Millis } from '../../src/core/time.js';
import { finish, pseudoSumV6, sum16 } from '../../src/wire/checksum.js';
import { ipv6HasPrefix } from '../../src/wire/ip.js';
import { EchoCore, ep, ip, ProbeCore, SinkCore } from './doubles.js';
import { v6 } from '../addresses.js';

const SERVER = ep('198.51.100.1:7000');
const NAT_PUB = ip('203.0.113.1');

function udpTrace(net: SimNetwork): TraceUdp[] {
  return net.trace.filter((e): e is TraceUdp => e.kind === 'udp');
}

test('public to public: one-way delay is the sum of both access links', () => {
  const net = new SimNetwork(1);
  const server = new EchoCore();
  const client = new ProbeCore(SERVER);
  net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: server });
  net.addHost('client', { addr: ip('198.51.100.2'), port: 40000, endpoint: client, latencyMs: 20 });
  net.runFor(1000);
  assert.equal(server.received.length, 1);
  assert.equal(server.received[0]!.at, 25);
  assert.deepEqual(server.received[0]!.from, ep('198.51.100.2:40000'));
  assert.equal(client.received.length, 1);
  assert.equal(client.received[0]!.at, 50);
  assert.equal(net.now, 1000);
  assert.deepEqual(net.host('client').events.map((e) => [e.at, e.action.kind === 'state-changed' ? e.action.state : '']), [[50, 'answered']]);
  assert.equal(net.host('client').state, 'answered');
  assert.deepEqual(udpTrace(net).map((e) => [e.at, e.segment, e.from, e.to, e.fate]), [
    [25, 'inet', 'client', 'server', 'delivered'],
    [50, 'inet', 'server', 'client', 'delivered'],
  ]);
});

test('through a NAT: the LAN hop shows the private source, the inet hop the mapped one', () => {
  const net = new SimNetwork(1);
  net.addNat('home', natPreset('port-restricted', NAT_PUB));
  const server = new EchoCore();
  const client = new ProbeCore(SERVER);
  net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: server });
  net.addHost('client', { addr: ip('192.168.1.10'), behind: 'home', port: 5000, endpoint: client });
  net.runFor(1000);
  const mapped = { addr: NAT_PUB, port: 1024 };
  assert.deepEqual(server.received[0]!.from, mapped);
  assert.equal(client.received[0]!.at, 22); // 1 (LAN) + 5 (uplink) + 5 (server) each way
  assert.deepEqual(client.received[0]!.from, SERVER);
  assert.deepEqual(client.received[0]!.to, ep('192.168.1.10:5000'));
  const t = udpTrace(net);
  assert.deepEqual(t.map((e) => [e.at, e.segment, e.fate]), [
    [1, 'lan:home', 'forwarded'],
    [11, 'inet', 'delivered'],
    [21, 'inet', 'forwarded'],
    [22, 'lan:home', 'delivered'],
  ]);
  assert.deepEqual([t[0]!.src, t[0]!.dst, t[0]!.translated], [ep('192.168.1.10:5000'), SERVER, { src: mapped, dst: SERVER }]);
  assert.deepEqual([t[1]!.src, t[1]!.dst], [mapped, SERVER]);
  assert.deepEqual([t[2]!.src, t[2]!.dst, t[2]!.translated], [SERVER, mapped, { src: SERVER, dst: ep('192.168.1.10:5000') }]);
  // The same datagram: one copy shared by both hops.
  assert.equal(t[0]!.data, t[1]!.data);
  assert.deepEqual(net.nat('home').mappings(net.now).map((m) => [m.private, m.public]), [[ep('192.168.1.10:5000'), mapped]]);
});

test('NAT drops: unsolicited, unmapped, unroutable', () => {
  const net = new SimNetwork(1);
  net.addNat('home', natPreset('port-restricted', NAT_PUB));
  const client = new ProbeCore(SERVER);
  net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: new SinkCore() });
  net.addHost('stranger', { addr: ip('198.51.100.66'), port: 7000, endpoint: new SinkCore() });
  net.addHost('client', { addr: ip('192.168.1.10'), behind: 'home', port: 5000, endpoint: client });
  net.runFor(100);
  net.sendUdp('stranger', ep('198.51.100.66:7000'), { addr: NAT_PUB, port: 1024 }, new Uint8Array([1]));
  net.sendUdp('stranger', ep('198.51.100.66:7000'), { addr: NAT_PUB, port: 1025 }, new Uint8Array([2]));
  net.sendUdp('stranger', ep('198.51.100.66:7000'), ep('192.168.1.10:5000'), new Uint8Array([3]));
  // The server may answer from the endpoint the client sent to, but not from another port.
  net.sendUdp('server', ep('198.51.100.1:7001'), { addr: NAT_PUB, port: 1024 }, new Uint8Array([4]));
  net.sendUdp('server', SERVER, { addr: NAT_PUB, port: 1024 }, new Uint8Array([5]));
  net.runFor(100);
  assert.deepEqual(net.drops.snapshot(), { 'nat-filtered': 2, 'nat-no-mapping': 1, 'no-route': 1 });
  assert.deepEqual(client.received.map((r) => r.data[0]), [5]);
});

test('a symmetric NAT gives each destination its own public port', () => {
  const net = new SimNetwork(5);
  net.addNat('corp', natPreset('symmetric', NAT_PUB, { rng: net.forkRng() }));
  const a = new EchoCore();
  const b = new EchoCore();
  net.addHost('a', { addr: ip('198.51.100.1'), port: 7000, endpoint: a });
  net.addHost('b', { addr: ip('198.51.100.2'), port: 7000, endpoint: b });
  net.addHost('client', { addr: ip('10.0.0.2'), behind: 'corp', port: 5000, endpoint: new SinkCore() });
  net.sendUdp('client', ep('10.0.0.2:5000'), ep('198.51.100.1:7000'), new Uint8Array([1]));
  net.sendUdp('client', ep('10.0.0.2:5000'), ep('198.51.100.2:7000'), new Uint8Array([2]));
  net.runFor(100);
  assert.notEqual(a.received[0]!.from.port, b.received[0]!.from.port);
  assert.equal(net.nat('corp').mappings(net.now).length, 2);
  assert.equal(net.drops.total(), 0);
});

test('block() makes the server unreachable until unblock()', () => {
  const net = new SimNetwork(1);
  const server = new EchoCore();
  const client = new ProbeCore(SERVER, { intervalMs: 1000, count: 3 });
  net.addNat('home', natPreset('full-cone', NAT_PUB));
  net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: server });
  net.addHost('client', { addr: ip('192.168.1.10'), behind: 'home', endpoint: client });
  const id = net.block((h) => h.kind === 'udp' && h.dst.addr === SERVER.addr);
  net.runFor(1500);
  assert.equal(server.received.length, 0);
  assert.equal(net.drops.get('blocked'), 2);
  assert.equal(udpTrace(net).filter((e) => e.reason === 'blocked').every((e) => e.segment === 'lan:home'), true);
  net.unblock(id);
  net.runFor(1000);
  assert.equal(server.received.length, 1);
  assert.equal(client.received.length, 1);
});

test('ten idle minutes of virtual time take milliseconds of real time', () => {
  const started = performance.now();
  const net = new SimNetwork(1);
  net.addNat('home', natPreset('restricted', NAT_PUB));
  const server = new EchoCore();
  // A keepalive every 25 s holds the 30 s mapping open.
  const client = new ProbeCore(SERVER, { intervalMs: 25_000 });
  net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: server });
  net.addHost('client', { addr: ip('192.168.1.10'), behind: 'home', endpoint: client });
  net.runFor(10 * 60_000);
  const elapsed = performance.now() - started;
  assert.equal(net.now, 600_000);
  assert.equal(client.sent, 25); // t = 0, 25 s, ..., 600 s
  assert.equal(client.received.length, 24); // the one sent at 600 s is still in flight
  assert.equal(net.nat('home').mappings(net.now).length, 1);
  assert.ok(elapsed < 1000, `took ${elapsed} ms`);
});

test('an idle mapping expires: the server can reach the client at 29 s but not at 31 s', () => {
  for (const [waitMs, reaches] of [[29_000, true], [31_000, false]] as const) {
    const net = new SimNetwork(1);
    net.addNat('home', natPreset('full-cone', NAT_PUB));
    const client = new ProbeCore(SERVER);
    net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: new SinkCore() });
    net.addHost('client', { addr: ip('192.168.1.10'), behind: 'home', endpoint: client });
    net.runFor(1); // the probe reaches the NAT at t = 1
    net.runFor(waitMs - 6); // the reply below reaches the NAT 5 ms after it is sent
    net.sendUdp('server', SERVER, { addr: NAT_PUB, port: 1024 }, new Uint8Array([9]));
    net.runFor(100);
    assert.equal(client.received.length, reaches ? 1 : 0, `after ${waitMs} ms`);
    if (!reaches) assert.equal(net.drops.get('nat-no-mapping'), 1);
  }
});

test('LAN hosts reach each other directly; hairpinning depends on the NAT', () => {
  for (const hairpin of [false, true]) {
    const net = new SimNetwork(1);
    net.addNat('home', natPreset('full-cone', NAT_PUB, { hairpin }));
    const a = new SinkCore();
    const b = new EchoCore();
    net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: new SinkCore() });
    net.addHost('a', { addr: ip('192.168.1.10'), behind: 'home', port: 5000, endpoint: a });
    net.addHost('b', { addr: ip('192.168.1.11'), behind: 'home', port: 5000, endpoint: b });
    // Direct on the LAN: both access links, 1 ms each.
    net.sendUdp('a', ep('192.168.1.10:5000'), ep('192.168.1.11:5000'), new Uint8Array([1]));
    net.runFor(10);
    assert.equal(b.received[0]!.at, 2);
    assert.deepEqual(a.received.map((r) => [r.at, r.from]), [[4, ep('192.168.1.11:5000')]]);
    // b opens a mapping towards the server; a then sends to b's public endpoint.
    net.sendUdp('b', ep('192.168.1.11:5000'), SERVER, new Uint8Array([2]));
    net.runFor(10);
    const bPublic = net.nat('home').mappings(net.now)[0]!.public;
    net.sendUdp('a', ep('192.168.1.10:5000'), bPublic, new Uint8Array([3]));
    net.runFor(10);
    if (!hairpin) {
      assert.equal(net.drops.get('nat-no-hairpin'), 1);
      assert.equal(b.received.length, 1);
    } else {
      const aPublic = net.nat('home').publicEndpointFor(net.now, ep('192.168.1.10:5000'), bPublic)!;
      assert.deepEqual(b.received[1]!.from, aPublic);
      // b's echo goes back through the hairpin to a, arriving from b's public endpoint.
      assert.deepEqual(a.received[1]!.from, bPublic);
      assert.equal(net.drops.total(), 0);
    }
  }
});

/**
 * A stand-in for a relay: packets for its own prefix go up to its stack, anything else (from its stack) goes
 * out natively.
 */
class Ipv6Gateway implements Endpoint {
  private readonly actions = new ActionQueue();
  constructor(private readonly own: Uint8Array, private readonly ownLength: number) {}
  handleDatagram(): void {}
  handleIpv6(_now: Millis, packet: Uint8Array): void {
    const mine = packet.length >= 40 && ipv6HasPrefix(packet.subarray(24, 40), this.own, this.ownLength);
    this.actions.push(mine ? { kind: 'ipv6-deliver', packet: packet.slice() } : { kind: 'ipv6-forward', packet: packet.slice() });
  }
  handleTimeout(): void {}
  pollTimeout(): Millis | undefined {
    return undefined;
  }
  poll(): Action | undefined {
    return this.actions.poll();
  }
}

function echoRequest(src: Uint8Array, dst: Uint8Array, id: number, seq: number, data: Uint8Array): Uint8Array {
  const len = 8 + data.length;
  const p = new Uint8Array(40 + len);
  p[0] = 0x60;
  p[4] = len >> 8;
  p[5] = len & 0xff;
  p[6] = 58;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p[40] = 128;
  p[44] = id >> 8;
  p[45] = id & 0xff;
  p[46] = seq >> 8;
  p[47] = seq & 0xff;
  p.set(data, 48);
  const c = finish(sum16(p, 40, len, pseudoSumV6(src, dst, len, 58)));
  p[42] = c >> 8;
  p[43] = c & 0xff;
  return p;
}

test('IPv6: longest-prefix routing to an Ipv6EchoHost and back to the host stack', () => {
  const net = new SimNetwork(1);
  const gw = new Ipv6Gateway(v6('2001::'), 32);
  const me = v6('2001:0:4136:e378:8000:63bf:3fff:fdd2');
  const target = v6('2001:db8:1::1');
  const echo = new Ipv6EchoHost(target);
  const decoy = new Ipv6EchoHost(v6('2001:db8::1'));
  const delivered: [Millis, Uint8Array][] = [];
  net.addHost('relay', { addr: ip('198.51.100.10'), endpoint: gw, onIpv6Deliver: (at, p) => delivered.push([at, p]) });
  net.addHost('echo', { addr: ip('198.51.100.20'), endpoint: echo, latencyMs: 10 });
  net.addHost('decoy', { addr: ip('198.51.100.21'), endpoint: decoy });
  net.addIpv6Route(v6('2001:db8::'), 32, 'decoy');
  net.addIpv6Route(v6('2001:db8:1::'), 48, 'echo');
  net.addIpv6Route(v6('2001::'), 32, 'relay');
  const req = echoRequest(me, target, 0x1234, 7, new TextEncoder().encode('ping'));
  net.injectIpv6('relay', req);
  assert.equal(net.runUntilIdle(10_000), true);

  assert.equal(decoy.received.length, 0);
  assert.deepEqual(echo.received.map((r) => r.at), [15]);
  assert.equal(echo.repliesSent, 1);
  const relay = net.host('relay');
  assert.equal(relay.delivered.length, 1);
  const { at, packet: reply } = relay.delivered[0]!;
  assert.equal(at, 30);
  assert.deepEqual(delivered, [[30, reply]]);
  assert.equal(reply[40], 129);
  assert.deepEqual(reply.subarray(8, 24), target);
  assert.deepEqual(reply.subarray(24, 40), me);
  assert.deepEqual(reply.subarray(44), req.subarray(44)); // identifier, sequence and data unchanged
  assert.equal(finish(sum16(reply, 40, reply.length - 40, pseudoSumV6(target, me, reply.length - 40, 58))), 0);
  assert.deepEqual(net.trace.map((e) => [e.kind, e.at, e.segment, e.from, e.to, e.fate]), [
    ['ipv6', 0, 'tun:relay', 'relay.stack', 'relay', 'delivered'],
    ['ipv6', 15, 'ipv6', 'relay', 'echo', 'delivered'],
    ['ipv6', 30, 'ipv6', 'echo', 'relay', 'delivered'],
    ['ipv6', 30, 'tun:relay', 'relay', 'relay.stack', 'delivered'],
  ]);
});

test('IPv6: unroutable, routed back to the sender, and bad checksums', () => {
  const net = new SimNetwork(1);
  const gw = new Ipv6Gateway(v6('::'), 128); // forwards everything, even what routes back to itself
  const target = v6('2001:db8::1');
  const echo = new Ipv6EchoHost(target);
  net.addHost('gw', { addr: ip('198.51.100.10'), endpoint: gw });
  net.addHost('echo', { addr: ip('198.51.100.20'), endpoint: echo });
  net.addIpv6Route(target, 128, 'echo');
  net.addIpv6Route(v6('2001::'), 32, 'gw');
  net.injectIpv6('gw', echoRequest(v6('2001::1'), v6('2001:db8::2'), 1, 1, new Uint8Array(0)));
  net.injectIpv6('gw', echoRequest(target, v6('2001::5'), 1, 1, new Uint8Array(0)));
  const corrupt = echoRequest(v6('2001::1'), target, 1, 1, new Uint8Array([1, 2]));
  corrupt[49] ^= 0xff;
  net.injectIpv6('gw', corrupt);
  net.runUntilIdle(1000);
  assert.equal(net.drops.get('no-ipv6-route'), 1);
  assert.equal(net.drops.get('ipv6-loop'), 1);
  assert.equal(echo.drops.get('bad-checksum'), 1);
  assert.equal(echo.repliesSent, 0);
  assert.throws(() => net.addIpv6Route(target, 128, 'gw'), ConfigError);
  assert.throws(() => net.addIpv6Route(target, 128, 'nobody'), ConfigError);
});

/** A core whose deadline tests set by hand. */
class TimerCore implements Endpoint {
  deadline: Millis | undefined;
  readonly fired: Millis[] = [];
  rearm?: (now: Millis) => Millis | undefined;
  readonly actions = new ActionQueue();
  handleDatagram(now: Millis): void {
    // A packet moves the deadline later: the earlier timer event must not fire.
    this.deadline = now + 1000;
  }
  handleIpv6(): void {}
  handleTimeout(now: Millis): void {
    this.fired.push(now);
    this.deadline = this.rearm ? this.rearm(now) : undefined;
  }
  pollTimeout(): Millis | undefined {
    return this.deadline;
  }
  poll(): Action | undefined {
    return this.actions.poll();
  }
}

test('timers: past deadlines fire now, moved deadlines fire once at the new time', () => {
  const net = new SimNetwork(1);
  const core = new TimerCore();
  core.deadline = 100;
  net.addHost('h', { addr: ip('198.51.100.1'), port: 9, endpoint: core });
  net.addHost('peer', { addr: ip('198.51.100.2'), port: 9, endpoint: new SinkCore() });
  net.runUntil(50);
  net.sendUdp('peer', ep('198.51.100.2:9'), ep('198.51.100.1:9'), new Uint8Array(1)); // arrives at 60
  net.runUntil(5000);
  assert.deepEqual(core.fired, [1060]);

  core.rearm = (now) => (now < 3000 ? now - 500 : undefined); // a core reporting deadlines already past
  core.deadline = 2000;
  net.sendUdp('peer', ep('198.51.100.2:9'), ep('198.51.100.1:9'), new Uint8Array(1)); // arrives at 5010
  net.runUntil(7000);
  assert.deepEqual(core.fired, [1060, 6010]);
});

test('a core that never lets time move is stopped with an error', () => {
  const net = new SimNetwork(1);
  const core = new TimerCore();
  core.deadline = 10;
  core.rearm = (now) => now;
  net.addHost('stuck', { addr: ip('198.51.100.1'), endpoint: core });
  assert.throws(() => net.runFor(100), /stuck/);
});

test('runUntil(predicate) stops at the event that satisfies it; runUntilIdle reports idleness', () => {
  const net = new SimNetwork(1);
  net.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: new EchoCore() });
  net.addHost('client', { addr: ip('198.51.100.2'), endpoint: new ProbeCore(SERVER, { startAt: 1000 }) });
  assert.equal(net.runUntil((n) => n.host('client').state === 'answered', 500), false);
  assert.equal(net.now, 500);
  assert.equal(net.runUntil((n) => n.host('client').state === 'answered', 5000), true);
  assert.equal(net.now, 1020);
  assert.equal(net.runUntilIdle(100_000), true);
  assert.equal(net.now, 1020);
  assert.throws(() => net.runUntil(10), RangeError);

  const busy = new SimNetwork(1);
  busy.addHost('server', { addr: SERVER.addr, port: SERVER.port, endpoint: new EchoCore() });
  busy.addHost('client', { addr: ip('198.51.100.2'), endpoint: new ProbeCore(SERVER, { intervalMs: 100 }) });
  assert.equal(busy.runUntilIdle(1000), false);
  assert.equal(busy.now, 1000);
  assert.ok(busy.step());
  assert.equal(busy.now, 1010);
});

test('port-unreachable and bad local addresses are counted drops', () => {
  const net = new SimNetwork(1);
  const sender = new TimerCore();
  net.addHost('server', { addr: SERVER.addr, port: SERVER.port, localPorts: [7001], endpoint: new SinkCore() });
  net.addHost('client', { addr: ip('198.51.100.2'), endpoint: sender });
  sender.actions.push({ kind: 'udp-send', remote: ep('198.51.100.1:7002'), data: new Uint8Array(1) });
  sender.actions.push({ kind: 'udp-send', remote: ep('198.51.100.1:7001'), data: new Uint8Array(1) });
  sender.actions.push({ kind: 'udp-send', local: ep('198.51.100.99:1'), remote: SERVER, data: new Uint8Array(1) });
  net.runFor(100);
  assert.deepEqual(net.drops.snapshot(), { 'bad-local-address': 1, 'port-unreachable': 1 });
  const server = net.host('server');
  assert.deepEqual([...server.listening].sort(), [7000, 7001]);
});

test('a host with two addresses sends from the one it names', () => {
  const net = new SimNetwork(1);
  const server = new EchoCore();
  const client = new SinkCore();
  net.addHost('server', { addrs: [ip('198.51.100.1'), ip('198.51.100.2')], port: 3544, endpoint: server });
  net.addHost('client', { addr: ip('198.51.100.9'), port: 5000, endpoint: client });
  net.sendUdp('client', ep('198.51.100.9:5000'), ep('198.51.100.2:3544'), new Uint8Array(1));
  net.sendUdp('client', ep('198.51.100.9:5000'), ep('198.51.100.1:3544'), new Uint8Array(1));
  net.runFor(100);
  assert.deepEqual(client.received.map((r) => r.from), [ep('198.51.100.2:3544'), ep('198.51.100.1:3544')]);
});

test('configuration errors throw', () => {
  const net = new SimNetwork(1);
  net.addNat('home', natPreset('full-cone', NAT_PUB));
  assert.throws(() => net.addHost('x', { endpoint: new SinkCore() }), ConfigError);
  assert.throws(() => net.addHost('x', { addr: ip('10.0.0.1'), behind: 'nope', endpoint: new SinkCore() }), ConfigError);
  assert.throws(() => net.addHost('x', { addr: NAT_PUB, endpoint: new SinkCore() }), ConfigError);
  assert.throws(() => net.addHost('home', { addr: ip('198.51.100.1'), endpoint: new SinkCore() }), ConfigError);
  assert.throws(() => net.addHost('x', { addr: ip('198.51.100.1'), lossRate: 2, endpoint: new SinkCore() }), ConfigError);
  net.addHost('a', { addr: ip('10.0.0.1'), behind: 'home', endpoint: new SinkCore() });
  assert.throws(() => net.addHost('b', { addr: ip('10.0.0.1'), behind: 'home', endpoint: new SinkCore() }), ConfigError);
  // The same private address on the public side is another realm.
  net.addHost('b', { addr: ip('10.0.0.1'), endpoint: new SinkCore() });
  assert.throws(() => net.addNat('n2', new NatModel({ publicAddr: ip('10.0.0.1'), mapping: 'endpoint-independent', filtering: 'endpoint-independent', allocation: 'sequential' })), ConfigError);
  assert.throws(() => net.host('nope'), ConfigError);
});

/** Many probes through lossy, jittery links and a symmetric NAT with random ports. */
function lossyScenario(seed: number): SimNetwork {
  const net = new SimNetwork(seed);
  net.addNat('corp', natPreset('symmetric', NAT_PUB, { rng: net.forkRng() }), { jitterMs: 3, lossRate: 0.1 });
  net.addHost('s1', { addr: ip('198.51.100.1'), port: 7000, endpoint: new EchoCore(), jitterMs: 4, lossRate: 0.1 });
  net.addHost('s2', { addr: ip('198.51.100.2'), port: 7000, endpoint: new EchoCore(), jitterMs: 4 });
  net.addHost('c1', { addr: ip('10.0.0.2'), behind: 'corp', endpoint: new ProbeCore(ep('198.51.100.1:7000'), { intervalMs: 2, count: 40 }), jitterMs: 2 });
  net.addHost('c2', { addr: ip('10.0.0.3'), behind: 'corp', endpoint: new ProbeCore(ep('198.51.100.2:7000'), { intervalMs: 5, count: 40 }), lossRate: 0.05 });
  net.runFor(2000);
  return net;
}

test('the same seed gives the same trace; another seed another', () => {
  const a = lossyScenario(42);
  const b = lossyScenario(42);
  const c = lossyScenario(43);
  assert.ok(a.trace.length > 100);
  assert.ok(a.drops.get('loss') > 0);
  assert.equal(formatTrace(a.trace), formatTrace(b.trace));
  assert.deepEqual(a.trace, b.trace);
  assert.deepEqual(a.drops.snapshot(), b.drops.snapshot());
  assert.notEqual(formatTrace(a.trace), formatTrace(c.trace));
  // Jitter reorders: arrival order on the inet differs from send order somewhere.
  const seqs = udpTrace(a).filter((e) => e.segment === 'inet' && e.to === 's1').map((e) => new TextDecoder().decode(e.data));
  const sorted = [...seqs].sort((x, y) => Number(x.split(' ')[1]) - Number(y.split(' ')[1]));
  assert.notDeepEqual(seqs, sorted);
});

test('recordTrace: false keeps the counters but no trace', () => {
  const net = new SimNetwork(1, { recordTrace: false });
  net.addHost('c', { addr: ip('198.51.100.2'), endpoint: new ProbeCore(ep('192.0.2.1:1')) });
  net.runFor(10);
  assert.equal(net.trace.length, 0);
  assert.equal(net.drops.get('no-route'), 1);
});
