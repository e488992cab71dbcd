// Miredo's configuration syntax (rfc/MIREDO-INTEROP.md §4.1): the files Miredo accepts parse unchanged, errors
// carry line numbers, and what Miredo only warns about comes back as warnings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, UsageError } from '../../src/core/errors.js';
import {
  flagHelp,
  flagOptions,
  parseFlags,
  parseInetAton,
  parseMiredoConfig,
  parseMiredoInt16,
  readDirectiveLines,
  type HostAddress,
} from '../../src/config/miredo.js';
import { formatIpv6 } from '../../src/wire/ip.js';
import { v4 } from '../addresses.js';

const ipv4Value = (text: string): HostAddress => ({ kind: 'ipv4', addr: v4(text), text });

// Reference study §3, verbatim.
const STUDY_SERVER = 'ServerBindAddress 198.51.100.1\n';
const STUDY_RELAY = 'RelayType relay\nInterfaceName teredo\nBindAddress 198.51.100.17\nBindPort 3545\n';
const STUDY_CLIENT = 'RelayType client\nInterfaceName teredo\nServerAddress 198.51.100.1\n';

// Debian's /etc/miredo.conf (package 1.2.6-7.1), verbatim, tabs included.
const DEBIAN_CONF = `# Please refer to the miredo.conf(5) man page for details.
InterfaceName\tteredo

# Pick a Teredo server:
#ServerAddress\tteredo.ipv6.microsoft.com
ServerAddress\tteredo-debian.remlab.net

# Some firewall/NAT setups require a specific UDP port number:
#BindPort\t3545
`;

// Upstream misc/miredo-server.conf-in (1.2.6), verbatim.
const UPSTREAM_SERVER = `#! @sbindir@/miredo-server -f -c
#
# Sample configuration file for miredo-server

# Please refer to the miredo-server.conf(5) manpage for details.

# Server primary IPv4 address.
# Two public IPv4 addresses are needed to operate a Teredo server.
# Miredo will open UDP port 3544 on both addresses.
ServerBindAddress 192.0.2.221

# Server secondary IPv4 address.
# The Microsoft Windows Teredo client implementation assumes that the
# secondary address is the primary address plus one. This is the
# default unless uncommented.
#ServerBindAddress2 192.0.2.222

#SyslogFacility user

# Think twice before modifying the settings above.
#Prefix 2001:0::
#InterfaceMTU 1280
`;

test('the reference study server file: one directive, no warnings', () => {
  const r = parseMiredoConfig(STUDY_SERVER, 'miredo-server.conf', 'server');
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.config.ServerBindAddress, { value: ipv4Value('198.51.100.1'), where: 'miredo-server.conf line 1' });
  assert.equal(r.config.ServerBindAddress2, undefined);
});

test('the reference study relay file: RelayType relay, interface, bind address and port', () => {
  for (const role of ['relay', undefined] as const) {
    const r = parseMiredoConfig(STUDY_RELAY, 'relay.conf', role);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.config.RelayType?.value, 'relay');
    assert.equal(r.config.InterfaceName?.value, 'teredo');
    assert.deepEqual(r.config.BindAddress?.value, ipv4Value('198.51.100.17'));
    assert.deepEqual(r.config.BindPort, { value: 3545, where: 'relay.conf line 4' });
  }
});

test('the reference study client files', () => {
  const r = parseMiredoConfig(STUDY_CLIENT, 'client.conf');
  assert.deepEqual(r.warnings, []);
  assert.equal(r.config.RelayType?.value, 'client');
  assert.deepEqual(r.config.ServerAddress?.value, ipv4Value('198.51.100.1'));
  const fc = parseMiredoConfig(`${STUDY_CLIENT}BindPort 3550\n`, 'client-fc.conf', 'client');
  assert.equal(fc.config.BindPort?.value, 3550);
});

test("Debian's miredo.conf: a host name server, tabs, comments", () => {
  const r = parseMiredoConfig(DEBIAN_CONF, '/etc/miredo.conf', 'client');
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.config.ServerAddress, { value: { kind: 'hostname', name: 'teredo-debian.remlab.net', needsResolving: true }, where: '/etc/miredo.conf line 6' });
  assert.equal(r.config.InterfaceName?.value, 'teredo');
});

test("upstream's sample miredo-server.conf, with its #! line", () => {
  const r = parseMiredoConfig(UPSTREAM_SERVER, 'miredo-server.conf', 'server');
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(r.config.ServerBindAddress?.value, ipv4Value('192.0.2.221'));
});

test('directive names are case-insensitive; values are the first token; trailing text and CRLF are ignored', () => {
  const r = parseMiredoConfig('relaytype CONE extra words\r\nBINDPORT 0x0DDA # comment\r\n  interfacename   t6  \r\n', 'x.conf');
  assert.deepEqual(r.warnings, []);
  assert.equal(r.config.RelayType?.value, 'cone');
  assert.equal(r.config.BindPort?.value, 3546);
  assert.equal(r.config.InterfaceName?.value, 't6');
});

test('a last line without a newline is read (Miredo would skip it)', () => {
  const r = parseMiredoConfig('ServerBindAddress 198.51.100.1', 's.conf', 'server');
  assert.equal(r.config.ServerBindAddress?.value.kind, 'ipv4');
});

test('first occurrence wins, later ones are warnings', () => {
  const r = parseMiredoConfig('ServerAddress 198.51.100.1\nserveraddress 203.0.113.9\n', 'miredo.conf', 'client');
  assert.deepEqual(r.config.ServerAddress?.value, ipv4Value('198.51.100.1'));
  assert.deepEqual(r.warnings, ['miredo.conf line 2: ServerAddress repeated: the first one (line 1) is used, this one ignored']);
});

test('unknown directives, lone tokens, long lines and directives the mode does not use are warnings', () => {
  const text = ['Foo bar', 'Lonely', `ServerAddress ${'a'.repeat(1100)}`, 'Prefix 2001:0::', 'InterfaceMTU 1400', 'ServerAddress 198.51.100.1'].join('\n');
  const r = parseMiredoConfig(text, 'miredo.conf');
  assert.deepEqual(r.warnings, [
    "miredo.conf line 2: 'Lonely' has no value: line ignored",
    'miredo.conf line 3: line longer than 1054 characters skipped (as Miredo does)',
    "miredo.conf line 1: unknown directive 'Foo' ignored",
    'miredo.conf line 4: Prefix is not used by a Teredo client: ignored',
    'miredo.conf line 5: InterfaceMTU is not used by a Teredo client: ignored',
  ]);
  assert.equal(r.config.Prefix, undefined);
  // The same directives in relay mode are used, and ServerAddress becomes the superfluous one.
  const relay = parseMiredoConfig('RelayType cone\nPrefix 2001:0::\nInterfaceMTU 1400\nServerAddress 198.51.100.1\n', 'miredo.conf');
  assert.equal(relay.config.InterfaceMTU?.value, 1400);
  assert.equal(formatIpv6(relay.config.Prefix!.value), '2001::');
  assert.deepEqual(relay.warnings, ['miredo.conf line 4: ServerAddress is not used by a Teredo relay: ignored']);
});

test('errors carry the file and line', () => {
  const cases: [string, RegExp][] = [
    ['# c\n\nServerAddress 198.51.100.1\n\n\n\nRelayType foo\n', /^miredo\.conf line 7: unknown RelayType 'foo' \(client, autoclient, relay, cone, restricted\)$/],
    ['BindPort 65536\n', /^miredo\.conf line 1: BindPort '65536' is not a port/],
    ['BindPort 08\n', /^miredo\.conf line 1: BindPort '08' is not a port/],
    ['BindPort -1\n', /line 1: BindPort '-1'/],
    ['BindPort 3545x\n', /line 1: BindPort '3545x'/],
    ['ServerAddress 198.51.100.300\n', /line 1: ServerAddress '198\.51\.100\.300' is not a valid IPv4 address$/],
    ['ServerAddress bad$name\n', /line 1: ServerAddress 'bad\$name' is neither an IPv4 address nor a host name$/],
    ['SyslogFacility bogus\n', /line 1: unknown SyslogFacility 'bogus' \(auth, authpriv, cron, daemon/],
    ['InterfaceName much-too-long-name\n', /line 1: InterfaceName 'much-too-long-name' is not an interface name/],
    ['InterfaceName te/redo\n', /line 1: InterfaceName 'te\/redo' is not an interface name/],
    ['\nRelayType client#x\n', /^miredo\.conf line 2: unknown RelayType 'client#x'/],
    ['NatUdpTimeout 2\n', /line 1: NatUdpTimeout 2 is outside 4-86400 seconds/],
    ['LocalDiscovery maybe\n', /line 1: LocalDiscovery 'maybe' is not yes or no/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseMiredoConfig(text, 'miredo.conf', 'client'), (e: unknown) => e instanceof ConfigError && re.test(e.message), text);
  }
  assert.throws(() => parseMiredoConfig('RelayType relay\nPrefix ff02::\n', 'r.conf'), /r\.conf line 2: Prefix 'ff02::' is a multicast prefix/);
  assert.throws(() => parseMiredoConfig('RelayType relay\nRelayHostAddress 2001:db8::1,nope\n', 'r.conf'), /r\.conf line 2: RelayHostAddress 'nope' is not an IPv6 address/);
});

test('the first RelayType decides the mode, even after a bad second one', () => {
  const r = parseMiredoConfig('RelayType restricted\nRelayType foo\nInterfaceMTU 1400\n', 'm.conf');
  assert.equal(r.config.RelayType?.value, 'restricted');
  assert.equal(r.config.InterfaceMTU?.value, 1400);
  assert.match(r.warnings[0]!, /line 1: RelayType restricted is deprecated/);
  assert.match(r.warnings[1]!, /line 2: RelayType repeated/);
});

test("integers as Miredo's strtoul(…, 0) reads them", () => {
  const ok: [string, number][] = [['3545', 3545], ['0xDD9', 3545], ['06731', 3545], ['0', 0], ['00', 0], ['+80', 80], ['-0', 0], ['65535', 65535], ['0xffff', 65535]];
  for (const [t, v] of ok) assert.equal(parseMiredoInt16(t), v, t);
  for (const t of ['65536', '0x10000', '-1', '08', '0x', '', ' 1', '1.0', '1e3', 'x']) assert.equal(parseMiredoInt16(t), undefined, t);
});

test('IPv4 values: dotted quads, the inet_aton forms getaddrinfo accepts (with a warning), host names', () => {
  assert.equal(parseInetAton('127.1'), v4('127.0.0.1'));
  assert.equal(parseInetAton('0xc6336401'), v4('198.51.100.1'));
  assert.equal(parseInetAton('0306.51.100.1'), v4('198.51.100.1'));
  assert.equal(parseInetAton('198.51.25601'), v4('198.51.100.1'));
  assert.equal(parseInetAton('256.1.1.1'), undefined);
  assert.equal(parseInetAton('1.2.3.4.5'), undefined);
  assert.equal(parseInetAton('teredo.example'), undefined);
  const r = parseMiredoConfig('ServerAddress 0xc6336401\nServerAddress2 teredo2.example.net.\n', 'miredo.conf', 'client');
  assert.deepEqual(r.config.ServerAddress?.value, ipv4Value('198.51.100.1'));
  assert.match(r.warnings[0]!, /line 1: ServerAddress '0xc6336401' read as 198\.51\.100\.1/);
  assert.deepEqual(r.config.ServerAddress2?.value, { kind: 'hostname', name: 'teredo2.example.net.', needsResolving: true });
});

test('our own directives parse', () => {
  const text = [
    'NatUdpTimeout 29.5', 'ProbePort no', 'DetectNat off', 'LocalDiscovery 0', 'SymmetricNatSupport yes', 'Hairpinning TRUE', 'OnDemand enabled',
    'IdleTimeout 600', 'MaxPeers 1024', 'ServerPort 3544', 'ControlSocket run/t6.sock', 'PidFile /run/t6.pid', 'User nobody', 'ServerAddress 198.51.100.1',
  ].join('\n');
  const r = parseMiredoConfig(text, '/etc/transit6/client.conf', 'client');
  assert.deepEqual(r.warnings, []);
  const c = r.config;
  assert.equal(c.NatUdpTimeout?.value, 29_500);
  assert.equal(c.ProbePort?.value, false);
  assert.equal(c.DetectNat?.value, false);
  assert.equal(c.LocalDiscovery?.value, false);
  assert.equal(c.SymmetricNatSupport?.value, true);
  assert.equal(c.Hairpinning?.value, true);
  assert.equal(c.OnDemand?.value, true);
  assert.equal(c.IdleTimeout?.value, 600_000);
  assert.equal(c.MaxPeers?.value, 1024);
  // A relative path in a file is taken from the file's directory.
  assert.equal(c.ControlSocket?.value, '/etc/transit6/run/t6.sock');
  assert.equal(c.PidFile?.value, '/run/t6.pid');
  assert.equal(c.User?.value, 'nobody');
  const relay = parseMiredoConfig('RelayType cone\nRelayHostAddress 2001:db8:1::10,2001:db8:1::11\n', 'r.conf');
  assert.deepEqual(relay.config.RelayHostAddress?.value.map(formatIpv6), ['2001:db8:1::10', '2001:db8:1::11']);
});

test('readDirectiveLines keeps the line numbers of directives', () => {
  const r = readDirectiveLines('# a\n\nA 1\n  B\t2 3\n', 'f');
  assert.deepEqual(r.directives, [
    { name: 'A', value: '1', line: 3 },
    { name: 'B', value: '2', line: 4 },
  ]);
});

test('flags: the same parsers, usage errors naming the flag, role checks', () => {
  const r = parseFlags({ server: '198.51.100.1', 'bind-port': '3545', 'on-demand': true, json: undefined, 'detect-nat': false }, 'client', '/tmp');
  assert.deepEqual(r.config.ServerAddress, { value: ipv4Value('198.51.100.1'), where: '--server' });
  assert.equal(r.config.BindPort?.value, 3545);
  assert.equal(r.config.OnDemand?.value, true);
  assert.equal(r.config.DetectNat, undefined);
  assert.throws(() => parseFlags({ 'bind-port': '70000' }, 'client', '/'), (e: unknown) => e instanceof UsageError && /^--bind-port '70000' is not a port/.test(e.message));
  assert.throws(() => parseFlags({ mtu: '1400' }, 'client', '/'), /--mtu is not an option of a Teredo client/);
  assert.throws(() => parseFlags({ bogus: 'x' }, 'client', '/'), /unknown option --bogus/);
  assert.equal(parseFlags({ control: 'x.sock' }, 'relay', '/srv').config.ControlSocket?.value, '/srv/x.sock');
  assert.ok('server' in flagOptions('client') && !('server' in flagOptions('server')) && 'server-bind-address' in flagOptions('server'));
  assert.match(flagHelp('relay'), /--relay-type\s+client \| autoclient \| relay \| cone \| restricted \[RelayType\]/);
});
