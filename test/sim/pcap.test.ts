import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LINKTYPE_RAW, PcapWriter, pcapFromTrace } from '../../src/sim/pcap.js';
import { SimNetwork } from '../../src/sim/network.js';
import { natPreset } from '../../src/sim/nat.js';
import { Ipv6EchoHost } from '../../src/sim/hosts.js';
import type { TraceEntry, TraceUdp } from '../../src/sim/trace.js';
import { ActionQueue, type Action, type Endpoint } from '../../src/core/endpoint.js';
import type { Millis } from '../../src/core/time.js';
import { finish, pseudoSumV6, sum16 } from '../../src/wire/checksum.js';
import { formatIpv4, parseIpv6 } from '../../src/wire/ip.js';
import { EchoCore, ep, ip, ProbeCore } from './doubles.js';

function u32le(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(off, true);
}

test('PcapWriter: global header, record headers, microsecond carry, snaplen', () => {
  const w = new PcapWriter({ snaplen: 4 });
  w.add(1500.25, new Uint8Array([1, 2, 3]));
  w.add(1999.9999996, new Uint8Array([9, 8, 7, 6, 5]));
  const b = w.bytes();
  assert.deepEqual([...b.subarray(0, 4)], [0xd4, 0xc3, 0xb2, 0xa1]);
  assert.deepEqual([b[4], b[5], b[6], b[7]], [2, 0, 4, 0]);
  assert.equal(u32le(b, 16), 4);
  assert.equal(u32le(b, 20), LINKTYPE_RAW);
  assert.deepEqual([u32le(b, 24), u32le(b, 28), u32le(b, 32), u32le(b, 36)], [1, 500_250, 3, 3]);
  assert.deepEqual([...b.subarray(40, 43)], [1, 2, 3]);
  assert.deepEqual([u32le(b, 43), u32le(b, 47), u32le(b, 51), u32le(b, 55)], [2, 0, 4, 5]);
  assert.deepEqual([...b.subarray(59)], [9, 8, 7, 6]);
  assert.equal(b.length, 24 + 16 + 3 + 16 + 4);
});

/** Forwards whatever its stack gives it natively and hands native arrivals up (a relay's IPv6 side). */
class Gateway implements Endpoint {
  private readonly actions = new ActionQueue();
  constructor(private readonly self: Uint8Array) {}
  handleDatagram(): void {}
  handleIpv6(_now: Millis, packet: Uint8Array): void {
    const forMe = packet.subarray(24, 40).every((b, i) => b === this.self[i]);
    this.actions.push({ kind: forMe ? 'ipv6-deliver' : 'ipv6-forward', packet: packet.slice() });
  }
  handleTimeout(): void {}
  pollTimeout(): Millis | undefined {
    return undefined;
  }
  poll(): Action | undefined {
    return this.actions.poll();
  }
}

/** A NATed client probing an echo server twice, and an ICMPv6 echo over the native side. */
function scenario(): SimNetwork {
  const net = new SimNetwork(3);
  net.addNat('home', natPreset('port-restricted', ip('203.0.113.1')));
  net.addHost('server', { addr: ip('198.51.100.1'), port: 7000, endpoint: new EchoCore() });
  net.addHost('client', { addr: ip('192.168.1.10'), behind: 'home', port: 5000, endpoint: new ProbeCore(ep('198.51.100.1:7000'), { intervalMs: 1234.5, count: 2 }) });
  const me = parseIpv6('2001:db8:a::1')!;
  const peer = parseIpv6('2001:db8:b::1')!;
  net.addHost('gw', { addr: ip('198.51.100.10'), endpoint: new Gateway(me) });
  net.addHost('v6host', { addr: ip('198.51.100.20'), endpoint: new Ipv6EchoHost(peer) });
  net.addIpv6Route(parseIpv6('2001:db8:a::')!, 48, 'gw');
  net.addIpv6Route(parseIpv6('2001:db8:b::')!, 48, 'v6host');
  const req = new Uint8Array(40 + 12);
  req[0] = 0x60;
  req[5] = 12;
  req[6] = 58;
  req[7] = 64;
  req.set(me, 8);
  req.set(peer, 24);
  req[40] = 128;
  req.set([0, 1, 0, 1, 0x61, 0x62, 0x63, 0x64], 44);
  const c = finish(sum16(req, 40, 12, pseudoSumV6(me, peer, 12, 58)));
  req[42] = c >> 8;
  req[43] = c & 0xff;
  net.injectIpv6('gw', req);
  net.runFor(5000);
  return net;
}

function tshark(args: string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync('tshark', args, { encoding: 'utf8' });
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

const haveTshark = spawnSync('tshark', ['-v'], { encoding: 'utf8' }).status === 0;

test('pcapFromTrace: one record per kept hop, UDP rebuilt as IPv4', () => {
  const net = scenario();
  const udp = net.trace.filter((e): e is TraceUdp => e.kind === 'udp');
  assert.equal(udp.length, 8);
  const b = pcapFromTrace(net.trace, (e) => e.kind === 'udp');
  // First record: the client's datagram as sent on the LAN, IPv4 source 192.168.1.10.
  assert.equal(u32le(b, 24 + 8), 20 + 8 + udp[0]!.data.length);
  assert.deepEqual([...b.subarray(40 + 12, 40 + 16)], [192, 168, 1, 10]);
  const all = pcapFromTrace(net.trace);
  assert.ok(all.length > b.length);
  assert.equal(pcapFromTrace([]).length, 24);
});

test('tshark reads the trace pcap: addresses, ports, times, nothing malformed', (t) => {
  if (!haveTshark) {
    t.skip('tshark not installed');
    return;
  }
  const net = scenario();
  const dir = mkdtempSync(join(tmpdir(), 'transit6-pcap-'));
  try {
    const udpFile = join(dir, 'udp.pcap');
    const allFile = join(dir, 'all.pcap');
    writeFileSync(udpFile, pcapFromTrace(net.trace, (e) => e.kind === 'udp'));
    writeFileSync(allFile, pcapFromTrace(net.trace));

    const udp = net.trace.filter((e): e is TraceUdp => e.kind === 'udp');
    const fields = tshark(['-r', udpFile, '-T', 'fields', '-e', 'ip.src', '-e', 'udp.dstport']);
    assert.ok(fields.ok, fields.stderr);
    assert.deepEqual(fields.stdout.trim().split('\n'), udp.map((e) => `${formatIpv4(e.src.addr)}\t${e.dst.port}`));
    // Both views of a NATed datagram are there: the private source on the LAN, the mapped one on the inet.
    assert.deepEqual(fields.stdout.trim().split('\n').slice(0, 2), ['192.168.1.10\t7000', '203.0.113.1\t7000']);

    const times = tshark(['-r', allFile, '-T', 'fields', '-e', 'frame.time_epoch']);
    assert.ok(times.ok, times.stderr);
    assert.deepEqual(times.stdout.trim().split('\n'), net.trace.map((e: TraceEntry) => (e.at / 1000).toFixed(9)));

    const v6 = tshark(['-r', allFile, '-Y', 'ipv6', '-T', 'fields', '-e', 'ipv6.src', '-e', 'ipv6.dst', '-e', 'icmpv6.type']);
    assert.ok(v6.ok, v6.stderr);
    assert.deepEqual(v6.stdout.trim().split('\n'), [
      '2001:db8:a::1\t2001:db8:b::1\t128', // gw's stack to gw
      '2001:db8:a::1\t2001:db8:b::1\t128', // gw to v6host natively
      '2001:db8:b::1\t2001:db8:a::1\t129', // the echo reply natively
      '2001:db8:b::1\t2001:db8:a::1\t129', // gw up to its stack
    ]);

    // With checksum validation on, a bad UDP or IPv4 checksum would show up as an expert error.
    const checks = ['-o', 'udp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE'];
    const bad = tshark(['-r', allFile, ...checks, '-Y', '_ws.malformed || _ws.expert.severity >= "error"', '-T', 'fields', '-e', 'frame.number']);
    assert.ok(bad.ok, bad.stderr);
    assert.equal(bad.stdout.trim(), '', `malformed or erroneous frames: ${bad.stdout}`);
    const expert = tshark(['-r', allFile, ...checks, '-q', '-z', 'expert,error']);
    assert.ok(expert.ok, expert.stderr);
    assert.doesNotMatch(expert.stdout, /Errors \(/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
