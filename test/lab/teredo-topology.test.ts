import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installCleanupHandlers, listNamespaces } from '../../src/lab/netns.js';
import { ping, startReflector, udpProbe, type ProbeResult } from '../../src/lab/probe.js';
import {
  ALL_CLIENTS,
  buildTeredoTopology,
  describeTeredoTopology,
  topologyClient,
  topologyNat,
  type ClientName,
} from '../../src/lab/teredo-topology.js';
import { namespacesWith, skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

const REFLECTORS = ['198.51.100.1:7000', '198.51.100.2:7000', '198.51.100.17:7000'];

function seenEndpoints(r: ProbeResult): string[] {
  return r.replies.filter((x) => !x.alt).map((x) => x.seen);
}

function split(ep: string): { addr: string; port: number } {
  const i = ep.lastIndexOf(':');
  return { addr: ep.slice(0, i), port: Number(ep.slice(i + 1)) };
}

/** Every reflector answered once from its main port; returns the mapping each saw. */
function mappings(r: ProbeResult): { addr: string; port: number }[] {
  const seen = seenEndpoints(r);
  assert.equal(new Set(r.replies.filter((x) => !x.alt).map((x) => x.by)).size, REFLECTORS.length, `all reflectors answered: ${JSON.stringify(r)}`);
  return seen.map(split);
}

const altReplies = (r: ProbeResult): number => r.replies.filter((x) => x.alt).length;

test('describeTeredoTopology: addresses, NATs and which client is behind which', () => {
  const t = describeTeredoTopology('t6-test01-', '/tmp/x');
  assert.equal(t.namespaces.length, 16);
  assert.ok(t.namespaces.every((n) => n.startsWith('t6-test01-')));
  assert.deepEqual([t.server.primary, t.server.secondary, t.server.ipv6], ['198.51.100.1', '198.51.100.2', '2001:db8:100::2']);
  assert.deepEqual([t.relay.ipv4, t.relay.ipv6, t.relay.lanIpv6], ['198.51.100.17', '2001:db8:200::2', '2001:db8:1::1']);
  assert.equal(t.v6host.ipv6, '2001:db8:1::10');
  assert.deepEqual(
    t.clients.map((c) => [c.name, c.nat, c.natKind, c.addr, c.publicAddr]),
    [
      ['cli-prc', 'nat-prc', 'port-restricted', '192.168.1.10', '203.0.113.1'],
      ['cli-sym', 'nat-sym', 'symmetric', '192.168.2.10', '203.0.113.17'],
      ['cli-fc', 'nat-fc', 'full-cone', '192.168.3.10', '203.0.113.33'],
      ['cli-pub', null, 'none', '203.0.113.49', '203.0.113.49'],
      ['cli-prc2', 'nat-prc2', 'port-restricted', '192.168.4.10', '203.0.113.65'],
      ['cli-lan1', 'nat-lan', 'port-restricted', '192.168.5.10', '203.0.113.81'],
      ['cli-lan2', 'nat-lan', 'port-restricted', '192.168.5.11', '203.0.113.81'],
    ],
  );
  assert.deepEqual(topologyNat(t, 'nat-lan').clients, ['cli-lan1', 'cli-lan2']);
  assert.deepEqual(topologyNat(t, 'nat-fc').staticUdp, { lanAddr: '192.168.3.10', lanPort: 3550, publicPort: 45454 });
  assert.equal(topologyClient(t, 'cli-fc').bindPort, 3550);
  // Documentation prefixes only; never 192.0.2.0/24.
  assert.doesNotMatch(JSON.stringify(t), /192\.0\.2\./);

  const small = describeTeredoTopology('t6-test02-', '/tmp/x', ['cli-sym']);
  assert.deepEqual(small.namespaces.map((n) => n.slice('t6-test02-'.length)), ['inet', 'tserver', 'relay', 'v6host', 'nat-sym', 'cli-sym']);
  assert.throws(() => topologyClient(small, 'cli-prc'), /not in this topology/);
  assert.throws(() => describeTeredoTopology('t6-x-', '/tmp', ['cli-nope' as ClientName]), /unknown client/);
});

test('the whole Teredo topology: reachability and NAT behaviours', async (t) => {
  if (skipUnlessRoot(t)) return;
  const t0 = Date.now();
  const { lab, topology: topo } = await buildTeredoTopology();
  const built = Date.now() - t0;
  try {
    t.diagnostic(`built ${topo.namespaces.length} namespaces in ${built} ms`);
    assert.deepEqual(await namespacesWith(lab.prefix), [...topo.namespaces].sort());
    assert.deepEqual(topo.clients.map((c) => c.name).sort(), [...ALL_CLIENTS].sort());

    await t.test('IPv4: every client reaches both server addresses and the relay', async () => {
      const checks = topo.clients.flatMap((c) =>
        [topo.server.primary, topo.server.secondary, topo.relay.ipv4].map(async (dst) => ({ c: c.name, dst, ok: await ping(lab, c.name, dst) })),
      );
      const failed = (await Promise.all(checks)).filter((r) => !r.ok);
      assert.deepEqual(failed, []);
    });

    await t.test('IPv6: inet and the server reach v6host through the relay, v6host answers back', async () => {
      assert.ok(await ping(lab, 'inet', topo.v6host.ipv6));
      assert.ok(await ping(lab, 'tserver', topo.v6host.ipv6));
      assert.ok(await ping(lab, 'v6host', topo.server.ipv6));
      assert.ok(await ping(lab, 'v6host', topo.relay.ipv6));
      // v6host is IPv6 only.
      assert.equal((await lab.exec('v6host', 'ip', ['-4', '-o', 'addr', 'show', 'scope', 'global'])).stdout.trim(), '');
      const r = await lab.exec('inet', 'ip', ['-6', 'route', 'show', '2001::/32']);
      assert.match(r.stdout, /2001::\/32 via 2001:db8:200::2/);
    });

    await startReflector(lab, 'tserver', REFLECTORS.slice(0, 2));
    await startReflector(lab, 'relay', REFLECTORS.slice(2));

    await t.test('no NAT (cli-pub): its own address, and every datagram gets in (control for the filters)', async () => {
      const r = await udpProbe(lab, 'cli-pub', { to: REFLECTORS, alt: true });
      const m = mappings(r);
      assert.ok(m.every((x) => x.addr === '203.0.113.49' && `0.0.0.0:${x.port}` === r.local), JSON.stringify(r));
      assert.ok(altReplies(r) >= REFLECTORS.length, JSON.stringify(r));
    });

    await t.test('port-restricted: one external port for every destination, unsolicited ports dropped', async () => {
      for (const [name, pub] of [['cli-prc', '203.0.113.1'], ['cli-prc2', '203.0.113.65']] as const) {
        const r = await udpProbe(lab, name, { to: REFLECTORS, alt: true });
        const m = mappings(r);
        assert.equal(new Set(seenEndpoints(r)).size, 1, `endpoint-independent mapping: ${JSON.stringify(r)}`);
        assert.equal(m[0]!.addr, pub);
        assert.ok(m[0]!.port >= 20000 && m[0]!.port <= 29999, `port from --to-ports: ${m[0]!.port}`);
        assert.equal(altReplies(r), 0, `answers from ports never contacted are dropped: ${JSON.stringify(r)}`);
        assert.deepEqual(r.other, []);
      }
    });

    await t.test('two clients behind one port-restricted NAT: same address, different ports', async () => {
      const [a, b] = await Promise.all([udpProbe(lab, 'cli-lan1', { to: REFLECTORS, alt: true }), udpProbe(lab, 'cli-lan2', { to: REFLECTORS, alt: true })]);
      const ma = mappings(a);
      const mb = mappings(b);
      assert.equal(new Set(seenEndpoints(a)).size, 1);
      assert.equal(new Set(seenEndpoints(b)).size, 1);
      assert.equal(ma[0]!.addr, '203.0.113.81');
      assert.equal(mb[0]!.addr, '203.0.113.81');
      assert.notEqual(ma[0]!.port, mb[0]!.port);
      assert.equal(altReplies(a) + altReplies(b), 0);
    });

    await t.test('symmetric: a different external port per destination', async () => {
      const r = await udpProbe(lab, 'cli-sym', { to: REFLECTORS, alt: true });
      const m = mappings(r);
      assert.ok(m.every((x) => x.addr === '203.0.113.17'), JSON.stringify(r));
      // Three random ports: all equal by chance has odds of about 1 in 4e9.
      assert.ok(new Set(m.map((x) => x.port)).size > 1, `endpoint-dependent mapping: ${JSON.stringify(r)}`);
      assert.equal(altReplies(r), 0);
    });

    await t.test('full cone: 192.168.3.10:3550 is 203.0.113.33:45454 for everyone, inbound from anyone', async () => {
      const fc = topologyNat(topo, 'nat-fc').staticUdp!;
      const public_ = `203.0.113.33:${fc.publicPort}`;
      const out = await udpProbe(lab, 'cli-fc', { to: REFLECTORS, alt: true, bind: `0.0.0.0:${fc.lanPort}` });
      mappings(out);
      assert.deepEqual([...new Set(seenEndpoints(out))], [public_]);
      assert.ok(altReplies(out) >= REFLECTORS.length, `endpoint-independent filtering: ${JSON.stringify(out)}`);

      // Unsolicited, from hosts cli-fc never talked to.
      await startReflector(lab, 'cli-fc', [`0.0.0.0:${fc.lanPort}`], 'reflect-fc');
      const senders = ['tserver', 'cli-pub', 'inet', 'cli-prc'];
      const results = await Promise.all(senders.map((from) => udpProbe(lab, from, { to: [public_] })));
      results.forEach((r, i) => {
        assert.equal(r.replies.length, 1, `${senders[i]}: ${JSON.stringify(r)}`);
        assert.equal(r.replies[0]!.from, public_, `${senders[i]}: the answer comes from the static mapping`);
      });
    });

    await t.test('conntrack UDP timeout is per namespace and takes effect', async () => {
      await lab.setConntrackUdpTimeout('nat-prc2', 2);
      assert.equal(await lab.readSysctl('nat-prc2', 'net.netfilter.nf_conntrack_udp_timeout'), '2');
      assert.equal(await lab.readSysctl('nat-prc', 'net.netfilter.nf_conntrack_udp_timeout'), '30');
      const flows = async (): Promise<number[]> =>
        (await lab.conntrackUdp('nat-prc2')).filter((e) => e.orig.src === '192.168.4.10' && e.orig.dport === 9000).map((e) => e.timeout);
      await startReflector(lab, 'tserver', ['198.51.100.1:9000'], 'reflect-9000');
      const r = await udpProbe(lab, 'cli-prc2', { to: ['198.51.100.1:9000'], waitMs: 100 });
      assert.equal(r.replies.length, 1);
      const before = await flows();
      assert.equal(before.length, 1);
      assert.ok(before[0]! <= 2, `timeout ${before[0]}`);
      // The untouched NAT keeps the default.
      await udpProbe(lab, 'cli-prc', { to: ['198.51.100.1:9000'], waitMs: 100 });
      const prc = (await lab.conntrackUdp('nat-prc')).filter((e) => e.orig.dport === 9000);
      assert.ok(prc.length === 1 && prc[0]!.timeout > 20, JSON.stringify(prc));
      await new Promise((res) => setTimeout(res, 2600));
      assert.deepEqual(await flows(), [], 'the mapping expired after 2 s');
    });
  } finally {
    const t1 = Date.now();
    await lab.destroy();
    t.diagnostic(`destroyed in ${Date.now() - t1} ms`);
  }
  const left = (await listNamespaces()).filter((n) => topo.namespaces.includes(n) || n.startsWith(lab.prefix));
  assert.deepEqual(left, []);
});

test('a partial topology: server, relay, v6host and one NAT, with a NAT UDP timeout', async (t) => {
  if (skipUnlessRoot(t)) return;
  const { lab, topology: topo } = await buildTeredoTopology({ clients: ['cli-sym'], natUdpTimeout: 5 });
  try {
    assert.deepEqual(
      (await namespacesWith(lab.prefix)).map((n) => n.slice(lab.prefix.length)).sort(),
      ['cli-sym', 'inet', 'nat-sym', 'relay', 'tserver', 'v6host'],
    );
    assert.equal(await lab.readSysctl('nat-sym', 'net.netfilter.nf_conntrack_udp_timeout'), '5');
    assert.ok(await ping(lab, 'cli-sym', topo.server.secondary));
    assert.ok(await ping(lab, 'inet', topo.v6host.ipv6));
    assert.match(await lab.iptablesSave('nat-sym'), /MASQUERADE --random-fully/);
  } finally {
    await lab.destroy();
  }
  assert.deepEqual(await namespacesWith(lab.prefix), []);
});
