/**
 * `transit6 isatap` and `transit6 6to4` command lines (bad usage: exit 2 and one line, before anything is opened),
 * the radvd configurations they write, `show` formatting, and the name resolution of src/io/proto41.ts (hosts
 * file, then DNS with the search domains).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { formatTunnelJson, isatapRadvdConfig } from '../../src/cli/isatap.js';
import { radvdConfig, relayAddress } from '../../src/cli/sixtofour.js';
import { createLogger } from '../../src/io/log.js';
import { candidateNames, hostsLookup, parseResolvConf, resolveIpv4Name } from '../../src/io/proto41.js';
import { parseIpv4 } from '../../src/wire/ip.js';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err };
}

test('bad usage: exit 2 with one line, nothing started', async () => {
  const cases: [string[], RegExp][] = [
    [['isatap', 'router'], /needs at least one --prefix/],
    [['isatap', 'router', '--prefix', '2001:db8::/48'], /ISATAP prefixes are \/64/],
    [['isatap', 'router', '--prefix', 'fe80::/64'], /not a unicast prefix/],
    [['isatap', 'router', '--prefix', 'nonsense'], /not an IPv6 prefix/],
    [['isatap', 'router', '--prefix', '2001:db8::/64', '--advertiser', 'bird'], /core or radvd/],
    [['isatap', 'host', '--prefix', '2001:db8::/64'], /--prefix is for 'isatap router'/],
    [['isatap', 'host', '--router', 'bad name!'], /neither an IPv4 address nor a host name/],
    [['isatap', 'host', '--router', 'a.example', '--router', 'b.example'], /one name at most/],
    [['isatap', 'host', '--local', '10.1'], /not an IPv4 address/],
    [['isatap', 'host', '--bogus'], /Unknown option '--bogus'/],
    [['isatap', 'bridge'], /unknown role 'bridge'/],
    [['isatap', 'show', 'peers'], /state or stats/],
    [['6to4', 'host', '--local', '10.1.2.3'], /10\.1\.2\.3 is in 10\.0\.0\.0\/8, private \(RFC 1918\): 6to4 needs a public IPv4 address/],
    [['6to4', 'host', '--local', '192.168.7.7'], /private \(RFC 1918\)/],
    [['6to4', 'host', '--local', '192.88.99.1'], /names the relays, not a 6to4 site/],
    [['6to4', 'host', '--local', '198.51.100.2', '--relay', '10.0.0.1'], /--relay 10\.0\.0\.1 is in 10\.0\.0\.0\/8/],
    [['6to4', 'router', '--local', '198.51.100.2'], /needs --lan IFACE/],
    [['6to4', 'host', '--lan', 'eth1'], /--lan is for '6to4 router'/],
    [['6to4', 'relay', '--relay', '198.51.100.1'], /--relay is for/],
    [['6to4', 'router', '--lan', 'eth1', '--subnet', '70000', '--local', '198.51.100.2'], /--subnet 70000: a whole number from 0 to 65535/],
    [['6to4', 'tunnel'], /unknown mode 'tunnel'/],
    [['6to4', 'router', '--lan', 'nosuchif0', '--local', '198.51.100.2'], /--lan nosuchif0: no such interface/],
    [['6to4', 'host', '--local', '198.51.100.2', '--strict-relay'], /--strict-relay needs --relay/],
    [['6to4', 'relay', '--strict-relay'], /--strict-relay is for/],
    [['isatap', 'host', '--router', '10.0.0.1', '--local', '10.0.0.2', '--metrics', '9545'], /--metrics '9545' is not HOST:PORT/],
    [['isatap', 'router', '--prefix', '2001:db8::/64', '--local', '10.0.0.1', '--metrics', '127.0.0.1:70000'], /the port must be 1-65535/],
    [['isatap', 'host', '--router', '10.0.0.1', '--local', '10.0.0.2', '--log-level', 'loud'], /--log-level loud: debug, info, warn or error/],
    [['6to4', 'host', '--local', '198.51.100.2', '--pcap', ''], /--pcap needs a file name/],
    [['6to4', 'relay', '--local', '198.51.100.2', '--metrics', '[nope]:9546'], /is not an IPv6 address/],
    [['portproxy', 'show', '--metrics', '127.0.0.1:9547'], /--metrics belongs to run, not show/],
    [['portproxy', 'run', '--metrics', 'localhost'], /--metrics 'localhost' is not HOST:PORT/],
  ];
  for (const [argv, re] of cases) {
    const r = await run(...argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err.join('|')}`);
    assert.equal(r.err.length, 1, argv.join(' '));
    assert.ok(!r.err[0]!.includes('\n'), argv.join(' '));
    assert.match(r.err[0]!, re, argv.join(' '));
  }
});

test('--help: usage with examples, exit 0', async () => {
  for (const family of ['isatap', '6to4']) {
    const r = await run(family, '--help');
    assert.equal(r.code, 0);
    assert.match(r.out, /examples:/);
    assert.match(r.out, new RegExp(`transit6 ${family} show state`));
  }
  const top = await run('--help');
  assert.match(top.out, /isatap\s+run an ISATAP host or router/);
  assert.match(top.out, /6to4\s+run a 6to4 host/);
});

test('radvd configurations: ISATAP is UnicastOnly with the router lifetime; the 6to4 LAN /64 on-link and autonomous', () => {
  const isatap = isatapRadvdConfig('isatap0', ['2001:db8:5e:1::/64'], 0, 1280);
  assert.match(isatap, /interface isatap0 \{/);
  assert.match(isatap, /UnicastOnly on;/);
  assert.match(isatap, /AdvDefaultLifetime 0;/);
  assert.match(isatap, /prefix 2001:db8:5e:1::\/64 \{\n\s+AdvOnLink on;\n\s+AdvAutonomous on;/);
  const lan = radvdConfig('eth1', '2002:c633:6402:1::/64', 600);
  assert.match(lan, /interface eth1 \{/);
  assert.match(lan, /MaxRtrAdvInterval 600;\n\s+MinRtrAdvInterval 200;/);
  assert.match(lan, /prefix 2002:c633:6402:1::\/64/);
});

test('show formatting: scalars as name : value, lists one line per entry', () => {
  const text = formatTunnelJson({ state: 'configured', dataPlane: 'user space (raw protocol 41)', prl: [{ router: '10.0.0.1', defaultRouter: true }], drops: {} });
  assert.match(text, /^state\s+: configured$/m);
  assert.match(text, /^data plane\s+: user space \(raw protocol 41\)$/m);
  assert.match(text, /^prl \(1\):\n  - router=10\.0\.0\.1, default router=true$/m);
  assert.match(text, /^drops: none$/m);
});

test('name resolution: hosts file entries and aliases, resolv.conf search domains and ndots', async () => {
  const hosts = '# comment\n127.0.0.1 localhost\n10.1.0.1 gw isatap.corp.example # the ISATAP router\n10.1.0.2 isatap.corp.example\nbad line\n';
  assert.deepEqual(hostsLookup(hosts, 'ISATAP.corp.example.'), [parseIpv4('10.1.0.1'), parseIpv4('10.1.0.2')]);
  assert.deepEqual(hostsLookup(hosts, 'isatap'), []);
  assert.deepEqual(parseResolvConf('domain a.example\nsearch corp.example lab.example\nnameserver 10.0.0.53\noptions ndots:2 timeout:1\n'), {
    search: ['corp.example', 'lab.example'],
    nameservers: ['10.0.0.53'],
    ndots: 2,
  });
  assert.deepEqual(candidateNames('isatap', ['corp.example', 'lab.example'], 1), ['isatap.corp.example', 'isatap.lab.example', 'isatap']);
  assert.deepEqual(candidateNames('isatap.corp.example', ['lab.example'], 1), ['isatap.corp.example', 'isatap.corp.example.lab.example']);
  assert.deepEqual(candidateNames('isatap.', ['lab.example'], 1), ['isatap']);
  const dir = mkdtempSync(join(tmpdir(), 't6-resolve-'));
  try {
    writeFileSync(join(dir, 'hosts'), hosts);
    writeFileSync(join(dir, 'resolv.conf'), 'search corp.example\nnameserver 127.0.0.1\n');
    const files = { hostsFile: join(dir, 'hosts'), resolvConf: join(dir, 'resolv.conf') };
    assert.deepEqual(await resolveIpv4Name('isatap', files), [parseIpv4('10.1.0.1'), parseIpv4('10.1.0.2')], 'the search domain finds the hosts entry');
    assert.deepEqual(await resolveIpv4Name('10.9.8.7', files), [parseIpv4('10.9.8.7')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A DNS server for the test: A records for `names`, NXDOMAIN for the rest; records every question. */
async function tinyDns(names: Record<string, string>): Promise<{ port: number; questions: string[]; close(): void }> {
  const sock = createSocket('udp4');
  const questions: string[] = [];
  sock.on('message', (q, rinfo) => {
    const labels: string[] = [];
    let i = 12;
    while (i < q.length && q[i] !== 0) {
      labels.push(q.subarray(i + 1, i + 1 + q[i]!).toString());
      i += 1 + q[i]!;
    }
    const name = labels.join('.').toLowerCase();
    const qtype = q.readUInt16BE(i + 1);
    questions.push(`${name}/${qtype}`);
    const question = q.subarray(12, i + 5);
    const addr = qtype === 1 ? names[name] : undefined;
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2);
    header.writeUInt16BE(names[name] ? 0x8180 : 0x8183, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(addr ? 1 : 0, 6);
    const answer = addr ? Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]), Buffer.from(addr.split('.').map(Number))]) : Buffer.alloc(0);
    sock.send(Buffer.concat([header, question, answer]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, questions, close: () => sock.close() };
}

test('name resolution: DNS after the hosts file, with the search domains first for a single-label name', async () => {
  const dns = await tinyDns({ 'isatap.corp.example': '10.1.0.9' });
  const dir = mkdtempSync(join(tmpdir(), 't6-resolve-'));
  try {
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
    writeFileSync(join(dir, 'resolv.conf'), `search lab.example corp.example\nnameserver 127.0.0.1:${dns.port}\n`);
    const files = { hostsFile: join(dir, 'hosts'), resolvConf: join(dir, 'resolv.conf') };
    assert.deepEqual(await resolveIpv4Name('isatap', files), [parseIpv4('10.1.0.9')]);
    assert.deepEqual(dns.questions, ['isatap.lab.example/1', 'isatap.corp.example/1']);
    await assert.rejects(resolveIpv4Name('nothing', files), /nothing: not in the hosts file, and DNS has no A record for nothing\.lab\.example, nothing\.corp\.example, nothing/);
  } finally {
    dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--relay: the RFC 3068 anycast relay only on request, with a warning (RFC 7526); private relays refused', async () => {
  const lines: string[] = [];
  const log = createLogger('test', { json: true, write: (l) => lines.push(l) });
  assert.equal(await relayAddress('anycast', log), parseIpv4('192.88.99.1'));
  assert.equal(await relayAddress('192.88.99.1', log), parseIpv4('192.88.99.1'));
  assert.equal(lines.filter((l) => /RFC 7526 deprecates it/.test(l)).length, 2);
  assert.equal(await relayAddress('198.51.100.18', log), parseIpv4('198.51.100.18'));
  assert.equal(lines.length, 2);
  await assert.rejects(relayAddress('172.16.0.1', log), /--relay 172\.16\.0\.1 is in 172\.16\.0\.0\/12, private/);
});
