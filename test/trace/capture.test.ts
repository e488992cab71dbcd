import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pcapFromTrace } from '../../src/sim/pcap.js';
import { runQualify, QUALIFY_ADDRESSES } from '../../src/sim/qualify.js';
import { runTraceScenario } from '../../src/sim/traces.js';
import type { TraceUdp } from '../../src/sim/trace.js';
import { describeTeredoDatagram } from '../../src/teredo/describe.js';
import { captureToLadder, guessServer } from '../../src/trace/capture-ladder.js';
import { readCapture, LINKTYPE } from '../../src/trace/pcap-reader.js';
import { renderLadderText } from '../../src/trace/ladder.js';
import { renderLadderSvg } from '../../src/trace/svg.js';
import { PcapCapture, pcapPaths } from '../../src/io/pcapfile.js';
import { formatIpv4Port } from '../../src/wire/ip.js';
import { buildIpv4Udp } from '../../src/wire/udp.js';
import { main } from '../../src/cli/main.js';

const ctx = { serverPrimary: QUALIFY_ADDRESSES.serverPrimary, serverSecondary: QUALIFY_ADDRESSES.serverSecondary };

test('a simulator pcap reads back packet for packet, and the ladder labels are the simulator trace labels', () => {
  const r = runQualify({ nat: 'port-restricted' });
  const udp = r.net.trace.filter((e): e is TraceUdp => e.kind === 'udp');
  const cap = readCapture(pcapFromTrace(r.net.trace));
  assert.equal(cap.format, 'pcap');
  assert.equal(cap.problem, undefined);
  assert.equal(cap.packets.length, udp.length);
  cap.packets.forEach((p, i) => {
    assert.equal(p.kind, 'udp');
    if (p.kind !== 'udp') return;
    assert.equal(formatIpv4Port(p.src), formatIpv4Port(udp[i]!.src));
    assert.equal(formatIpv4Port(p.dst), formatIpv4Port(udp[i]!.dst));
    assert.deepEqual(p.data, udp[i]!.data);
    assert.ok(Math.abs(p.at - udp[i]!.at) < 0.001);
  });
  const ladder = captureToLadder(cap.packets, { server: { primary: ctx.serverPrimary, secondary: ctx.serverSecondary } });
  assert.deepEqual(
    ladder.messages.map((m) => m.label),
    udp.map((e) => describeTeredoDatagram(e.src, e.dst, e.data, ctx).text),
  );
  // The lanes: the client, the NAT (the same datagrams seen again from its public address), the server.
  assert.deepEqual(ladder.lanes.map((l) => l.title), ['client', 'NAT', 'server']);
  assert.equal(ladder.lanes[2]!.subtitle, '198.51.100.1+1');
  // Both renderings accept it.
  const text = renderLadderText(ladder.lanes, ladder.messages, { width: 120 });
  assert.match(text, /RS with cone flag/);
  assert.match(renderLadderSvg(ladder.lanes, ladder.messages), /origin indication 203\.0\.113\.1:\d+/);
});

test('the server is guessed from RS and RA; a relay exchange names the relay', () => {
  const r = runTraceScenario('relay');
  const cap = readCapture(pcapFromTrace(r.net.trace));
  assert.deepEqual(guessServer(cap.packets), { primary: ctx.serverPrimary, secondary: ctx.serverSecondary });
  const ladder = captureToLadder(cap.packets, { skipQualification: true });
  const titles = ladder.lanes.map((l) => l.title);
  assert.ok(titles.includes('server') && titles.includes('relay'), titles.join(','));
  const labels = ladder.messages.map((m) => m.label).join('\n');
  assert.match(labels, /connectivity-test echo request/);
  assert.match(labels, /indirect bubble/);
  // The native side of the simulation (IPv6 hops) comes through as notes.
  assert.ok(cap.packets.some((p) => p.kind === 'ipv6'));
});

/** Re-frames a raw-IP pcap in another byte order, time resolution and link type. */
function reframe(raw: Uint8Array, opts: { bigEndian?: boolean; nsec?: boolean; linktype: number; wrap: (ip: Uint8Array) => Uint8Array }): Uint8Array {
  const src = readRecords(raw);
  const chunks: Uint8Array[] = [];
  const h = new DataView(new ArrayBuffer(24));
  const le = !opts.bigEndian;
  h.setUint32(0, opts.nsec ? 0xa1b23c4d : 0xa1b2c3d4, le);
  h.setUint16(4, 2, le);
  h.setUint16(6, 4, le);
  h.setUint32(16, 65535, le);
  h.setUint32(20, opts.linktype, le);
  chunks.push(new Uint8Array(h.buffer));
  for (const r of src) {
    const frame = opts.wrap(r.data);
    const rh = new DataView(new ArrayBuffer(16));
    rh.setUint32(0, r.sec, le);
    rh.setUint32(4, opts.nsec ? r.usec * 1000 : r.usec, le);
    rh.setUint32(8, frame.length, le);
    rh.setUint32(12, frame.length, le);
    chunks.push(new Uint8Array(rh.buffer), frame);
  }
  return Buffer.concat(chunks);
}

function readRecords(b: Uint8Array): { sec: number; usec: number; data: Uint8Array }[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = [];
  for (let o = 24; o < b.length; ) {
    const incl = v.getUint32(o + 8, true);
    out.push({ sec: v.getUint32(o, true), usec: v.getUint32(o + 4, true), data: b.subarray(o + 16, o + 16 + incl) });
    o += 16 + incl;
  }
  return out;
}

test('tcpdump-style captures: big-endian, nanosecond, Ethernet with a VLAN tag, Linux cooked v1 and v2', () => {
  const r = runQualify({ nat: 'restricted' });
  const raw = pcapFromTrace(r.net.trace);
  const reference = readCapture(raw).packets;
  const ether = (ip: Uint8Array) => Buffer.concat([Buffer.alloc(12, 0xaa), Buffer.from([0x81, 0x00, 0x00, 0x05, 0x08, 0x00]), ip]);
  const sll = (ip: Uint8Array) => Buffer.concat([Buffer.alloc(14), Buffer.from([0x08, 0x00]), ip]);
  const sll2 = (ip: Uint8Array) => Buffer.concat([Buffer.from([0x08, 0x00]), Buffer.alloc(18), ip]);
  for (const [name, bytes] of [
    ['big-endian raw', reframe(raw, { bigEndian: true, linktype: LINKTYPE.RAW, wrap: (x) => x })],
    ['nsec ethernet+vlan', reframe(raw, { nsec: true, linktype: LINKTYPE.ETHERNET, wrap: ether })],
    ['linux sll', reframe(raw, { linktype: LINKTYPE.LINUX_SLL, wrap: sll })],
    ['linux sll2', reframe(raw, { bigEndian: true, linktype: LINKTYPE.LINUX_SLL2, wrap: sll2 })],
  ] as const) {
    const cap = readCapture(bytes);
    assert.equal(cap.problem, undefined, name);
    assert.equal(cap.packets.length, reference.length, name);
    cap.packets.forEach((p, i) => {
      const q = reference[i]!;
      assert.equal(p.kind, q.kind, name);
      if (p.kind === 'udp' && q.kind === 'udp') {
        assert.deepEqual([p.src, p.dst, [...p.data]], [q.src, q.dst, [...q.data]], name);
        assert.ok(Math.abs(p.at - q.at) < 0.002, `${name}: ${p.at} vs ${q.at}`);
      }
    });
  }
});

test('pcapng: interface description with if_tsresol, enhanced packet blocks with direction flags', () => {
  const pkt = buildIpv4Udp(0xc0a8010a, 50000, 0xc6336401, 3544, new Uint8Array(40));
  const blocks: Buffer[] = [];
  const block = (type: number, body: Buffer) => {
    const len = 12 + body.length;
    const b = Buffer.alloc(len);
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(len, 4);
    body.copy(b, 8);
    b.writeUInt32LE(len, len - 4);
    blocks.push(b);
  };
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeBigInt64LE(-1n, 8);
  block(0x0a0d0d0a, shb);
  // IDB: LINKTYPE_RAW, if_tsresol = 9 (nanoseconds).
  const idb = Buffer.alloc(8 + 8 + 4);
  idb.writeUInt16LE(LINKTYPE.RAW, 0);
  idb.writeUInt32LE(0, 4);
  idb.writeUInt16LE(9, 8);
  idb.writeUInt16LE(1, 10);
  idb[12] = 9;
  block(1, idb);
  const padded = Buffer.concat([Buffer.from(pkt), Buffer.alloc((4 - (pkt.length % 4)) % 4)]);
  const epb = Buffer.alloc(20 + padded.length + 8 + 4);
  const ts = 1_500_000_000_123_456_789n;
  epb.writeUInt32LE(0, 0);
  epb.writeUInt32LE(Number(ts >> 32n), 4);
  epb.writeUInt32LE(Number(ts & 0xffffffffn), 8);
  epb.writeUInt32LE(pkt.length, 12);
  epb.writeUInt32LE(pkt.length, 16);
  padded.copy(epb, 20);
  epb.writeUInt16LE(2, 20 + padded.length);
  epb.writeUInt16LE(4, 22 + padded.length);
  epb.writeUInt32LE(2, 24 + padded.length); // outbound
  block(6, epb);
  const cap = readCapture(Buffer.concat(blocks));
  assert.equal(cap.format, 'pcapng');
  assert.equal(cap.problem, undefined);
  assert.equal(cap.packets.length, 1);
  const p = cap.packets[0]!;
  assert.equal(p.kind, 'udp');
  assert.equal(p.dir, 'out');
  assert.ok(Math.abs(p.at - 1_500_000_000_123.4568) < 0.001, String(p.at));
});

test('damaged input: a truncated capture gives the packets before the damage and says where; junk is refused', () => {
  const raw = pcapFromTrace(runQualify({ nat: 'full-cone' }).net.trace);
  const whole = readCapture(raw).packets.length;
  const cut = readCapture(raw.subarray(0, raw.length - 5));
  assert.equal(cut.packets.length, whole - 1);
  assert.match(cut.problem!, /record \d+: truncated data/);
  assert.throws(() => readCapture(new Uint8Array([1, 2, 3, 4, 5, 6])), /not a packet capture/);
  assert.throws(() => readCapture(new Uint8Array(2)), /too short/);
  // Every prefix of a capture reads without an exception.
  for (let n = 24; n < Math.min(raw.length, 600); n += 7) readCapture(raw.subarray(0, n));
});

test('--pcap files (PcapCapture) read back: UDP side with the wildcard address filled in, tunnel side as IPv6', () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-pcap-'));
  try {
    const base = join(dir, 'client.pcap');
    assert.deepEqual(pcapPaths(base), { outer: join(dir, 'client-udp.pcap'), tun: join(dir, 'client-tun.pcap') });
    const c = new PcapCapture(base, { localAddr: 0xc0a8010a });
    const r = runQualify({ nat: 'none' });
    const udp = r.net.trace.filter((e): e is TraceUdp => e.kind === 'udp');
    for (const e of udp) c.write({ at: 1_700_000_000_000 + e.at, dir: 'udp-out', data: e.data, src: { addr: 0, port: e.src.port }, dst: e.dst });
    const v6 = new Uint8Array(40);
    v6[0] = 0x60;
    v6[6] = 59;
    c.write({ at: 1_700_000_001_000, dir: 'tun-in', data: v6 });
    c.close();
    const u = readCapture(readFileSync(pcapPaths(base).outer));
    assert.equal(u.packets.length, udp.length);
    assert.ok(u.packets.every((p) => p.kind === 'udp' && p.src.addr === 0xc0a8010a));
    const t = readCapture(readFileSync(pcapPaths(base).tun));
    assert.equal(t.packets.length, 1);
    assert.equal(t.packets[0]!.kind, 'ipv6');
    assert.equal(Math.round(t.packets[0]!.at), 1_700_000_001_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('transit6 trace FILE: the ladder, --svg, and one-line usage errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-trace-'));
  try {
    const f = join(dir, 'q.pcap');
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
    assert.equal(await main(['sim', 'qualify', '--nat', 'port-restricted', '--pcap', f], { out: () => {}, err: () => {} }), 0);
    assert.equal(await main(['trace', f, '--svg', join(dir, 'q.svg'), '--width', '100'], io), 0);
    const text = out.join('\n');
    assert.match(text, /client\s+NAT\s+server/);
    assert.match(text, /RS with cone flag/);
    assert.ok(text.split('\n').every((l) => l.length <= 100 || l.startsWith('#')));
    assert.match(readFileSync(join(dir, 'q.svg'), 'utf8'), /^<\?xml|^<svg/);
    err.length = 0;
    assert.equal(await main(['trace', join(dir, 'missing.pcap')], io), 2);
    assert.match(err.join('\n'), /no such file/);
    assert.equal(await main(['trace', f, '--count', '3'], io), 2);
    assert.equal(await main(['trace', f, '--server', '1.2.3'], io), 2);
    assert.equal(await main(['trace', '--help'], io), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--pcap appends to its own capture (a restart) and refuses to overwrite another file', () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-pcap-'));
  try {
    const base = join(dir, 'c');
    const v6 = new Uint8Array(40);
    v6[0] = 0x60;
    for (let round = 0; round < 2; round++) {
      const c = new PcapCapture(base);
      c.write({ at: 1_700_000_000_000 + round, dir: 'tun-out', data: v6 });
      c.write({ at: 1_700_000_000_000 + round, dir: 'udp-in', data: v6, src: { addr: 1, port: 2 }, dst: { addr: 3, port: 4 } });
      c.close();
    }
    assert.equal(readCapture(readFileSync(pcapPaths(base).tun)).packets.length, 2);
    assert.equal(readCapture(readFileSync(pcapPaths(base).outer)).packets.length, 2);
    writeFileSync(join(dir, 'other-udp.pcap'), 'not a capture, and not ours to overwrite');
    assert.throws(() => new PcapCapture(join(dir, 'other')), /exists and is not a raw-IP capture written by transit6/);
    assert.equal(readFileSync(join(dir, 'other-udp.pcap'), 'utf8'), 'not a capture, and not ours to overwrite');
    assert.throws(() => new PcapCapture(join(dir, 'missing', 'c')), /--pcap: cannot open .*: no such directory/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pcapng written by tshark and mergecap (two interfaces) reads like the classic file', { skip: spawnSync('mergecap', ['-v']).status !== 0 ? 'mergecap (tshark) is not installed' : false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-pcapng-'));
  try {
    const r = runTraceScenario('relay');
    const udp = join(dir, 'udp.pcap');
    const v6 = join(dir, 'v6.pcap');
    writeFileSync(udp, pcapFromTrace(r.net.trace, (e) => e.kind === 'udp'));
    writeFileSync(v6, pcapFromTrace(r.net.trace, (e) => e.kind === 'ipv6'));
    const merged = join(dir, 'merged.pcapng');
    const m = spawnSync('mergecap', ['-F', 'pcapng', '-w', merged, udp, v6], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    const classic = readCapture(pcapFromTrace(r.net.trace));
    const ng = readCapture(readFileSync(merged));
    assert.equal(ng.format, 'pcapng');
    assert.equal(ng.problem, undefined);
    assert.equal(ng.packets.length, classic.packets.length);
    const key = (p: (typeof ng.packets)[number]) => `${p.at.toFixed(3)} ${p.kind} ${Buffer.from(p.kind === 'udp' ? p.data : p.packet).toString('hex')}`;
    assert.deepEqual(ng.packets.map(key).sort(), classic.packets.map(key).sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
