/**
 * What a user installs: the npm package (packed, installed globally into a temporary prefix, the native addon
 * built on install), the systemd units and the sample configurations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveDaemonConfig } from '../../src/config/daemon.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const ROLES = ['client', 'relay', 'server'] as const;
/** The units of the other daemons: options from an EnvironmentFile (sample in packaging/examples/). */
const OTHER_UNITS = [
  { unit: 'transit6-isatap-host.service', env: 'transit6-isatap', exec: 'isatap host $TRANSIT6_ISATAP_HOST_OPTS', caps: 'CAP_NET_ADMIN CAP_NET_RAW', sysctl: false, radvd: false },
  { unit: 'transit6-isatap-router.service', env: 'transit6-isatap', exec: 'isatap router $TRANSIT6_ISATAP_ROUTER_OPTS', caps: 'CAP_NET_ADMIN CAP_NET_RAW', sysctl: true, radvd: true },
  { unit: 'transit6-6to4.service', env: 'transit6-6to4', exec: '6to4 $TRANSIT6_6TO4_MODE $TRANSIT6_6TO4_OPTS', caps: 'CAP_NET_ADMIN CAP_NET_RAW', sysctl: true, radvd: true },
  { unit: 'transit6-portproxy.service', env: 'transit6-portproxy', exec: 'portproxy run --config /etc/transit6/portproxy.conf $TRANSIT6_PORTPROXY_OPTS', caps: 'CAP_NET_BIND_SERVICE', sysctl: false, radvd: false },
] as const;

test('docs/transit6.md is generated from the help texts and directive table, and up to date', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts/gen-docs.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const doc = readFileSync(join(ROOT, 'docs/transit6.md'), 'utf8');
  for (const section of ['## NAME', '## SYNOPSIS', '## COMMANDS', '## DAEMON SETTINGS', '## METRICS', '## CAPTURE', '## SIGNALS', '## EXIT STATUS']) assert.ok(doc.includes(section), section);
  assert.ok(doc.includes('| `Metrics` | `--metrics` | client, relay, server |'));
});

test('sample configurations: one per role, read without a warning', () => {
  for (const role of ROLES) {
    const c = resolveDaemonConfig(role, join(ROOT, 'packaging/examples', `${role}.conf`), {}, { defaultControlPath: () => '/run/x.sock' });
    assert.deepEqual(c.warnings, [], role);
    assert.ok(c.metrics, `${role}: metrics on in the sample`);
  }
});

test('systemd units: Type=notify, reload by SIGHUP, the sample config, hardening; systemd-analyze verify accepts them', (t) => {
  const dir = join(ROOT, 'packaging/systemd');
  const units = readdirSync(dir).filter((f) => f.endsWith('.service')).sort();
  assert.deepEqual(units, [...ROLES.map((r) => `transit6-teredo-${r}.service`), ...OTHER_UNITS.map((u) => u.unit)].sort());
  const tmp = mkdtempSync(join(tmpdir(), 't6-units-'));
  try {
    for (const role of ROLES) {
      const text = readFileSync(join(dir, `transit6-teredo-${role}.service`), 'utf8');
      const has = (line: string) => assert.ok(text.split('\n').includes(line), `${role}: ${line}`);
      has('Type=notify');
      has('ExecReload=/bin/kill -HUP $MAINPID');
      has(`ExecStart=/usr/local/bin/transit6 teredo ${role} -f -c /etc/transit6/${role}.conf`);
      for (const h of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK', 'SystemCallFilter=@system-service']) has(h);
      assert.match(text, /^CapabilityBoundingSet=.*CAP_NET_ADMIN/m);
      if (role === 'server') assert.match(text, /^CapabilityBoundingSet=.*CAP_NET_RAW/m);
      else has('DeviceAllow=/dev/net/tun rw');
      // verify needs the ExecStart binary to exist: point it at this checkout's.
      writeFileSync(join(tmp, `transit6-teredo-${role}.service`), text.replace('/usr/local/bin/transit6', join(ROOT, 'bin/transit6.js')));
    }
    for (const u of OTHER_UNITS) {
      const text = readFileSync(join(dir, u.unit), 'utf8');
      const lines = text.split('\n');
      const has = (line: string) => assert.ok(lines.includes(line), `${u.unit}: ${line}`);
      has('Type=notify');
      has('NotifyAccess=main');
      has(`EnvironmentFile=-/etc/default/${u.env}`);
      has(`ExecStart=/usr/local/bin/transit6 ${u.exec}`);
      has(`CapabilityBoundingSet=${u.caps}`);
      has(`ProtectKernelTunables=${u.sysctl ? 'no' : 'yes'}`);
      // Only portproxy handles SIGHUP; the tunnel daemons would die of it.
      assert.equal(lines.includes('ExecReload=/bin/kill -HUP $MAINPID'), u.unit === 'transit6-portproxy.service', `${u.unit}: ExecReload`);
      if (u.caps.includes('CAP_NET_ADMIN')) has('DeviceAllow=/dev/net/tun rw');
      else has('PrivateDevices=yes');
      if (u.radvd) has('KillMode=mixed');
      for (const h of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'RuntimeDirectory=transit6', 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK', 'SystemCallFilter=@system-service']) has(h);
      writeFileSync(join(tmp, u.unit), text.replace('/usr/local/bin/transit6', join(ROOT, 'bin/transit6.js')));
    }
    const all = [...ROLES.map((r) => `transit6-teredo-${r}.service`), ...OTHER_UNITS.map((u) => u.unit)];
    const v = spawnSync('systemd-analyze', ['verify', ...all.map((u) => join(tmp, u))], { encoding: 'utf8' });
    if (v.error) {
      t.diagnostic('systemd-analyze is not installed: units not verified');
      return;
    }
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr.trim(), '', v.stderr);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('sample environment files: every variable an ExecStart uses is set, its --options exist, the 6to4 mode is a mode', () => {
  for (const u of OTHER_UNITS) {
    const vars = new Map<string, string>();
    for (const line of readFileSync(join(ROOT, 'packaging/examples', u.env), 'utf8').split('\n')) {
      if (/^\s*(#|$)/.test(line)) continue;
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      assert.ok(m, `${u.env}: not VAR=value: ${line}`);
      vars.set(m[1]!, m[2]!);
    }
    const unit = readFileSync(join(ROOT, 'packaging/systemd', u.unit), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!;
    const used = [...exec.matchAll(/\$([A-Z0-9_]+)/g)].map((m) => m[1]!);
    assert.ok(used.length > 0, u.unit);
    for (const name of used) assert.ok(vars.has(name), `${u.env} sets ${name} (${u.unit})`);
    // The command line systemd would run (words split at spaces): every --option in it is one the command's help
    // lists.
    const argv = exec.split(/\s+/).slice(1).flatMap((w) => (w.startsWith('$') ? (vars.get(w.slice(1)) ?? '').split(/\s+/).filter(Boolean) : [w]));
    if (u.unit === 'transit6-6to4.service') assert.ok(['host', 'router', 'relay'].includes(argv[1]!), `mode ${argv[1]}`);
    const help = spawnSync(process.execPath, [join(ROOT, 'bin/transit6.js'), argv[0]!, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    const flags = argv.filter((w) => w.startsWith('--'));
    assert.ok(flags.length > 0, u.env);
    for (const f of flags) assert.match(help.stdout, new RegExp(`\\s${f}\\b`), `${u.env}: ${f} is an option of transit6 ${argv[0]}`);
  }
});

test('npm pack, then npm install -g into a fresh prefix: a working transit6 with its native addon built on install', { timeout: 180_000 }, (t) => {
  if (spawnSync('npm', ['--version']).status !== 0) {
    t.skip('npm is not installed');
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 't6-npm-'));
  try {
    // dist/ is already built by the test run: pack without running `prepare` again.
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(pack.status, 0, pack.stderr);
    const info = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = info[0]!.files.map((f) => f.path);
    for (const f of ['bin/transit6.js', 'dist/src/cli/main.js', 'native/transit6.c', 'binding.gyp', 'docs/transit6.md', 'packaging/systemd/transit6-teredo-client.service', 'packaging/examples/client.conf']) {
      assert.ok(files.includes(f), `the package holds ${f}`);
    }
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('build/')), 'no tests or local build in the package');
    const prefix = join(tmp, 'prefix');
    const install = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', join(tmp, info[0]!.filename)], { encoding: 'utf8' });
    assert.equal(install.status, 0, install.stderr);
    const bin = join(prefix, 'bin/transit6');
    const h = spawnSync(bin, ['--help'], { encoding: 'utf8', cwd: tmp });
    assert.equal(h.status, 0, h.stderr);
    assert.match(h.stdout, /usage: transit6 <command>/);
    assert.match(h.stdout, /trace /);
    const addr = spawnSync(bin, ['addr', 'decode', '2001:0:4136:e378:8000:63bf:3fff:fdd2'], { encoding: 'utf8', cwd: tmp });
    assert.equal(addr.status, 0, addr.stderr);
    assert.match(addr.stdout, /65\.54\.227\.120/);
    // The addon was compiled on install and loads (it has the sd_notify sender).
    const addon = join(prefix, 'lib/node_modules/transit6/build/Release/transit6.node');
    const load = spawnSync(process.execPath, ['-e', `process.stdout.write(typeof require(${JSON.stringify(addon)}).unixDgramSend)`], { encoding: 'utf8' });
    assert.equal(load.stdout, 'function', load.stderr);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
