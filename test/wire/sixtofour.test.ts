// 6to4 addresses (RFC 3056 §2) with the examples of Microsoft's IPv6 transition white paper (seeds/003, "6to4
// Addressing Example" and the ICS example), both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/core/errors.js';
import { formatIpv6 } from '../../src/wire/ip.js';
import {
  checkSixToFourIpv4,
  decodeSixToFour,
  isSixToFourAddress,
  sixToFourAddress,
  sixToFourPrefix,
  sixToFourRefusal,
  SIXTOFOUR_RELAY_ANYCAST,
} from '../../src/wire/sixtofour.js';
import { v4, v6 } from '../addresses.js';

test('the 6to4 router: 157.60.0.1 → 2002:9D3C:1::/48, subnet 2002:9D3C:1:1::/64, Host A 2002:9D3C:1:1::1', () => {
  assert.deepEqual(sixToFourPrefix(v4('157.60.0.1')), v6('2002:9D3C:1::'));
  assert.deepEqual(sixToFourAddress(v4('157.60.0.1'), 1), v6('2002:9D3C:1:1::'));
  assert.deepEqual(sixToFourAddress(v4('157.60.0.1'), 1, 1n), v6('2002:9D3C:1:1::1'));
  const d = decodeSixToFour(v6('2002:9D3C:1:1::1'));
  assert.deepEqual(d, { ipv4: v4('157.60.0.1'), subnet: 1, interfaceId: 1n });
});

test('host/router B: 131.107.0.1 → the host form 2002:836B:1::836B:1', () => {
  const addr = sixToFourAddress(v4('131.107.0.1'), 0, 'ipv4');
  assert.deepEqual(addr, v6('2002:836B:1::836B:1'));
  assert.equal(formatIpv6(addr), '2002:836b:1::836b:1');
  assert.deepEqual(decodeSixToFour(addr), { ipv4: v4('131.107.0.1'), subnet: 0, interfaceId: 0x836b0001n, hostFormIpv4: v4('131.107.0.1') });
  // The host form with a subnet: 2002:WWXX:YYZZ:SSSS::WWXX:YYZZ.
  assert.deepEqual(sixToFourAddress(v4('131.107.0.1'), 7, 'ipv4'), v6('2002:836b:1:7::836b:1'));
  assert.equal(decodeSixToFour(v6('2002:836b:1:7::836b:1'))?.hostFormIpv4, v4('131.107.0.1'));
  // The same low 32 bits under another site's prefix are not the host form.
  assert.equal(decodeSixToFour(v6('2002:9d3c:1::836b:1'))?.hostFormIpv4, undefined);
});

test('ICS: 131.107.23.89 with interface index 5 → 2002:836B:1759:5::/64', () => {
  assert.deepEqual(sixToFourAddress(v4('131.107.23.89'), 5), v6('2002:836B:1759:5::'));
  assert.deepEqual(decodeSixToFour(v6('2002:836B:1759:5::')), { ipv4: v4('131.107.23.89'), subnet: 5, interfaceId: 0n });
});

test('an ISATAP host inside a 6to4 site keeps its identifier in interfaceId', () => {
  const d = decodeSixToFour(v6('2002:9d36:1:2:0:5efe:10.0.0.1'));
  assert.deepEqual(d, { ipv4: v4('157.54.0.1'), subnet: 2, interfaceId: 0x00005efe0a000001n });
});

test('the relay anycast address 192.88.99.1 (RFC 3068) and its 6to4 address 2002:c058:6301::', () => {
  assert.equal(SIXTOFOUR_RELAY_ANYCAST, v4('192.88.99.1'));
  assert.equal(formatIpv6(sixToFourAddress(SIXTOFOUR_RELAY_ANYCAST)), '2002:c058:6301::');
});

test('round trips at the edges of every field', () => {
  for (const ipv4 of [0, 1, v4('157.60.0.1'), 0xffffffff]) {
    for (const subnet of [0, 1, 0x1234, 0xffff]) {
      for (const iid of [0n, 1n, 0x0123456789abcdefn, (1n << 64n) - 1n]) {
        const addr = sixToFourAddress(ipv4, subnet, iid);
        assert.ok(isSixToFourAddress(addr));
        const d = decodeSixToFour(addr);
        assert.ok(d);
        assert.equal(d.ipv4, ipv4);
        assert.equal(d.subnet, subnet);
        assert.equal(d.interfaceId, iid);
      }
    }
  }
});

test('out-of-range arguments are misuse', () => {
  assert.throws(() => sixToFourAddress(1, 0x10000), RangeError);
  assert.throws(() => sixToFourAddress(1, -1), RangeError);
  assert.throws(() => sixToFourAddress(1, 1.5), RangeError);
  assert.throws(() => sixToFourAddress(1, 0, 1n << 64n), RangeError);
  assert.throws(() => sixToFourAddress(1, 0, -1n), RangeError);
});

test('decodeSixToFour ignores everything outside 2002::/16', () => {
  for (const t of ['2001:0:1117:34fa:1027:374b:e1fc:f635', '2003::1', '2001:db8::1', '::']) assert.equal(decodeSixToFour(v6(t)), undefined, t);
  assert.equal(decodeSixToFour(new Uint8Array(8)), undefined);
});

test('sixToFourRefusal refuses non-global IPv4 addresses with a reason, and takes the documentation ranges', () => {
  const cases: [string, string][] = [
    ['10.0.0.1', '10.0.0.1 is in 10.0.0.0/8, private (RFC 1918): 6to4 needs a public IPv4 address (RFC 3056 §2)'],
    ['172.16.5.4', '172.16.5.4 is in 172.16.0.0/12, private (RFC 1918): 6to4 needs a public IPv4 address (RFC 3056 §2)'],
    ['192.168.1.1', '192.168.1.1 is in 192.168.0.0/16, private (RFC 1918): 6to4 needs a public IPv4 address (RFC 3056 §2)'],
    ['127.0.0.1', '127.0.0.1 is in 127.0.0.0/8, loopback (RFC 1122): 6to4 needs a public IPv4 address (RFC 3056 §2)'],
    ['169.254.1.1', '169.254.1.1 is in 169.254.0.0/16, link-local (RFC 3927): 6to4 needs a public IPv4 address (RFC 3056 §2)'],
    ['224.0.0.1', '224.0.0.1 is in 224.0.0.0/4, multicast (RFC 5771): 6to4 needs a public IPv4 address (RFC 3056 §2)'],
    ['192.88.99.1', '192.88.99.1 is in 192.88.99.0/24, the 6to4 relay anycast (RFC 3068, deprecated by RFC 7526): it names the relays, not a 6to4 site'],
  ];
  for (const [ip, reason] of cases) {
    assert.equal(sixToFourRefusal(v4(ip)), reason);
    assert.throws(() => checkSixToFourIpv4(v4(ip)), (e: unknown) => e instanceof ConfigError && e.message === reason);
  }
  for (const ip of ['0.1.2.3', '240.0.0.1', '255.255.255.255']) assert.ok(sixToFourRefusal(v4(ip)), ip);
  for (const ip of ['157.60.0.1', '131.107.0.1', '192.0.2.1', '198.51.100.1', '203.0.113.1', '100.64.0.1', '172.32.0.1']) {
    assert.equal(sixToFourRefusal(v4(ip)), undefined, ip);
    checkSixToFourIpv4(v4(ip));
  }
});
