import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseProxyHeader, proxyV1, proxyV2, PROXY_V2_SIGNATURE } from '../../src/portproxy/proxyheader.js';

const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');

test('PROXY v1: TCP4, TCP6, mapped IPv4 and UNKNOWN lines', () => {
  assert.equal(proxyV1({ sourceAddress: '198.51.100.22', sourcePort: 35646, destAddress: '203.0.113.1', destPort: 80 }), 'PROXY TCP4 198.51.100.22 203.0.113.1 35646 80\r\n');
  assert.equal(proxyV1({ sourceAddress: '2001:DB8::1', sourcePort: 1, destAddress: '2001:db8:0:0::2', destPort: 65535 }), 'PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n');
  assert.equal(proxyV1({ sourceAddress: '::ffff:198.51.100.22', sourcePort: 5, destAddress: '::ffff:203.0.113.1', destPort: 6 }), 'PROXY TCP4 198.51.100.22 203.0.113.1 5 6\r\n');
  assert.equal(proxyV1({ sourceAddress: '198.51.100.22', sourcePort: 5, destAddress: '2001:db8::1', destPort: 6 }), 'PROXY UNKNOWN\r\n');
  assert.equal(proxyV1({ sourceAddress: '', sourcePort: 5, destAddress: '', destPort: 6 }), 'PROXY UNKNOWN\r\n');
});

test('PROXY v2: byte layout for TCP over IPv4 and IPv6 (the spec\'s field order)', () => {
  const v4 = proxyV2({ sourceAddress: '198.51.100.22', sourcePort: 0x1234, destAddress: '203.0.113.1', destPort: 80 });
  assert.equal(hex(v4), `${hex(PROXY_V2_SIGNATURE)}2111000cc6336416cb00710112340050`);
  const v6 = proxyV2({ sourceAddress: '2001:db8::1', sourcePort: 443, destAddress: '2001:db8::2', destPort: 8443 });
  assert.equal(hex(v6), `${hex(PROXY_V2_SIGNATURE)}21210024${'20010db8000000000000000000000001'}${'20010db8000000000000000000000002'}01bb20fb`);
  const unspec = proxyV2({ sourceAddress: 'x', sourcePort: 1, destAddress: 'y', destPort: 2 });
  assert.equal(hex(unspec), `${hex(PROXY_V2_SIGNATURE)}21000000`);
});

test('parseProxyHeader reads back both versions, and reports truncated or bad input', () => {
  const c4 = { sourceAddress: '198.51.100.22', sourcePort: 35646, destAddress: '203.0.113.1', destPort: 80 };
  const c6 = { sourceAddress: '2001:db8::1', sourcePort: 1, destAddress: '2001:db8::2', destPort: 2 };
  for (const c of [c4, c6]) {
    const line = new TextEncoder().encode(`${proxyV1(c)}GET /`);
    assert.deepEqual(parseProxyHeader(line), { ok: true, version: 1, length: proxyV1(c).length, conn: c });
    const bin = proxyV2(c);
    const withData = new Uint8Array(bin.length + 3);
    withData.set(bin);
    assert.deepEqual(parseProxyHeader(withData), { ok: true, version: 2, length: bin.length, conn: c });
    assert.deepEqual(parseProxyHeader(bin.subarray(0, bin.length - 1)), { ok: false, reason: 'truncated' });
  }
  assert.deepEqual(parseProxyHeader(new TextEncoder().encode('GET / HTTP/1.1\r\n')), { ok: false, reason: 'bad-signature' });
  assert.deepEqual(parseProxyHeader(new TextEncoder().encode('PROXY TCP4 1.2.3.4')), { ok: false, reason: 'truncated' });
  assert.deepEqual(parseProxyHeader(new TextEncoder().encode('PROXY TCP4 a b 1 99999\r\n')), { ok: false, reason: 'bad-header' });
});
