// resolveDaemonConfig: defaults < file < flags, validation with locations, the role rules, name resolution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, UsageError } from '../../src/core/errors.js';
import {
  describeDaemonConfig,
  resolveDaemonConfig,
  resolveIpv4,
  resolveServerAddresses,
  type ResolveOptions,
} from '../../src/config/daemon.js';
import { TeredoClient } from '../../src/teredo/client.js';
import { TeredoRelay } from '../../src/teredo/relay.js';
import { TeredoServer } from '../../src/teredo/server.js';
import { SeededRng as Rng } from '../../src/core/rng.js';
import { formatIpv4, formatIpv6 } from '../../src/wire/ip.js';
import { v4 } from '../addresses.js';

/** Files from a map instead of the disk; the control path is fixed so no /proc lookup matters. */
function opts(files: Record<string, string>, cwd = '/work'): ResolveOptions {
  return {
    cwd,
    readFile: (p) => {
      const t = files[p];
      if (t === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return t;
    },
    defaultControlPath: (role) => `/run/transit6/netns-1/teredo-${role}.sock`,
  };
}

const STUDY_SERVER = 'ServerBindAddress 198.51.100.1\n';
const STUDY_RELAY = 'RelayType relay\nInterfaceName teredo\nBindAddress 198.51.100.17\nBindPort 3545\n';
const STUDY_CLIENT = 'RelayType client\nInterfaceName teredo\nServerAddress 198.51.100.1\n';

test('the study server: primary + 1 as the secondary, transit6 defaults, a core that starts', async () => {
  const cfg = resolveDaemonConfig('server', '/etc/miredo/miredo-server.conf', {}, opts({ '/etc/miredo/miredo-server.conf': STUDY_SERVER }));
  assert.equal(cfg.role, 'server');
  assert.equal(cfg.configFile, '/etc/miredo/miredo-server.conf');
  assert.equal(cfg.secondary, undefined);
  assert.deepEqual(cfg.core, { port: 3544, mtu: 1280, forwardNative: true, probePort: 3546 });
  assert.equal(cfg.controlSocket, '/run/transit6/netns-1/teredo-server.sock');
  assert.equal(cfg.syslogFacility, 'daemon');
  assert.deepEqual(cfg.warnings, []);
  const { primary, secondary } = await resolveServerAddresses(cfg);
  assert.equal(formatIpv4(primary), '198.51.100.1');
  assert.equal(formatIpv4(secondary), '198.51.100.2');
  const server = new TeredoServer({ ...cfg.core, primary, secondary });
  assert.equal(server.localEndpoints().length, 3);
});

test('the study relay: RelayType relay is a cone relay (indirect bubbles only), bound to 198.51.100.17:3545', async () => {
  const cfg = resolveDaemonConfig('relay', 'conf/relay.conf', {}, opts({ '/work/conf/relay.conf': STUDY_RELAY }));
  assert.equal(cfg.configFile, '/work/conf/relay.conf');
  assert.equal(cfg.relayType, 'relay');
  assert.deepEqual(cfg.core, { mode: 'relay', directBubbles: false });
  assert.equal(cfg.interfaceName, 'teredo');
  assert.equal(cfg.mtu, 1280);
  assert.equal(formatIpv6(cfg.prefix), '2001::');
  assert.equal(cfg.bind.port, 3545);
  assert.equal(formatIpv4(await resolveIpv4(cfg.bind.address, 'BindAddress')), '198.51.100.17');
  assert.deepEqual(cfg.warnings, []);
  new TeredoRelay(cfg.core, new Rng(1));
  // restricted: direct bubbles too.
  const r = resolveDaemonConfig('relay', undefined, { 'relay-type': 'restricted' }, opts({}));
  assert.equal(r.core.directBubbles, true);
  assert.match(r.warnings[0]!, /^--relay-type restricted is deprecated/);
  // No RelayType with role relay: a cone relay.
  assert.equal(resolveDaemonConfig('relay', undefined, {}, opts({})).relayType, 'cone');
});

test('the study client: server, interface, ephemeral port, transit6 defaults for the core', async () => {
  const cfg = resolveDaemonConfig('client', '/c.conf', {}, opts({ '/c.conf': STUDY_CLIENT }));
  assert.equal(cfg.relayType, 'client');
  assert.deepEqual(cfg.server.value, { kind: 'ipv4', addr: v4('198.51.100.1'), text: '198.51.100.1' });
  assert.equal(cfg.server2, undefined);
  assert.equal(cfg.bind.port, 0);
  assert.equal(cfg.bind.address.value.kind === 'ipv4' && cfg.bind.address.value.addr, 0);
  assert.equal(cfg.interfaceName, 'teredo');
  assert.deepEqual(cfg.core, {
    serverPort: 3544, probePort: 3546, natUdpTimeoutMs: 30_000, detectNat: true, localDiscovery: true, symmetricNatSupport: true, hairpinning: true, onDemand: false,
  });
  const { primary, secondary } = await resolveServerAddresses(cfg);
  const client = new TeredoClient({ ...cfg.core, server: primary, server2: secondary }, new Rng(1));
  assert.equal(formatIpv4(client.status().server2), '198.51.100.2');
  assert.match(describeDaemonConfig(cfg).join('\n'), /server 198\.51\.100\.1 \(secondary: primary \+ 1\)/);
});

test('precedence: flags over the file over the defaults', () => {
  const file = 'ServerAddress 198.51.100.1\nBindPort 3550\nNatUdpTimeout 60\nInterfaceName teredo\n';
  const o = opts({ '/work/c.conf': file });
  const none = resolveDaemonConfig('client', undefined, { server: '203.0.113.5' }, o);
  assert.equal(none.bind.port, 0);
  assert.equal(none.core.natUdpTimeoutMs, 30_000);
  assert.equal(none.interfaceName, undefined);
  const fromFile = resolveDaemonConfig('client', 'c.conf', {}, o);
  assert.equal(fromFile.bind.port, 3550);
  assert.equal(fromFile.core.natUdpTimeoutMs, 60_000);
  assert.equal(fromFile.server.where, 'c.conf line 1');
  const flags = resolveDaemonConfig('client', 'c.conf', { 'bind-port': '3551', server: '203.0.113.5', interface: 't6c' }, o);
  assert.equal(flags.bind.port, 3551);
  assert.equal(flags.core.natUdpTimeoutMs, 60_000);
  assert.equal(flags.interfaceName, 't6c');
  assert.deepEqual(flags.server, { value: { kind: 'ipv4', addr: v4('203.0.113.5'), text: '203.0.113.5' }, where: '--server' });
});

test("a server on the command line drops the file's secondary, as Miredo does", () => {
  const o = opts({ '/c.conf': 'ServerAddress 198.51.100.1\nServerAddress2 198.51.100.9\n', '/s.conf': 'ServerBindAddress 198.51.100.1\nServerBindAddress2 198.51.100.9\n' });
  const c = resolveDaemonConfig('client', '/c.conf', { server: '203.0.113.5' }, o);
  assert.equal(c.server2, undefined);
  assert.deepEqual(c.warnings, ['/c.conf line 2: ServerAddress2 ignored: the server was given on the command line (--server)']);
  assert.equal(resolveDaemonConfig('client', '/c.conf', {}, o).server2?.where, '/c.conf line 2');
  const s = resolveDaemonConfig('server', '/s.conf', { 'server-bind-address': '203.0.113.5' }, o);
  assert.equal(s.secondary, undefined);
  assert.match(s.warnings[0]!, /ServerBindAddress2 ignored/);
});

test('validation errors name the file line or the flag', () => {
  const o = (text: string) => opts({ '/work/m.conf': text });
  const fails: [() => unknown, RegExp, typeof ConfigError | typeof UsageError][] = [
    [() => resolveDaemonConfig('client', 'm.conf', {}, o('InterfaceName teredo\n')), /^no Teredo server: set ServerAddress/, ConfigError],
    [() => resolveDaemonConfig('client', 'm.conf', {}, o('\nServerAddress 10.0.0.1\n')), /^m\.conf line 2: ServerAddress 10\.0\.0\.1 is not a global unicast IPv4 address$/, ConfigError],
    [() => resolveDaemonConfig('client', undefined, { server: '192.168.1.1' }, o('')), /^--server: ServerAddress 192\.168\.1\.1 is not a global/, UsageError],
    [() => resolveDaemonConfig('client', 'm.conf', {}, o('ServerAddress 198.51.100.1\nServerAddress2 198.51.100.1\n')), /^m\.conf line 2: ServerAddress2 must differ/, ConfigError],
    [() => resolveDaemonConfig('client', 'm.conf', {}, o('RelayType relay\n')), /^m\.conf line 1: RelayType relay configures a Teredo relay: run 'transit6 teredo relay'$/, ConfigError],
    [() => resolveDaemonConfig('relay', 'm.conf', {}, o('RelayType autoclient\n')), /^m\.conf line 1: RelayType autoclient configures a Teredo client/, ConfigError],
    [() => resolveDaemonConfig('relay', 'm.conf', {}, o('InterfaceMTU 1279\n')), /^m\.conf line 1: InterfaceMTU 1279 is outside 1280-65535$/, ConfigError],
    [() => resolveDaemonConfig('relay', undefined, { mtu: '0x10000' }, o('')), /^--mtu '0x10000' is not an MTU/, UsageError],
    [() => resolveDaemonConfig('relay', 'm.conf', {}, o('Prefix 3ffe:831f::\n')), /^m\.conf line 1: Prefix 3ffe:831f::\/32: transit6 supports only the RFC 4380 prefix 2001::\/32$/, ConfigError],
    [() => resolveDaemonConfig('relay', 'm.conf', {}, o('RelayHostAddress 2001::1\n')), /^m\.conf line 1: RelayHostAddress: a host-specific relay serves global, native/, ConfigError],
    [() => resolveDaemonConfig('relay', 'm.conf', {}, o('BindAddress 224.0.0.1\n')), /^m\.conf line 1: BindAddress 224\.0\.0\.1 is not a unicast address$/, ConfigError],
    [() => resolveDaemonConfig('server', 'm.conf', {}, o('ServerBindAddress 0.0.0.0\n')), /^no server address/, ConfigError],
    [() => resolveDaemonConfig('server', 'm.conf', {}, o('ServerBindAddress 192.88.99.1\n')), /line 1: ServerBindAddress 192\.88\.99\.1 is not a global unicast/, ConfigError],
    [() => resolveDaemonConfig('server', 'm.conf', {}, o('ServerBindAddress 198.51.100.1\nServerBindAddress2 172.16.0.1\n')), /^m\.conf line 2: ServerBindAddress2 172\.16\.0\.1 is not a global/, ConfigError],
    [() => resolveDaemonConfig('server', 'm.conf', {}, o('ServerBindAddress 223.255.255.255\n')), /ServerBindAddress2 defaults to ServerBindAddress \+ 1 = 224\.0\.0\.0, which is not global/, ConfigError],
    [() => resolveDaemonConfig('server', 'm.conf', {}, o('ServerBindAddress 198.51.100.1\nProbePort 3544\n')), /^m\.conf line 2: ProbePort must differ from the server port 3544$/, ConfigError],
    [() => resolveDaemonConfig('server', 'nope.conf', {}, o('')), /^cannot read configuration file nope\.conf: no such file$/, ConfigError],
    [() => resolveDaemonConfig('client', undefined, { server: '198.51.100.1', interface: 'a-very-long-name' }, o('')), /^--interface 'a-very-long-name' is not an interface name/, UsageError],
  ];
  for (const [f, re, cls] of fails) assert.throws(f, (e: unknown) => e instanceof cls && re.test((e as Error).message), re.source);
});

test('documentation ranges and shared address space count as global, as in Miredo', () => {
  for (const a of ['192.0.2.10', '198.51.100.1', '203.0.113.1', '100.64.0.1', '198.18.0.1']) {
    const cfg = resolveDaemonConfig('server', undefined, { 'server-bind-address': a }, opts({}));
    assert.equal(cfg.primary.value.kind, 'ipv4', a);
  }
});

test('relay host-specific mode and our client directives reach the core options', () => {
  const relay = resolveDaemonConfig('relay', undefined, { 'host-address': '2001:db8:1::10,2001:db8:1::11', 'max-peers': '4096' }, opts({}));
  assert.equal(relay.core.mode, 'host');
  assert.deepEqual(relay.core.hostAddresses?.map(formatIpv6), ['2001:db8:1::10', '2001:db8:1::11']);
  assert.deepEqual(relay.core.limits, { maxPeers: 4096 });
  const client = resolveDaemonConfig(
    'client',
    undefined,
    { server: 'teredo.example.net', 'probe-port': 'no', 'detect-nat': 'no', 'idle-timeout': '600', 'on-demand': 'yes', 'local-discovery': 'off', control: 'run/c.sock', user: 'nobody', pidfile: '/run/c.pid' },
    opts({}, '/srv'),
  );
  assert.deepEqual(client.server.value, { kind: 'hostname', name: 'teredo.example.net', needsResolving: true });
  assert.equal(client.core.probePort, false);
  assert.equal(client.core.detectNat, false);
  assert.equal(client.core.idleDormancyMs, 600_000);
  assert.equal(client.core.onDemand, true);
  assert.equal(client.core.localDiscovery, false);
  assert.equal(client.controlSocket, '/srv/run/c.sock');
  assert.equal(client.user, 'nobody');
  assert.equal(client.pidFile, '/run/c.pid');
  const server = resolveDaemonConfig('server', undefined, { 'server-bind-address': '198.51.100.1', 'probe-port': 'no', 'forward-native': 'no', mtu: '1400' }, opts({}));
  assert.deepEqual(server.core, { port: 3544, mtu: 1400, forwardNative: false });
});

test('host names are resolved at start, checked for being global, and failures keep the resolver code', async () => {
  const cfg = resolveDaemonConfig('client', undefined, { server: 'teredo.example.net' }, opts({}));
  const lookup = async (name: string) => {
    if (name === 'teredo.example.net') return '198.51.100.1';
    if (name === 'private.example.net') return '10.1.2.3';
    throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  };
  const { primary, secondary } = await resolveServerAddresses(cfg, lookup);
  assert.equal(formatIpv4(primary), '198.51.100.1');
  assert.equal(formatIpv4(secondary), '198.51.100.2');
  const priv = resolveDaemonConfig('client', undefined, { server: 'private.example.net' }, opts({}));
  await assert.rejects(resolveServerAddresses(priv, lookup), (e: unknown) => e instanceof ConfigError && /^--server: ServerAddress 'private\.example\.net' \(10\.1\.2\.3\) is not a global unicast IPv4 address$/.test(e.message));
  const missing = resolveDaemonConfig('client', undefined, { server: 'gone.example.net' }, opts({}));
  await assert.rejects(resolveServerAddresses(missing, lookup), (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOTFOUND' && /does not resolve to an IPv4 address \(ENOTFOUND\)/.test((e as Error).message));
});

test('relative config paths come from the working directory; a real file on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-conf-'));
  try {
    writeFileSync(join(dir, 'relay.conf'), STUDY_RELAY);
    const cfg = resolveDaemonConfig('relay', 'relay.conf', {}, { cwd: dir, defaultControlPath: () => '/x' });
    assert.equal(cfg.configFile, join(dir, 'relay.conf'));
    assert.equal(cfg.bind.port, 3545);
    assert.throws(() => resolveDaemonConfig('relay', dir, {}, { cwd: '/', defaultControlPath: () => '/x' }), /it is a directory/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
