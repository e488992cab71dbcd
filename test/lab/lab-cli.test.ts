/**
 * `transit6 lab up|status|down` as a user runs it (root only): the command in a child process, its --json output
 * checked for the real facts, the labs checked to outlive it, `lab status` to list them and `lab down` to leave no
 * namespace behind.
 *   1. --only isatap,6to4: every node's addresses on its interface, ISATAP host to host direct, every ping answered;
 *   2. the default parts (teredo, isatap, 6to4, portproxy; two Teredo clients to keep it short): a section per part;
 *   3. --only portproxy: no direct path between the IPv4-only and the IPv6-only host, both ways through the proxy;
 *   4. a part that fails after another was built: exit 1 and nothing of this `up` left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { isAlive, run } from '../../src/lab/exec.js';
import { cleanupStale, randomLabPrefix, readLabStates } from '../../src/lab/netns.js';
import { haveCommand, TRANSIT6 } from '../../src/lab/proto41-topology.js';
import type { Proto41Result } from '../../src/lab/proto41-lab.js';
import type { PortProxyResult } from '../../src/lab/portproxy-lab.js';
import { namespacesWith, skipUnlessRoot } from './helpers.js';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TRANSIT6, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function missingTools(): string | undefined {
  for (const [cmd, arg] of [['radvd', '-v'], ['socat', '-V'], ['conntrack', '--version'], ['iptables', '--version']] as const) if (!haveCommand(cmd, [arg])) return `${cmd} missing: run scripts/install-deps.sh`;
  return undefined;
}

function checkIsatap(r: Proto41Result, base: string): void {
  assert.equal(r.prefix, `${base}isatap-`);
  const node = (n: string): Proto41Result['nodes'][number] => r.nodes.find((x) => x.name === n)!;
  for (const n of r.nodes) assert.ok(n.onInterface, `${n.name}: ${n.addresses.join(' ')} on ${n.interface}`);
  assert.deepEqual(node('host1').addresses, ['fe80::5efe:a14:b', '2001:db8:5e:1:0:5efe:a14:b']);
  assert.deepEqual(node('host2').addresses, ['fe80::5efe:a14:c', '2001:db8:5e:1:0:5efe:a14:c']);
  assert.equal(node('host1').state, 'configured');
  assert.equal(node('host2').defaultRouter, '10.20.0.1');
  assert.deepEqual(
    r.pings.map((p) => `${p.from}>${p.to}`),
    ['host1>host2', 'host2>host1', 'host1>v6host', 'host2>v6host'],
  );
  for (const p of r.pings) assert.ok(p.received > 0 && p.sent === 3, JSON.stringify(p));
  assert.ok(r.facts.some((f) => /router received 0 packet/.test(f)), r.facts.join('; '));
}

function check6to4(r: Proto41Result, base: string): void {
  assert.equal(r.prefix, `${base}6to4-`);
  const node = (n: string): Proto41Result['nodes'][number] => r.nodes.find((x) => x.name === n)!;
  for (const n of r.nodes) assert.ok(n.onInterface, `${n.name}: ${n.addresses.join(' ')} on ${n.interface}`);
  assert.deepEqual(node('host').addresses, ['2002:cb00:7102::cb00:7102']);
  assert.deepEqual(node('router').addresses, ['2002:c633:6402::c633:6402']);
  assert.deepEqual(node('relay').addresses, ['2002:c633:6412::c633:6412']);
  assert.match(node('lan-host').addresses[0]!, /^2002:c633:6402:1:/);
  assert.equal(r.pings.length, 5);
  for (const p of r.pings) assert.ok(p.received > 0 && p.sent === 3, JSON.stringify(p));
  assert.ok(r.pings.some((p) => p.from === 'v6host' && p.to === 'host'), 'native host -> 6to4 host through the relay');
}

/** The labs of `base` are running after `up` exited; status lists their daemons' addresses; down removes them. */
async function statusThenDown(base: string, parts: string[]): Promise<void> {
  const states = readLabStates().filter((s) => s.prefix.startsWith(base));
  assert.deepEqual(states.map((s) => s.prefix).sort(), parts.map((p) => `${base}${p}-`).sort());
  for (const s of states) {
    assert.equal(s.persistent, true, s.prefix);
    for (const p of s.processes) assert.ok(isAlive(p.pid, p.startTime ?? undefined), `${p.name} (pid ${p.pid}) runs after 'lab up' exited`);
  }
  const st = await cli(['lab', 'status', '--json']);
  assert.equal(st.code, 0, st.stderr);
  const labs = (JSON.parse(st.stdout) as { labs: { prefix: string; tunnels: { name: string; addresses: string[] }[] }[] }).labs.filter((l) => l.prefix.startsWith(base));
  const isatap = labs.find((l) => l.prefix === `${base}isatap-`);
  if (parts.includes('isatap')) assert.ok(isatap?.tunnels.some((t) => t.name === 'host1' && t.addresses.includes('2001:db8:5e:1:0:5efe:a14:b')), JSON.stringify(isatap));
  const s4 = labs.find((l) => l.prefix === `${base}6to4-`);
  if (parts.includes('6to4')) assert.ok(s4?.tunnels.some((t) => t.name === 'relay' && t.addresses.includes('2002:c633:6412::c633:6412')), JSON.stringify(s4));
  const down = await cli(['lab', 'down', '--prefix', base]);
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /removed \d+ namespace/);
  assert.deepEqual(await namespacesWith(base), []);
  assert.equal(readLabStates().some((s) => s.prefix.startsWith(base)), false);
}

test('lab up --only isatap,6to4: addresses on the interfaces, pings answered; status lists them; down removes them', async (t) => {
  if (skipUnlessRoot(t)) return;
  const missing = missingTools();
  if (missing) return void t.skip(missing);
  const base = randomLabPrefix();
  try {
    const up = await cli(['lab', 'up', '--only', 'isatap,6to4', '--prefix', base, '--json']);
    assert.equal(up.code, 0, up.stderr);
    const out = JSON.parse(up.stdout) as { prefix: string; parts: string[]; isatap: Proto41Result; '6to4': Proto41Result; teredo?: unknown };
    assert.equal(out.prefix, base);
    assert.deepEqual(out.parts, ['isatap', '6to4']);
    assert.equal(out.teredo, undefined);
    checkIsatap(out.isatap, base);
    check6to4(out['6to4'], base);
    assert.ok((await namespacesWith(`${base}isatap-`)).length === 5 && (await namespacesWith(`${base}6to4-`)).length === 6);
    await statusThenDown(base, ['isatap', '6to4']);
  } finally {
    await cleanupStale(base, { includeLive: true });
  }
});

test('lab up with the default parts: Teredo, ISATAP, 6to4 and PortProxy, each its own lab', async (t) => {
  if (skipUnlessRoot(t)) return;
  const missing = missingTools();
  if (missing) return void t.skip(missing);
  const base = randomLabPrefix();
  try {
    const up = await cli(['lab', 'up', '--clients', 'prc,pub', '--prefix', base]);
    assert.equal(up.code, 0, up.stderr);
    // The text a person reads: a section per part with the facts.
    assert.match(up.stdout, new RegExp(`== Teredo lab ${base}teredo-`));
    assert.match(up.stdout, /All 6 cells are what RFC 6081 expects/);
    assert.match(up.stdout, /host1 {2}host2 {3}2001:db8:5e:1:0:5efe:a14:c {2}3\/3 /);
    assert.match(up.stdout, /host {6}v6host {4}2001:db8:70::10 +3\/3 /);
    assert.match(up.stdout, /v6host +\[2001:db8:6::1\]:8004 +v6tov4 -> 198\.51\.100\.10:7007 +IPv4-only service 198\.51\.100\.10:7007, saw the client as 198\.51\.100\.1$/m);
    assert.match(up.stdout, new RegExp(`lab down --prefix ${base}`));
    const st = await cli(['lab', 'status']);
    assert.match(st.stdout, new RegExp(`lab ${base}teredo-: left running by 'lab up'`));
    assert.match(st.stdout, /cli-prc +qualified, NAT port-restricted, 2001:0:/);
    await statusThenDown(base, ['teredo', 'isatap', '6to4', 'portproxy']);
  } finally {
    await cleanupStale(base, { includeLive: true });
  }
});

test('lab up --only portproxy: the IPv4-only and the IPv6-only host reach each other only through the proxy', async (t) => {
  if (skipUnlessRoot(t)) return;
  if (!haveCommand('socat', ['-V'])) return void t.skip('socat missing: run scripts/install-deps.sh');
  const base = randomLabPrefix();
  try {
    const up = await cli(['lab', 'up', '--only', 'portproxy', '--prefix', base, '--json']);
    assert.equal(up.code, 0, up.stderr);
    const r = (JSON.parse(up.stdout) as { portproxy: PortProxyResult }).portproxy;
    assert.equal(r.prefix, `${base}portproxy-`);
    for (const n of r.nodes) assert.ok(n.onInterface, JSON.stringify(n));
    assert.deepEqual(
      r.connections.map((c) => [c.from, c.mode, c.reply === '' ? 'no answer' : c.reply.replace(/ answers .*$/, ''), c.seenAs]),
      [
        ['v6host', null, 'no answer', null],
        ['v4host', null, 'no answer', null],
        ['v6host', 'v6tov4', 'IPv4-only service 198.51.100.10:7007', '198.51.100.1'],
        ['v4host', 'v4tov6', 'IPv6-only service [2001:db8:6::10]:7007', '2001:db8:6::1'],
      ],
    );
    assert.deepEqual(r.rules.map((x) => [x.mode, x.status, x.accepted]), [['v6tov4', 'listening', 1], ['v4tov6', 'listening', 1]]);
    await statusThenDown(base, ['portproxy']);
  } finally {
    await cleanupStale(base, { includeLive: true });
  }
});

test('lab up: a part that fails after another was built leaves nothing of this up (exit 1)', async (t) => {
  if (skipUnlessRoot(t)) return;
  const missing = missingTools();
  if (missing) return void t.skip(missing);
  const base = randomLabPrefix();
  // A namespace in the way of the 6to4 part: the ISATAP part is up by then.
  const blocker = `${base}6to4-s4-inet`;
  await run('ip', ['netns', 'add', blocker]);
  try {
    const up = await cli(['lab', 'up', '--only', 'isatap,6to4', '--prefix', base, '--no-matrix']);
    assert.equal(up.code, 1, up.stdout);
    assert.match(up.stderr, /isatap: built 5 namespaces/);
    assert.match(up.stderr, /failed; everything it made was torn down/);
    assert.deepEqual(await namespacesWith(base), [blocker]);
    assert.equal(readLabStates().some((s) => s.prefix.startsWith(base)), false);
  } finally {
    await run('ip', ['netns', 'del', blocker], { allowFailure: true });
    await cleanupStale(base, { includeLive: true });
  }
  assert.deepEqual(await namespacesWith(base), []);
});
