// ISATAP interface identifiers and addresses (RFC 5214 §6.1), with the examples of Microsoft's IPv6 transition
// white paper (seeds/003, "ISATAP" and "ISATAP Addressing Example").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpv6, isGlobalIpv4 } from '../../src/wire/ip.js';
import { decodeIsatap, isatapAddress, isatapInterfaceId, isPrivateIpv4, specialIpv4Range } from '../../src/wire/isatap.js';
import { v4, v6 } from '../addresses.js';

const FE80 = v6('fe80::');

test('interface identifier: 0000:5efe for a private IPv4 address, 0200:5efe for a public one', () => {
  assert.deepEqual(isatapInterfaceId(v4('10.40.1.29'), false), Uint8Array.of(0x00, 0x00, 0x5e, 0xfe, 10, 40, 1, 29));
  assert.deepEqual(isatapInterfaceId(v4('131.107.71.209'), true), Uint8Array.of(0x02, 0x00, 0x5e, 0xfe, 131, 107, 71, 209));
});

test('white paper link-local examples: FE80::5EFE:w.x.y.z (Hosts A and B, the router)', () => {
  for (const [ipv4, text] of [
    ['10.40.1.29', 'FE80::5EFE:10.40.1.29'],
    ['192.168.41.30', 'FE80::5EFE:192.168.41.30'],
    ['10.0.0.1', 'FE80::5EFE:10.0.0.1'],
  ] as const) {
    const addr = isatapAddress(FE80, v4(ipv4));
    assert.deepEqual(addr, v6(text), text);
    const d = decodeIsatap(addr);
    assert.ok(d);
    assert.equal(d.ipv4, v4(ipv4));
    assert.equal(d.ipv4Public, false);
    assert.equal(d.universalLocalBit, false);
    assert.equal(d.groupBit, false);
    assert.deepEqual(d.prefix, FE80.subarray(0, 8));
  }
  assert.equal(formatIpv6(isatapAddress(FE80, v4('192.168.41.30'))), 'fe80::5efe:c0a8:291e');
});

test('white paper global example: prefix 2001:DB8:0:7::/64, Host A private, Host B public', () => {
  const prefix = v6('2001:db8:0:7::');
  assert.deepEqual(isatapAddress(prefix, v4('192.168.47.99')), v6('2001:DB8:0:7:0:5EFE:192.168.47.99'));
  assert.deepEqual(isatapAddress(prefix, v4('131.107.71.209')), v6('2001:DB8:0:7:200:5EFE:131.107.71.209'));
  // An 8-byte prefix does the same; the u-bit can be forced either way.
  assert.deepEqual(isatapAddress(prefix.subarray(0, 8), v4('131.107.71.209')), v6('2001:db8:0:7:200:5efe:836b:47d1'));
  assert.deepEqual(isatapAddress(prefix, v4('131.107.71.209'), false), v6('2001:db8:0:7:0:5efe:836b:47d1'));
  const b = decodeIsatap(v6('2001:DB8:0:7:200:5EFE:131.107.71.209'));
  assert.ok(b);
  assert.equal(b.ipv4, v4('131.107.71.209'));
  assert.equal(b.ipv4Public, true);
  assert.equal(b.universalLocalBit, true);
  assert.equal(b.groupBit, false);
  assert.deepEqual(b.prefix, prefix.subarray(0, 8));
});

test('a prefix shorter than 8 bytes is misuse', () => {
  assert.throws(() => isatapAddress(new Uint8Array(7), 1), RangeError);
});

test('decodeIsatap flags the group forms 0100:5efe and 0300:5efe and refuses other identifiers', () => {
  const g = decodeIsatap(v6('fe80::100:5efe:10.0.0.1'));
  assert.ok(g);
  assert.equal(g.groupBit, true);
  assert.equal(g.universalLocalBit, false);
  const gu = decodeIsatap(v6('fe80::300:5efe:10.0.0.1'));
  assert.ok(gu);
  assert.equal(gu.groupBit, true);
  assert.equal(gu.universalLocalBit, true);
  for (const text of ['fe80::400:5efe:10.0.0.1', 'fe80::1:5efe:10.0.0.1', 'fe80::5eff:10.0.0.1', 'fe80::5efe', 'fe80::1', '2001:db8::']) {
    assert.equal(decodeIsatap(v6(text)), undefined, text);
  }
  assert.equal(decodeIsatap(new Uint8Array(15)), undefined);
});

test('decodeIsatap inverts isatapAddress at many prefixes and addresses', () => {
  let x = 0x12345678;
  for (let i = 0; i < 200; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const prefix = new Uint8Array(8).map((_, k) => (x >>> (k * 3)) & 0xff);
    const isPublic = (x & 1) === 1;
    const addr = isatapAddress(prefix, x, isPublic);
    const d = decodeIsatap(addr);
    assert.ok(d);
    assert.equal(d.ipv4, x);
    assert.equal(d.ipv4Public, isPublic);
    assert.deepEqual(d.prefix, prefix);
  }
});

test('isPrivateIpv4: RFC 1918 and every other non-global range get the u-bit 0; documentation ranges are public', () => {
  for (const t of ['10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.47.99', '127.0.0.1', '169.254.1.1', '0.1.2.3', '224.0.0.1',
    '239.255.255.255', '240.0.0.1', '255.255.255.255', '192.88.99.1']) {
    assert.equal(isPrivateIpv4(v4(t)), true, t);
  }
  for (const t of ['131.107.71.209', '172.32.0.1', '172.15.255.255', '8.8.8.8', '192.0.2.1', '198.51.100.1', '203.0.113.1', '100.64.0.1', '198.18.0.1']) {
    assert.equal(isPrivateIpv4(v4(t)), false, t);
  }
});

test('specialIpv4Range names ranges and agrees with isGlobalIpv4 everywhere', () => {
  assert.deepEqual(specialIpv4Range(v4('192.168.41.30')), { cidr: '192.168.0.0/16', name: 'private (RFC 1918)', global: false });
  assert.deepEqual(specialIpv4Range(v4('203.0.113.1')), { cidr: '203.0.113.0/24', name: 'documentation TEST-NET-3 (RFC 5737)', global: true });
  assert.equal(specialIpv4Range(v4('255.255.255.255'))?.name, 'limited broadcast (RFC 919)');
  assert.equal(specialIpv4Range(v4('131.107.0.1')), undefined);
  for (let a = 0; a < 256; a++) {
    for (let b = 0; b < 256; b++) {
      for (const c of [0, 2, 99, 100, 113, 255]) {
        for (const d of [0, 1, 255]) {
          const ip = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
          assert.equal(specialIpv4Range(ip)?.global ?? true, isGlobalIpv4(ip));
        }
      }
    }
  }
});
