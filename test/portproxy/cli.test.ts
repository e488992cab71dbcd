/** transit6 portproxy: the CLI verbs against a temporary config file, and `run` as a child process over loopback
 *  (live apply from the file watch and SIGHUP, show --live through the control socket). No root needed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { backend, dial, dialAndRead, echo, freePort, readAll, until } from './helpers.js';
import { parseExposition } from '../io/exposition.js';
import { fakeNotifySocket, haveSocat } from '../io/fake-notify.js';

const MAIN = new URL('../../src/cli/main.js', import.meta.url).pathname;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['portproxy', ...args], { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) });
  return { code, out, err };
}

test('cli: add/set/delete/show/reset edit the file; bad usage is exit 2 and one line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-portproxy-cli-'));
  try {
    const cfg = ['--config', join(dir, 'pp.conf')];
    assert.equal((await cli(['add', 'v6tov4', 'listenport=8080', 'connectaddress=192.168.1.10', ...cfg])).code, 0);
    assert.equal((await cli(['add', 'v4tov6', '--listen-port', '8443', '--connect-address=2001:db8::10', '--connect-port', '443', '--proxy-protocol', 'v2', ...cfg])).code, 0);
    let r = await cli(['set', 'v6tov4', 'listenport=8080', 'connectport=80', 'limit=10', ...cfg]);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'changed: v6tov4 listenport=8080 listenaddress=* connectaddress=192.168.1.10 connectport=80 limit=10\n');
    assert.equal(
      readFileSync(join(dir, 'pp.conf'), 'utf8').split('\n').slice(1).join('\n'),
      'v4tov6 listenport=8443 listenaddress=* connectaddress=2001:db8::10 connectport=443 proxy=v2\n' +
        'v6tov4 listenport=8080 listenaddress=* connectaddress=192.168.1.10 connectport=80 limit=10\n',
    );
    r = await cli(['show', 'v6tov4', ...cfg]);
    assert.match(r.out, /Listen on ipv6: +Connect to ipv4:/);
    assert.doesNotMatch(r.out, /8443/);
    r = await cli(['show', '--json', ...cfg]);
    const j = JSON.parse(r.out) as { rules: { mode: string; connectPort: number }[] };
    assert.deepEqual(j.rules.map((x) => [x.mode, x.connectPort]), [['v4tov6', 443], ['v6tov4', 80]]);
    r = await cli(['delete', 'v6tov4', 'listenport=8080', ...cfg]);
    assert.equal(r.code, 0);
    r = await cli(['delete', 'v6tov4', 'listenport=8080', ...cfg]);
    assert.equal(r.code, 1);
    assert.match(r.err, /no v6tov4 rule listens on \*:8080/);
    r = await cli(['reset', ...cfg]);
    assert.equal(r.out, `removed 1 rule from ${join(dir, 'pp.conf')}\n`);
    assert.match((await cli(['show', ...cfg])).out, /^no rules in /);

    const usage: string[][] = [
      [],
      ['frob'],
      ['add'],
      ['add', 'v4tov5', 'listenport=1'],
      ['add', 'v4tov4'],
      ['add', 'v4tov4', 'listenport=70000'],
      ['add', 'v4tov6', 'listenport=80', 'connectaddress=198.51.100.1'],
      ['add', 'v4tov4', 'listenport=80', '--bogus'],
      ['add', 'v4tov4', '--listen-port'],
      ['show', 'v9'],
      ['reset', 'x'],
      ['run', 'x'],
    ];
    for (const args of usage) {
      const u = await cli([...args, ...cfg]);
      assert.equal(u.code, 2, args.join(' '));
      assert.equal(u.err.trimEnd().split('\n').length, 1, `one line: ${u.err}`);
      assert.match(u.err, /^transit6 portproxy: /);
    }
    writeFileSync(join(dir, 'pp.conf'), 'v4tov4 listenport=1\nv4tov4 listenport=2 connectaddress=::1\n');
    r = await cli(['show', ...cfg]);
    assert.equal(r.code, 2);
    assert.match(r.err, /pp\.conf:2: bad connectaddress '::1'/);
    assert.match((await cli(['--help'])).out, /examples:/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run: rules added with the CLI apply live (file watch), SIGHUP reloads, show --live reports, a bad file keeps the old rules', async () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-portproxy-run-'));
  const be = await backend('::1', echo);
  const conf = join(dir, 'pp.conf');
  const sock = join(dir, 'control.sock');
  const metricsPort = await freePort('127.0.0.1');
  const child = spawn(process.execPath, [MAIN, 'portproxy', 'run', '--config', conf, '--control', sock, '--metrics', `127.0.0.1:${metricsPort}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, TRANSIT6_LOG_LEVEL: 'info' },
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await until(() => /ready/.test(log), `the daemon to start; log:\n${log}`);
    const port = await freePort('127.0.0.1');
    assert.equal((await cli(['add', 'v4tov6', `listenport=${port}`, `connectport=${be.port}`, '--config', conf])).code, 0);
    await until(() => /listening/.test(log), `the new rule to be applied; log:\n${log}`);
    const c = await dial('127.0.0.1', port);
    const got = readAll(c);
    c.end('through the daemon');
    assert.equal((await got).data.toString(), 'through the daemon');

    const live = await cli(['show', '--live', '--config', conf, '--control', sock]);
    assert.equal(live.code, 0, live.err);
    assert.match(live.out, new RegExp(`v4tov6 +\\*:${port} +\\[::1\\]:${be.port} +listening +\\d+ +1 `));
    const liveJson = JSON.parse((await cli(['show', '--live', '--json', '--config', conf, '--control', sock])).out) as { live: { counters: Record<string, number> }[] };
    assert.equal(liveJson.live[0]!.counters.accepted, 1);

    // --metrics: the same connection in Prometheus's text format, over loopback.
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(res.status, 200);
    const fams = parseExposition(await res.text());
    const labels = { mode: 'v4tov6', listen: `*:${port}`, target: `[::1]:${be.port}` };
    const sample = (name: string, extra: Record<string, string> = {}): number | undefined =>
      fams.get(name)?.samples.find((x) => Object.entries({ ...labels, ...extra }).every(([k, v]) => x.labels[k] === v))?.value;
    assert.equal(sample('transit6_portproxy_connections_accepted_total'), 1, JSON.stringify([...fams.keys()]));
    assert.equal(sample('transit6_portproxy_bytes_total', { direction: 'to_target' }), 'through the daemon'.length);
    assert.equal(sample('transit6_portproxy_bytes_total', { direction: 'to_client' }), 'through the daemon'.length);
    assert.equal(sample('transit6_portproxy_connections_refused_total', { reason: 'limit' }), 0);
    assert.equal(sample('transit6_portproxy_listening'), 1);

    // A malformed file is refused with its line; the running rule stays.
    writeFileSync(conf, `v4tov6 listenport=${port} connectport=${be.port}\nv4tov6 nonsense\n`);
    await until(() => /config not applied/.test(log), 'the bad file to be reported');
    assert.match(log, /pp\.conf:2:/);
    const c2 = await dial('127.0.0.1', port);
    const got2 = readAll(c2);
    c2.end('still');
    assert.equal((await got2).data.toString(), 'still');

    // SIGHUP: reload by hand (here the rule goes away).
    writeFileSync(conf, '');
    child.kill('SIGHUP');
    await until(() => /rule removed/.test(log), 'the reload');
    assert.equal((await dialAndRead('127.0.0.1', port)).error, 'ECONNREFUSED');
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await be.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run under systemd (a fake NOTIFY_SOCKET): READY=1 with the rule count, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1', { skip: haveSocat() ? false : 'socat is not installed (scripts/install-deps.sh)' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 't6-portproxy-notify-'));
  const notify = await fakeNotifySocket();
  const be = await backend('::1', echo);
  const conf = join(dir, 'pp.conf');
  const port = await freePort('127.0.0.1');
  writeFileSync(conf, `v4tov6 listenport=${port} connectport=${be.port}\n`);
  const child = spawn(process.execPath, [MAIN, 'portproxy', 'run', '--config', conf, '--control', join(dir, 'control.sock')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NOTIFY_SOCKET: notify.path },
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await notify.waitFor(/READY=1\nSTATUS=1 rule from /);
    // READY=1 comes once the rule listens.
    const c = await dial('127.0.0.1', port);
    const got = readAll(c);
    c.end('ready means listening');
    assert.equal((await got).data.toString(), 'ready means listening');
    assert.doesNotMatch(notify.text(), /RELOADING|STOPPING/);

    writeFileSync(conf, '');
    await until(() => /config applied|rule removed/.test(log), `the file watch's reload; log:\n${log}`);
    child.kill('SIGHUP');
    // RELOADING=1 carries MONOTONIC_USEC; the READY=1 after it tells the new rule count.
    await notify.waitFor(/RELOADING=1\nMONOTONIC_USEC=\d+\n*READY=1\nSTATUS=0 rules from [^]*RELOADING=1\nMONOTONIC_USEC=\d+\n*READY=1\nSTATUS=0 rules from /);
    writeFileSync(conf, 'v4tov6 nonsense\n');
    await notify.waitFor(/READY=1\nSTATUS=config not applied \(.*pp\.conf:1:.*\); running 0 rules from /);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, log);
    const all = await notify.waitFor(/STOPPING=1\nSTATUS=stopping \(SIGTERM\)/);
    assert.equal(all.match(/STOPPING=1/g)!.length, 1);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    notify.close();
    await be.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
