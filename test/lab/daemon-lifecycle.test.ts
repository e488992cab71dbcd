/**
 * The daemons' life in a real namespace: pid file, control socket, running as an unprivileged user with the
 * privileged helper, SIGHUP reload, clean shutdown that takes the tunnel's addresses and routes away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildTeredoTopology } from '../../src/lab/teredo-topology.js';
import { inNs } from '../../src/lab/exec.js';
import { BIN, skipUnlessRoot, teredoState as state, waitFor } from './helpers.js';

test('client daemon: pid file, unprivileged user (nobody by default), reload on SIGHUP, clean shutdown', { timeout: 90_000 }, async (t) => {
  if (skipUnlessRoot(t)) return;
  const { lab, topology } = await buildTeredoTopology({ clients: ['cli-prc'] });
  try {
    const cli = topology.clients[0]!;
    lab.spawn(topology.server.ns, 'server', process.execPath, [BIN, 'teredo', 'server', '-f', '--server-bind-address', '198.51.100.1']);
    await waitFor('the server', () => state(topology.server.ns));
    const pidFile = join(lab.runDir, 'client.pid');
    const client = lab.spawn(cli.ns, 'client', process.execPath, [BIN, 'teredo', 'client', '-f', '-p', pidFile, '--server', '198.51.100.1', '--interface', 'teredo']);
    const s = await waitFor('qualification', async () => {
      const st = await state(cli.ns);
      return st && st.state === 'qualified' && st.interfaceStatus === 'up' && st.natDetection === 'done' ? st : undefined;
    });
    assert.equal(s.natType, 'port-restricted');
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(client.pid));
    // Running as nobody now; the tunnel carries the Teredo address the helper configured.
    const status = readFileSync(`/proc/${client.pid}/status`, 'utf8');
    const uid = /^Uid:\s+(\d+)/m.exec(status)![1];
    assert.notEqual(uid, '0');
    const addr = await inNs(cli.ns, 'ip', ['-6', 'addr', 'show', 'dev', 'teredo']);
    assert.match(addr.stdout, new RegExp(String(s.teredoAddress).replace(/:/g, ':')));
    const routes = await inNs(cli.ns, 'ip', ['-6', 'route', 'show', 'dev', 'teredo']);
    assert.match(routes.stdout, /default .*metric 1029/);
    // SIGHUP as an unprivileged daemon: a new core takes over the open tunnel and socket, and qualifies again.
    process.kill(client.pid, 'SIGHUP');
    await client.waitForLog(/reloaded in place/, 5000);
    const r = await waitFor('qualification and NAT type after the reload', async () => {
      const st = await state(cli.ns);
      return st && st.state === 'qualified' && st.natDetection === 'done' ? st : undefined;
    });
    // The new core sits on the warm mapping whose filter the first detection opened to the secondary address: it
    // keeps the first result (same mapping) rather than mistake the NAT for a cone.
    assert.equal(r.natType, 'port-restricted');
    assert.equal(r.externalMapping, s.externalMapping);
    assert.equal(r.teredoAddress, s.teredoAddress);
    assert.match(client.log(), /NAT type: port-restricted NAT \(unchanged mapping: the previous detection stands\)/);
    // SIGTERM: addresses and routes go, the process exits.
    await client.stop(5000);
    const after = await inNs(cli.ns, 'ip', ['-6', 'addr', 'show', 'dev', 'teredo'], { allowFailure: true });
    assert.doesNotMatch(after.stdout, /2001:0:/);
    assert.equal(await state(cli.ns), undefined);
  } finally {
    await lab.destroy();
  }
});

test('client daemon kept as root (--user root) reloads on SIGHUP by restarting, and qualifies again', { timeout: 60_000 }, async (t) => {
  if (skipUnlessRoot(t)) return;
  const { lab, topology } = await buildTeredoTopology({ clients: ['cli-pub'] });
  try {
    const cli = topology.clients[0]!;
    lab.spawn(topology.server.ns, 'server', process.execPath, [BIN, 'teredo', 'server', '-f', '--server-bind-address', '198.51.100.1']);
    await waitFor('the server', () => state(topology.server.ns));
    const client = lab.spawn(cli.ns, 'client', process.execPath, [BIN, 'teredo', 'client', '-f', '--server', '198.51.100.1', '--interface', 'teredo', '--user', 'root']);
    await waitFor('qualification', async () => ((await state(cli.ns))?.state === 'qualified' ? true : undefined));
    process.kill(client.pid, 'SIGHUP');
    await client.waitForLog(/reloading the configuration/, 5000);
    const s = await waitFor('qualification after reload', async () => {
      const st = await state(cli.ns);
      return st && st.state === 'qualified' && Number(st.uptimeMs) < 5000 ? st : undefined;
    });
    assert.equal(s.natType === 'none' || s.natType === 'unknown' || s.natType === 'cone', true, String(s.natType));
    assert.ok(client.running);
  } finally {
    await lab.destroy();
  }
});

test('a bad configuration file is refused with its line number, exit 2', async (t) => {
  if (skipUnlessRoot(t)) return;
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { spawnSync } = await import('node:child_process');
  const dir = mkdtempSync(join(tmpdir(), 't6-conf-'));
  try {
    const f = join(dir, 'miredo.conf');
    writeFileSync(f, 'RelayType client\nServerAddress 10.1.2.3\n');
    const r = spawnSync(process.execPath, [BIN, 'teredo', 'client', '-f', '-c', f], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /line 2/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
