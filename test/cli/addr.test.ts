// `transit6 addr`: the seeds' and RFCs' address examples through decode and encode, every JSON key, and every
// error path (exit 2, one line on stderr, no stack).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../src/core/errors.js';
import { addrCommand } from '../../src/cli/addr.js';
import { explainIpv6 } from '../../src/cli/explain.js';
import { EXIT_USAGE, type CliIo } from '../../src/cli/io.js';
import { parseIpv6 } from '../../src/wire/ip.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Runs addrCommand the way src/cli/main.ts does: a UsageError becomes "transit6 addr: <message>" and exit 2. */
function run(...argv: string[]): Run {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  let code: number;
  try {
    code = addrCommand(argv, io);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`transit6 addr: ${e.message}`);
    code = EXIT_USAGE;
  }
  return { code, out: out.join('\n'), err: err.join('\n') };
}

type Json = Record<string, unknown>;

/** Runs with --json and parses stdout, which must be exactly one JSON object. */
function json(...argv: string[]): Json {
  const r = run(...argv, '--json');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  const v: unknown = JSON.parse(r.out);
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v));
  return v as Json;
}

function keys(v: Json): string[] {
  return Object.keys(v).sort();
}

function steps(v: Json): string[] {
  assert.ok(Array.isArray(v.steps));
  for (const s of v.steps) assert.equal(typeof s, 'string');
  return v.steps as string[];
}

function hasStep(v: Json, text: string): void {
  assert.ok(steps(v).some((s) => s.includes(text)), `no step contains ${JSON.stringify(text)}:\n${steps(v).join('\n')}`);
}

const TEREDO_KEYS = ['address', 'cone', 'flags', 'group', 'kind', 'mappedAddress', 'mappedPort', 'prefix', 'randomBits', 'reserved', 'server', 'steps', 'universal'];

// ---------------------------------------------------------------------------------------------------------
// Teredo

test('seed 001: 2001:0:1117:34fa:1027:374b:e1fc:f635 → server 17.23.52.250, NAT 30.3.9.202:51380', () => {
  const v = json('decode', '2001:0:1117:34fa:1027:374b:e1fc:f635');
  assert.deepEqual(keys(v), TEREDO_KEYS);
  assert.equal(v.kind, 'teredo');
  assert.equal(v.address, '2001:0:1117:34fa:1027:374b:e1fc:f635');
  assert.equal(v.prefix, '2001::/32');
  assert.equal(v.server, '17.23.52.250');
  assert.equal(v.flags, '0x1027');
  assert.equal(v.cone, false);
  assert.equal(v.reserved, false);
  assert.equal(v.universal, false);
  assert.equal(v.group, false);
  assert.equal(v.randomBits, '0x427');
  assert.equal(v.mappedPort, 51380);
  assert.equal(v.mappedAddress, '30.3.9.202');
  // The arithmetic as the seed does it by hand.
  hasStep(v, '1117:34fa → 0x11=17 0x17=23 0x34=52 0xfa=250 → server 17.23.52.250');
  hasStep(v, '1027 = 0001 0000 0010 0111: C=0 R=0 U=0 G=0, random bits 0100 00100111 = 0x427');
  hasStep(v, '374b XOR ffff = c8b4 = 51380');
  hasStep(v, 'e1fc:f635 XOR ffff:ffff = 1e03:09ca → 30.3.9.202');
});

test('seed 001 as text: a title with the kind, aligned fields, then the steps', () => {
  const r = run('decode', '2001:0:1117:34fa:1027:374b:e1fc:f635');
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  const lines = r.out.split('\n');
  assert.equal(lines[0], '2001:0:1117:34fa:1027:374b:e1fc:f635 is a Teredo address (RFC 4380)');
  const fields = lines.slice(1, lines.indexOf(''));
  assert.deepEqual(fields.map((l) => l.trim().split(':')[0]), [
    'kind', 'prefix', 'server', 'flags', 'cone', 'reserved', 'universal', 'group', 'randomBits', 'mappedPort', 'mappedAddress',
  ]);
  // Aligned: every value starts in the same column.
  const columns = new Set(fields.map((l) => /^\s+\S+:\s+/.exec(l)![0].length));
  assert.equal(columns.size, 1, fields.join('\n'));
  assert.ok(fields.includes('  kind:           teredo'), fields.join('\n'));
  assert.ok(fields.includes('  server:         17.23.52.250'));
  assert.ok(fields.includes('  cone:           no'));
  assert.ok(fields.includes('  mappedPort:     51380'));
  assert.ok(fields.includes('  mappedAddress:  30.3.9.202'));
  assert.equal(lines[fields.length + 2], 'how:');
  assert.match(r.out, /^ {3}2\. 1117:34fa → 0x11=17 0x17=23 0x34=52 0xfa=250 → server 17\.23\.52\.250$/m);
  assert.match(r.out, /^ {3}\d\. e1fc:f635 XOR ffff:ffff = 1e03:09ca → 30\.3\.9\.202 /m);
});

test('white paper client A as printed (2001::CE49:7601:E866:FFFF:62C3:FFFE) decodes to port 0: the paper has a typo', () => {
  // The paper says port 4096, whose obfuscated form is EFFF (0x1000 XOR 0xFFFF); it printed FFFF, which decodes to
  // port 0. We decode what is written and say so. Its flags E866 = 1110 1000 0110 0110 also have R=1.
  const v = json('decode', '2001::CE49:7601:E866:FFFF:62C3:FFFE');
  assert.deepEqual(keys(v), TEREDO_KEYS);
  assert.equal(v.address, '2001:0:ce49:7601:e866:ffff:62c3:fffe');
  assert.equal(v.server, '206.73.118.1');
  assert.equal(v.cone, true);
  assert.equal(v.reserved, true);
  assert.equal(v.universal, false);
  assert.equal(v.group, false);
  assert.equal(v.flags, '0xe866');
  assert.equal(v.randomBits, '0xa66');
  assert.equal(v.mappedAddress, '157.60.0.1');
  assert.equal(v.mappedPort, 0);
  hasStep(v, 'ce49:7601 → 0xce=206 0x49=73 0x76=118 0x01=1 → server 206.73.118.1');
  hasStep(v, 'ffff XOR ffff = 0000 = 0');
  hasStep(v, 'note: mapped port 0 cannot be a NAT mapping');
  hasStep(v, 'note: R=1');
  hasStep(v, '62c3:fffe XOR ffff:ffff = 9d3c:0001 → 157.60.0.1');
});

test('white paper client A encoded with its real port 4096 gives …:e866:efff:62c3:fffe', () => {
  // --flags reproduces the paper's E866 exactly (R=1 included).
  const r = run('encode', 'teredo', '--server', '206.73.118.1', '--mapped', '157.60.0.1:4096', '--flags', 'e866');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.split('\n')[0], '2001:0:ce49:7601:e866:efff:62c3:fffe');
  const v = json('encode', 'teredo', '--server', '206.73.118.1', '--mapped', '157.60.0.1:4096', '--flags', '0xE866');
  assert.equal(v.address, '2001:0:ce49:7601:e866:efff:62c3:fffe');
  assert.equal(v.mappedPort, 4096);
  hasStep(v, 'efff XOR ffff = 1000 = 4096');
  // --cone with the same random bits: R stays 0 as RFC 5991 §4 asks, so the flags are a866, not e866.
  const c = json('encode', 'teredo', '--server', '206.73.118.1', '--mapped', '157.60.0.1:4096', '--cone', '--random', 'a66');
  assert.equal(c.address, '2001:0:ce49:7601:a866:efff:62c3:fffe');
  assert.equal(c.reserved, false);
  assert.equal(c.cone, true);
});

test('white paper client B: 2001::CE49:7601:2CAD:DFFF:7C94:FFFE → 131.107.0.1:8192, restricted NAT', () => {
  const v = json('decode', '2001::CE49:7601:2CAD:DFFF:7C94:FFFE');
  assert.equal(v.server, '206.73.118.1');
  assert.equal(v.cone, false);
  assert.equal(v.reserved, false);
  assert.equal(v.mappedAddress, '131.107.0.1');
  assert.equal(v.mappedPort, 8192);
  assert.equal(v.randomBits, '0xbad');
  hasStep(v, 'dfff XOR ffff = 2000 = 8192');
  hasStep(v, '7c94:fffe XOR ffff:ffff = 836b:0001 → 131.107.0.1');
  // Both ways: its flags are C=0 plus the random bits 0xbad.
  for (const extra of [['--flags', '2cad'], ['--random', 'bad'], ['--random', '0xBAD']]) {
    const e = json('encode', 'teredo', '--server', '206.73.118.1', '--mapped', '131.107.0.1:8192', ...extra);
    assert.equal(e.address, '2001:0:ce49:7601:2cad:dfff:7c94:fffe', extra.join(' '));
  }
});

test('RFC 4380 §4 example: 2001:0000:4136:e378:8000:63bf:3fff:fdd2 → 65.54.227.120, cone, 192.0.2.45:40000', () => {
  const v = json('decode', '2001:0000:4136:e378:8000:63bf:3fff:fdd2');
  assert.equal(v.address, '2001:0:4136:e378:8000:63bf:3fff:fdd2');
  assert.equal(v.server, '65.54.227.120');
  assert.equal(v.flags, '0x8000');
  assert.equal(v.cone, true);
  assert.equal(v.randomBits, '0x000');
  assert.equal(v.mappedPort, 40000);
  assert.equal(v.mappedAddress, '192.0.2.45');
  const r = run('encode', 'teredo', '--server', '65.54.227.120', '--mapped', '192.0.2.45:40000', '--cone');
  assert.equal(r.code, 0);
  assert.equal(r.out.split('\n')[0], '2001:0:4136:e378:8000:63bf:3fff:fdd2');
});

test('Miredo lab report §6.1: 2001:0:c633:6401:8c0:96eb:34ff:8efe → 198.51.100.1, 203.0.113.1:26900', () => {
  const v = json('decode', '2001:0:c633:6401:8c0:96eb:34ff:8efe');
  assert.equal(v.server, '198.51.100.1');
  assert.equal(v.flags, '0x08c0');
  assert.equal(v.cone, false);
  assert.equal(v.mappedPort, 26900);
  assert.equal(v.mappedAddress, '203.0.113.1');
  // The report says "random bits 0x0c0", the low eight bits only; RFC 5991 §4 also counts the AAAA after C and R
  // (0010 here), so the 12-bit value is 0x2c0.
  assert.equal(v.randomBits, '0x2c0');
  hasStep(v, 'c633:6401 → 0xc6=198 0x33=51 0x64=100 0x01=1 → server 198.51.100.1');
  hasStep(v, '96eb XOR ffff = 6914 = 26900');
  hasStep(v, '34ff:8efe XOR ffff:ffff = cb00:7101 → 203.0.113.1');
  // The full-cone client's static mapping 203.0.113.33:45454 ends in …:4e71:34ff:8ede.
  const fc = json('encode', 'teredo', '--server', '198.51.100.1', '--mapped', '203.0.113.33:45454');
  assert.match(String(fc.address), /:4e71:34ff:8ede$/);
});

test('the legacy prefix 3ffe:831f::/32 decodes and encodes', () => {
  const v = json('decode', '3ffe:831f:4136:e378:8000:63bf:3fff:fdd2');
  assert.deepEqual(keys(v), TEREDO_KEYS);
  assert.equal(v.prefix, '3ffe:831f::/32 (legacy)');
  assert.equal(v.server, '65.54.227.120');
  assert.equal(v.mappedAddress, '192.0.2.45');
  hasStep(v, 'legacy');
  const e = json('encode', 'teredo', '--server', '65.54.227.120', '--mapped', '192.0.2.45:40000', '--cone', '--legacy-prefix');
  assert.equal(e.address, '3ffe:831f:4136:e378:8000:63bf:3fff:fdd2');
});

test('Teredo encode → decode round trips', () => {
  for (const [server, mapped, cone, random] of [
    ['17.23.52.250', '30.3.9.202:51380', false, '427'],
    ['65.54.227.120', '192.0.2.45:40000', true, '0'],
    ['198.51.100.1', '203.0.113.1:1', false, 'fff'],
    ['0.0.0.1', '255.255.255.254:65535', true, '800'],
  ] as const) {
    const args = ['encode', 'teredo', '--server', server, '--mapped', mapped, '--random', random, ...(cone ? ['--cone'] : [])];
    const e = json(...args);
    const d = json('decode', String(e.address));
    assert.deepEqual(d, e);
    assert.equal(d.server, server);
    assert.equal(`${String(d.mappedAddress)}:${String(d.mappedPort)}`, mapped);
    assert.equal(d.cone, cone);
    assert.equal(d.randomBits, `0x${random.padStart(3, '0')}`);
    assert.equal(d.reserved, false);
  }
  // Without --random the output is reproducible: random bits 0.
  assert.equal(json('encode', 'teredo', '--server', '17.23.52.250', '--mapped', '30.3.9.202:51380').flags, '0x0000');
});

// ---------------------------------------------------------------------------------------------------------
// ISATAP

const ISATAP_KEYS = ['address', 'group', 'ipv4', 'ipv4Public', 'kind', 'mixedNotation', 'prefix', 'prefixType', 'steps'];

test('white paper ISATAP link-local examples: FE80::5EFE:10.40.1.29, FE80::5EFE:192.168.41.30%7, FE80::5EFE:10.0.0.1', () => {
  for (const [text, ipv4, canonical] of [
    ['FE80::5EFE:10.40.1.29', '10.40.1.29', 'fe80::5efe:a28:11d'],
    ['FE80::5EFE:192.168.41.30%7', '192.168.41.30', 'fe80::5efe:c0a8:291e'],
    ['FE80::5EFE:10.0.0.1', '10.0.0.1', 'fe80::5efe:a00:1'],
  ] as const) {
    const v = json('decode', text);
    assert.deepEqual(keys(v), ISATAP_KEYS);
    assert.equal(v.kind, 'isatap', 'isatap takes precedence over link-local');
    assert.equal(v.address, canonical);
    assert.equal(v.ipv4, ipv4);
    assert.equal(v.ipv4Public, false);
    assert.equal(v.group, false);
    assert.equal(v.prefix, 'fe80::/64');
    assert.equal(v.prefixType, 'link-local');
    assert.equal(v.mixedNotation, `fe80::5efe:${ipv4}`);
    hasStep(v, 'link-local scope');
    hasStep(v, `IPv6 to this address goes over IPv4 (protocol 41) to ${ipv4}`);
    const e = json('encode', 'isatap', 'fe80::/64', ipv4);
    assert.equal(e.address, canonical);
  }
  const v = json('decode', 'fe80::5efe:192.168.41.30');
  hasStep(v, 'c0a8:291e → 0xc0=192 0xa8=168 0x29=41 0x1e=30 → 192.168.41.30');
  hasStep(v, 'u-bit 0 (private IPv4 address)');
});

test('white paper ISATAP addressing example: 2001:DB8:0:7:0:5EFE:192.168.47.99 and 2001:DB8:0:7:200:5EFE:131.107.71.209', () => {
  const a = json('decode', '2001:DB8:0:7:0:5EFE:192.168.47.99');
  assert.deepEqual(keys(a), ISATAP_KEYS);
  assert.equal(a.kind, 'isatap');
  assert.equal(a.ipv4, '192.168.47.99');
  assert.equal(a.ipv4Public, false);
  assert.equal(a.prefix, '2001:db8:0:7::/64');
  assert.equal(a.prefixType, 'documentation');
  assert.equal(a.mixedNotation, '2001:db8:0:7:0:5efe:192.168.47.99');
  const b = json('decode', '2001:DB8:0:7:200:5EFE:131.107.71.209');
  assert.equal(b.address, '2001:db8:0:7:200:5efe:836b:47d1');
  assert.equal(b.ipv4, '131.107.71.209');
  assert.equal(b.ipv4Public, true);
  hasStep(b, 'u-bit 1 (public IPv4 address)');
  hasStep(b, '836b:47d1 → 0x83=131 0x6b=107 0x47=71 0xd1=209 → 131.107.71.209');
  // Encoding picks the u-bit from the IPv4 address.
  const r = run('encode', 'isatap', '2001:db8:0:7::/64', '192.168.47.99');
  assert.equal(r.code, 0);
  assert.deepEqual(r.out.split('\n').slice(0, 2), ['2001:db8:0:7:0:5efe:c0a8:2f63', '2001:db8:0:7:0:5efe:192.168.47.99']);
  assert.equal(json('encode', 'isatap', '2001:db8:0:7::/64', '131.107.71.209').address, '2001:db8:0:7:200:5efe:836b:47d1');
});

test('ISATAP under a unique local prefix (seed 000: fdcc:7c4e:3651:2002::/64) and the group form', () => {
  const v = json('decode', 'fdcc:7c4e:3651:2002:0:5efe:10.0.0.1');
  assert.equal(v.kind, 'isatap');
  assert.equal(v.prefixType, 'unique-local');
  const g = json('decode', 'fe80::100:5efe:10.0.0.1');
  assert.equal(g.kind, 'isatap');
  assert.equal(g.group, true);
  hasStep(g, 'g-bit is set');
  // A u-bit that disagrees with the address is pointed out.
  hasStep(json('decode', 'fe80::200:5efe:10.0.0.1'), 'note: the u-bit says public, but 10.0.0.1 is in 10.0.0.0/8');
});

// ---------------------------------------------------------------------------------------------------------
// 6to4

const SIXTOFOUR_KEYS = ['address', 'hostForm', 'interfaceId', 'ipv4', 'kind', 'prefix', 'steps', 'subnet'];

test('white paper 6to4 example: 2002:9D3C:1:1::1 (Host A) and 2002:836B:1::836B:1 (host/router B)', () => {
  const a = json('decode', '2002:9D3C:1:1::1');
  assert.deepEqual(keys(a), SIXTOFOUR_KEYS);
  assert.equal(a.kind, '6to4');
  assert.equal(a.address, '2002:9d3c:1:1::1');
  assert.equal(a.ipv4, '157.60.0.1');
  assert.equal(a.prefix, '2002:9d3c:1::/48');
  assert.equal(a.subnet, 1);
  assert.equal(a.interfaceId, '0:0:0:1');
  assert.equal(a.hostForm, false);
  hasStep(a, '9d3c:0001 → 0x9d=157 0x3c=60 0x00=0 0x01=1 → 157.60.0.1: WWXX:YYZZ → w.x.y.z');
  hasStep(a, 'subnet (SLA ID) 0001 = 1 → the /64 2002:9d3c:1:1::/64');
  const b = json('decode', '2002:836B:1::836B:1');
  assert.deepEqual(keys(b), SIXTOFOUR_KEYS);
  assert.equal(b.ipv4, '131.107.0.1');
  assert.equal(b.subnet, 0);
  assert.equal(b.interfaceId, '0:0:836b:1');
  assert.equal(b.hostForm, true);
  hasStep(b, 'the host form 2002:WWXX:YYZZ:SSSS::WWXX:YYZZ');
});

test('white paper ICS prefix 2002:836B:1759:5::/64 (131.107.23.89, interface index 5)', () => {
  const v = json('decode', '2002:836B:1759:5::/64');
  assert.equal(v.ipv4, '131.107.23.89');
  assert.equal(v.subnet, 5);
  hasStep(v, '/64 given');
  for (const subnet of ['5', '0x5', '0x0005']) {
    const r = run('encode', '6to4', '131.107.23.89', '--subnet', subnet);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.out.split('\n').slice(0, 2), ['2002:836b:1759::/48', '2002:836b:1759:5::/64']);
  }
});

test('an ISATAP host inside a 6to4 site: 2002:9d36:1:2:0:5efe:10.0.0.1 is 6to4, with the ISATAP IPv4 noted', () => {
  const v = json('decode', '2002:9d36:1:2:0:5efe:10.0.0.1');
  assert.deepEqual(keys(v), [...SIXTOFOUR_KEYS, 'isatapIpv4'].sort());
  assert.equal(v.kind, '6to4');
  assert.equal(v.ipv4, '157.54.0.1');
  assert.equal(v.subnet, 2);
  assert.equal(v.interfaceId, '0:5efe:a00:1');
  assert.equal(v.isatapIpv4, '10.0.0.1');
  hasStep(v, 'ISATAP host 10.0.0.1');
});

test('encode 6to4: the /48 and a /64, or with --host the host-form address', () => {
  const r = run('encode', '6to4', '157.60.0.1', '--subnet', '1');
  assert.equal(r.code, 0);
  assert.deepEqual(r.out.split('\n').slice(0, 2), ['2002:9d3c:1::/48', '2002:9d3c:1:1::/64']);
  const p = json('encode', '6to4', '157.60.0.1', '--subnet', '1');
  assert.deepEqual(keys(p), ['ipv4', 'kind', 'prefix', 'steps', 'subnet', 'subnetPrefix']);
  assert.equal(p.kind, '6to4');
  assert.equal(p.prefix, '2002:9d3c:1::/48');
  assert.equal(p.subnetPrefix, '2002:9d3c:1:1::/64');
  assert.equal(p.subnet, 1);
  hasStep(p, '157.60.0.1 → 157=0x9d 60=0x3c 0=0x00 1=0x01 → WWXX:YYZZ 9d3c:0001');
  const h = run('encode', '6to4', '131.107.0.1', '--host');
  assert.equal(h.out.split('\n')[0], '2002:836b:1::836b:1');
  const hj = json('encode', '6to4', '131.107.0.1', '--host', '--subnet', '0x10');
  assert.equal(hj.address, '2002:836b:1:10::836b:1');
  assert.equal(hj.hostForm, true);
  // Documentation ranges count as public.
  assert.equal(json('encode', '6to4', '203.0.113.1').prefix, '2002:cb00:7101::/48');
});

test('the 6to4 relay anycast 2002:c058:6301:: is named, with its deprecation', () => {
  hasStep(json('decode', '2002:c058:6301::'), '192.88.99.1 is the 6to4 relay anycast address (RFC 3068), deprecated by RFC 7526');
});

// ---------------------------------------------------------------------------------------------------------
// Multicast and the other kinds

const MULTICAST_KEYS = ['address', 'flags', 'group', 'kind', 'scope', 'scopeValue', 'steps'];

test('seed 001: ff02::1:ff00:254 is the solicited-node group of 2dcc:7c4e:3651:52::254', () => {
  const v = json('decode', 'ff02::1:ff00:254');
  assert.deepEqual(keys(v), [...MULTICAST_KEYS, 'groupName', 'solicitedNodeFor'].sort());
  assert.equal(v.kind, 'multicast');
  assert.deepEqual(v.flags, { R: false, P: false, T: false });
  assert.equal(v.scope, 'link-local');
  assert.equal(v.scopeValue, 2);
  assert.equal(v.group, '::1:ff00:254');
  assert.equal(v.groupName, 'solicited-node');
  assert.equal(v.solicitedNodeFor, '…:xx00:254');
  hasStep(v, 'the last 24 bits 00:0254');
  // And the other way: the unicast address names its solicited-node group.
  const u = json('decode', '2dcc:7c4e:3651:52::254');
  assert.equal(u.kind, 'global-unicast');
  hasStep(u, 'ff02::1:ff00:254');
});

test('seed 000: fe80::2aa:ff:fe28:9c5a is EUI-64 from MAC 00:aa:00:28:9c:5a, solicited-node ff02::1:ff28:9c5a', () => {
  const v = json('decode', 'FE80::2AA:FF:FE28:9C5A');
  assert.deepEqual(keys(v), ['address', 'eui64', 'interfaceId', 'kind', 'mac', 'steps']);
  assert.equal(v.kind, 'link-local');
  assert.equal(v.interfaceId, '2aa:ff:fe28:9c5a');
  assert.equal(v.eui64, true);
  assert.equal(v.mac, '00:aa:00:28:9c:5a');
  hasStep(v, 'ff02::1:ff28:9c5a');
  const m = json('decode', 'FF02::1:FF28:9C5A');
  assert.equal(m.solicitedNodeFor, '…:xx28:9c5a');
  hasStep(m, 'fe80::28:9c5a');
  // Teredo's fixed link-local address (seed 001's RS source) is not EUI-64.
  const t = json('decode', 'fe80::ffff:ffff:fffe');
  assert.deepEqual(keys(t), ['address', 'eui64', 'interfaceId', 'kind', 'steps']);
  assert.equal(t.eui64, false);
});

test('well-known multicast groups are named', () => {
  for (const [addr, name, scope] of [
    ['ff02::1', 'all-nodes', 'link-local'],
    ['ff01::1', 'all-nodes', 'interface-local'],
    ['ff02::2', 'all-routers', 'link-local'],
    ['ff05::2', 'all-routers', 'site-local'],
    ['ff02::1:2', 'dhcp', 'link-local'],
    ['ff05::1:3', 'dhcp-servers', 'site-local'],
    ['ff02::1:3', 'llmnr', 'link-local'],
    ['ff02::fb', 'mdns', 'link-local'],
    ['ff0e::101', 'ntp', 'global'],
    ['ff08::c', 'ssdp', 'organization-local'],
  ] as const) {
    const v = json('decode', addr);
    assert.equal(v.groupName, name, addr);
    assert.equal(v.scope, scope, addr);
  }
  const p = json('decode', 'ff3e:30:2001:db8::1');
  assert.deepEqual(keys(p), MULTICAST_KEYS);
  assert.deepEqual(p.flags, { R: false, P: true, T: true });
  assert.equal(p.scope, 'global');
  assert.equal(p.scopeValue, 14);
  const r = json('decode', 'ff75:140:2001:db8::1');
  assert.deepEqual(r.flags, { R: true, P: true, T: true });
});

test('every other kind, with its keys', () => {
  const cases: [string, string, string[], Json][] = [
    ['::', 'unspecified', [], {}],
    ['::1', 'loopback', [], {}],
    ['::ffff:192.0.2.1', 'ipv4-mapped', ['ipv4', 'mixedNotation'], { ipv4: '192.0.2.1', mixedNotation: '::ffff:192.0.2.1' }],
    ['::192.0.2.1', 'ipv4-compatible', ['ipv4', 'mixedNotation'], { ipv4: '192.0.2.1', mixedNotation: '::192.0.2.1' }],
    ['64:ff9b::192.0.2.33', 'nat64', ['ipv4', 'mixedNotation'], { ipv4: '192.0.2.33', address: '64:ff9b::c000:221' }],
    ['100::1', 'discard', [], {}],
    ['fd12:3456:789a:1::1', 'unique-local', ['globalId', 'interfaceId', 'lBit', 'subnetId'],
      { lBit: true, globalId: '0x123456789a', subnetId: 1, interfaceId: '0:0:0:1' }],
    ['fc00::1', 'unique-local', ['globalId', 'interfaceId', 'lBit', 'subnetId'], { lBit: false }],
    ['fec0::1:2', 'site-local', ['interfaceId', 'subnetId'], { subnetId: '0x0', interfaceId: '0:0:1:2' }],
    ['2001:db8::1', 'documentation', ['interfaceId'], { interfaceId: '0:0:0:1' }],
    ['2400:cb00::1', 'global-unicast', ['interfaceId'], { interfaceId: '0:0:0:1' }],
    ['4000::1', 'reserved', [], {}],
    ['fe80::1', 'link-local', ['eui64', 'interfaceId'], { eui64: false }],
  ];
  for (const [addr, kind, extra, expect] of cases) {
    const v = json('decode', addr);
    assert.equal(v.kind, kind, addr);
    assert.deepEqual(keys(v), ['address', 'kind', 'steps', ...extra].sort(), addr);
    for (const [k, x] of Object.entries(expect)) assert.deepEqual(v[k], x, `${addr} ${k}`);
    assert.ok(steps(v).length > 0);
  }
});

test('an IPv4 address gets a note: its 6to4 prefix and ISATAP identifiers', () => {
  const pub = json('decode', '131.107.0.1');
  assert.deepEqual(keys(pub), ['address', 'global', 'ipv4Mapped', 'isatapInterfaceId', 'isatapLinkLocal', 'kind', 'nat64', 'sixToFourPrefix', 'steps']);
  assert.equal(pub.kind, 'ipv4');
  assert.equal(pub.global, true);
  assert.equal(pub.sixToFourPrefix, '2002:836b:1::/48');
  assert.equal(pub.isatapInterfaceId, '::200:5efe:131.107.0.1');
  assert.equal(pub.isatapLinkLocal, 'fe80::200:5efe:131.107.0.1');
  assert.equal(pub.ipv4Mapped, '::ffff:131.107.0.1');
  assert.equal(pub.nat64, '64:ff9b::131.107.0.1');
  hasStep(pub, 'is an IPv4 address, not IPv6');
  const priv = json('decode', '192.168.41.30');
  assert.deepEqual(keys(priv), ['address', 'global', 'ipv4Mapped', 'isatapInterfaceId', 'isatapLinkLocal', 'kind', 'range', 'sixToFourRefusal', 'steps']);
  assert.equal(priv.global, false);
  assert.equal(priv.range, '192.168.0.0/16 private (RFC 1918)');
  assert.match(String(priv.sixToFourRefusal), /private \(RFC 1918\)/);
  assert.equal(priv.isatapLinkLocal, 'fe80::5efe:192.168.41.30');
  const text = run('decode', '131.107.0.1');
  assert.equal(text.code, 0);
  assert.equal(text.out.split('\n')[0], '131.107.0.1 is an IPv4 address, not IPv6');
});

test('explainIpv6 is pure and wants 16 bytes', () => {
  const a = parseIpv6('2001:0:1117:34fa:1027:374b:e1fc:f635')!;
  assert.deepEqual(explainIpv6(a), explainIpv6(a));
  assert.throws(() => explainIpv6(new Uint8Array(15)), RangeError);
});

// ---------------------------------------------------------------------------------------------------------
// Help and errors

test('--help everywhere, with examples', () => {
  for (const argv of [['--help'], ['decode', '--help'], ['encode', '--help'], ['encode', 'teredo', '--help'], ['encode', '6to4', '-h'], ['encode', 'isatap', '--help']]) {
    const r = run(...argv);
    assert.equal(r.code, 0, argv.join(' '));
    assert.equal(r.err, '');
    assert.match(r.out, /^usage: transit6 addr/, argv.join(' '));
    assert.match(r.out, /\nexamples:\n/, argv.join(' '));
  }
});

test('every error path: exit 2 and one line on stderr, no stack', () => {
  const cases: [string[], string][] = [
    [[], "addr wants decode or encode (try 'transit6 addr --help')"],
    [['frob'], "unknown subcommand 'frob'"],
    [['decode'], 'decode wants an address'],
    [['decode', 'a', 'b'], 'decode takes one address, got 2'],
    [['decode', 'nonsense'], "'nonsense' is not an IPv6 address"],
    [['decode', '2001::zz'], "'2001::zz' is not an IPv6 address"],
    [['decode', '1:2:3:4:5:6:7:8:9'], 'is not an IPv6 address'],
    [['decode', '300.1.1.1'], "'300.1.1.1' is not an IPv4 address"],
    [['decode', '2001::/129'], "'2001::/129' is not an IPv6 address or prefix"],
    [['decode', '--bogus'], "unknown option '--bogus' (try 'transit6 addr decode --help')"],
    [['encode'], 'encode wants teredo, 6to4 or isatap'],
    [['encode', 'nat64'], "cannot encode 'nat64'"],
    [['encode', 'teredo'], 'encode teredo needs --server A.B.C.D'],
    [['encode', 'teredo', '--server', '1.2.3.4'], 'encode teredo needs --mapped A.B.C.D:PORT'],
    [['encode', 'teredo', '--server'], "option '--server <value>' argument missing"],
    [['encode', 'teredo', '--server', 'x', '--mapped', '1.2.3.4:5'], "--server wants an IPv4 address A.B.C.D, got 'x'"],
    [['encode', 'teredo', '--server', '1.2.3.4', '--mapped', '1.2.3.4'], "--mapped wants A.B.C.D:PORT, got '1.2.3.4'"],
    [['encode', 'teredo', '--server', '1.2.3.4', '--mapped', '1.2.3.4:65536'], '--mapped wants A.B.C.D:PORT'],
    [['encode', 'teredo', '--server', '1.2.3.4', '--mapped', '1.2.3.4:5', '--random', '1000'], '--random wants a 12-bit hex value 0-fff'],
    [['encode', 'teredo', '--server', '1.2.3.4', '--mapped', '1.2.3.4:5', '--random', 'zz'], '--random wants a 12-bit hex value'],
    [['encode', 'teredo', '--server', '1.2.3.4', '--mapped', '1.2.3.4:5', '--flags', '10000'], '--flags wants a 16-bit hex value'],
    [['encode', 'teredo', '--server', '1.2.3.4', '--mapped', '1.2.3.4:5', '--flags', '8000', '--cone'], 'cannot be combined with --cone or --random'],
    [['encode', 'teredo', 'x', '--server', '1.2.3.4', '--mapped', '1.2.3.4:5'], "encode teredo takes only options, not 'x'"],
    [['encode', 'teredo', '--server', '1.2.3.4', '--mapped', '1.2.3.4:5', '--host'], "unknown option '--host'"],
    [['encode', '6to4'], 'encode 6to4 wants an IPv4 address'],
    [['encode', '6to4', '1.2.3'], "'1.2.3' is not an IPv4 address"],
    [['encode', '6to4', '1.2.3.4', '5.6.7.8'], 'encode 6to4 takes one IPv4 address, got 2'],
    [['encode', '6to4', '10.0.0.1'], '10.0.0.1 is in 10.0.0.0/8, private (RFC 1918): 6to4 needs a public IPv4 address (RFC 3056 §2)'],
    [['encode', '6to4', '192.168.1.1', '--host'], 'private (RFC 1918)'],
    [['encode', '6to4', '192.88.99.1'], 'it names the relays, not a 6to4 site'],
    [['encode', '6to4', '1.2.3.4', '--subnet', '65536'], "--subnet wants a number 0-65535 (decimal or 0xHEX), got '65536'"],
    [['encode', '6to4', '1.2.3.4', '--subnet', '0xg'], '--subnet wants a number 0-65535'],
    [['encode', '6to4', '1.2.3.4', '--subnet=-1'], '--subnet wants a number 0-65535'],
    [['encode', '6to4', '1.2.3.4', '--subnet', '-1'], "option '--subnet' argument is ambiguous"],
    [['encode', 'isatap'], 'encode isatap wants PREFIX/64 IPV4'],
    [['encode', 'isatap', 'fe80::', '10.0.0.1'], "wants a /64 prefix like 2001:db8:1:2::/64, got 'fe80::' (add /64)"],
    [['encode', 'isatap', 'fe80::/48', '10.0.0.1'], 'ISATAP needs a /64 prefix'],
    [['encode', 'isatap', 'fe80::1/64', '10.0.0.1'], "'fe80::1/64' has bits set past /64"],
    [['encode', 'isatap', 'ff02::/64', '10.0.0.1'], 'is a multicast prefix'],
    [['encode', 'isatap', '2001::/64', '10.0.0.1'], 'inside the Teredo prefix'],
    [['encode', 'isatap', 'zz/64', '10.0.0.1'], "'zz/64' is not an IPv6 prefix"],
    [['encode', 'isatap', 'fe80::/64', '10.0.0'], "'10.0.0' is not an IPv4 address"],
  ];
  for (const [argv, message] of cases) {
    const r = run(...argv);
    const label = `addr ${argv.join(' ')}`;
    assert.equal(r.code, EXIT_USAGE, label);
    assert.equal(r.out, '', label);
    assert.ok(r.err.startsWith('transit6 addr: '), `${label}: ${r.err}`);
    assert.ok(r.err.includes(message), `${label}: ${r.err}`);
    assert.ok(!r.err.includes('\n'), `${label}: more than one line: ${r.err}`);
    assert.doesNotMatch(r.err, /^\s*at /m, label);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The real process

const bin = fileURLToPath(new URL('../../../bin/transit6.js', import.meta.url));
const mainLoads = existsSync(fileURLToPath(new URL('../../src/cli/sim.js', import.meta.url)));
const skip = mainLoads ? false : 'dist/src/cli/sim.js is not built yet, so the dispatcher cannot load';

test('the real process: bad input is exit 2 and one line on stderr', { skip }, () => {
  const r = spawnSync(process.execPath, [bin, 'addr', 'decode', 'nonsense'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, "transit6 addr: 'nonsense' is not an IPv6 address\n");
});

test('the real process: decode --json prints one JSON object', { skip }, () => {
  const r = spawnSync(process.execPath, [bin, 'addr', 'decode', '2001:0:1117:34fa:1027:374b:e1fc:f635', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const v = JSON.parse(r.stdout) as Json;
  assert.equal(v.mappedAddress, '30.3.9.202');
});
