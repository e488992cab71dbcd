import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../src/core/errors.js';
import { CommandError, isAlive, run } from '../../src/lab/exec.js';
import {
  assertLabPrefix,
  cleanupStale,
  installCleanupHandlers,
  Lab,
  LAB_STATE_DIR,
  liveLabList,
  natRules,
  parseConntrackUdp,
  randomLabPrefix,
  readLabStates,
} from '../../src/lab/netns.js';
import { ping } from '../../src/lab/probe.js';
import { buildTeredoTopology } from '../../src/lab/teredo-topology.js';
import { LAB_MODULE, namespacesWith, skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

test('prefixes: random ones are t6-<hex>-, anything not starting with t6- is refused', () => {
  const p = randomLabPrefix();
  assert.match(p, /^t6-[0-9a-f]{6}-$/);
  assert.notEqual(randomLabPrefix(), p);
  assertLabPrefix('t6-');
  assertLabPrefix('t6-abc-');
  for (const bad of ['', 't6', 'x6-abc-', 'abc-', 't6-abc', 't6-a/b-', ' t6-a-']) assert.throws(() => assertLabPrefix(bad), ConfigError, bad);
  assert.throws(() => new Lab({ prefix: 'lab-' }), ConfigError);
  assert.throws(() => new Lab({ prefix: 't6-' }), ConfigError);
  assert.equal(liveLabList().length, 0);
});

test('natRules: the report’s rules for each kind', () => {
  const base = { wan: 'wan0', lan: 'lan0', publicAddr: '203.0.113.33' };
  const prc = natRules('port-restricted', base);
  assert.match(prc, /-A POSTROUTING -o wan0 -p udp -j MASQUERADE --to-ports 20000-29999\n-A POSTROUTING -o wan0 -j MASQUERADE\n/);
  assert.match(prc, /-A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED,DNAT -j ACCEPT\n-A FORWARD -i wan0 -j DROP/);
  assert.match(prc, /-A INPUT -i wan0 -p icmp --icmp-type echo-request -j ACCEPT\n-A INPUT -i wan0 -j DROP/);
  assert.match(natRules('symmetric', base), /-A POSTROUTING -o wan0 -j MASQUERADE --random-fully\n/);
  const fc = natRules('full-cone', { ...base, staticUdp: { lanAddr: '192.168.3.10', lanPort: 3550, publicPort: 45454 } });
  assert.match(fc, /-A PREROUTING -i wan0 -p udp --dport 45454 -j DNAT --to-destination 192.168.3.10:3550/);
  assert.match(fc, /-A POSTROUTING -o wan0 -s 192.168.3.10 -p udp --sport 3550 -j SNAT --to-source 203.0.113.33:45454/);
  assert.throws(() => natRules('full-cone', base), ConfigError);
  assert.equal(natRules('none', base), '');
  assert.doesNotMatch(natRules('symmetric', { ...base, filter: false }), /\*filter/);
  assert.throws(() => natRules('port-restricted', { ...base, wan: 'wan0; rm' }), ConfigError);
});

test('parseConntrackUdp reads conntrack -L lines', () => {
  const text =
    'udp      17 27 src=192.168.1.10 dst=198.51.100.1 sport=33235 dport=7000 src=198.51.100.1 dst=203.0.113.1 sport=7000 dport=28150 mark=0 use=1\n' +
    'udp      17 110 src=192.168.1.10 dst=198.51.100.2 sport=1 dport=2 [UNREPLIED] src=198.51.100.2 dst=203.0.113.1 sport=2 dport=3 [ASSURED] mark=0 use=1\n' +
    'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n';
  const e = parseConntrackUdp(text);
  assert.equal(e.length, 2);
  assert.deepEqual(e[0], {
    timeout: 27,
    orig: { src: '192.168.1.10', dst: '198.51.100.1', sport: 33235, dport: 7000 },
    reply: { src: '198.51.100.1', dst: '203.0.113.1', sport: 7000, dport: 28150 },
    assured: false,
    unreplied: false,
  });
  assert.equal(e[1]!.assured, true);
  assert.equal(e[1]!.unreplied, true);
});

test('Lab: namespaces, veth link, addresses, sysctls, processes; destroy removes all and is idempotent', async (t) => {
  if (skipUnlessRoot(t)) return;
  const lab = new Lab({ stopGraceMs: 300 });
  try {
    assert.ok(existsSync(join(LAB_STATE_DIR, `${lab.prefix}.json`)));
    const a = await lab.addNamespace('a');
    const b = await lab.addNamespace('b');
    assert.equal(a, `${lab.prefix}a`);
    assert.deepEqual(await namespacesWith(lab.prefix), [a, b].sort());
    await lab.link('a', 'v-a', 'b', 'v-b');
    await lab.addAddress('a', 'v-a', '198.51.100.201/30');
    await lab.addAddress('b', 'v-b', '198.51.100.202/30');
    await lab.addAddress('a', 'v-a', '2001:db8:ff::1/64');
    await lab.addAddress('b', 'v-b', '2001:db8:ff::2/64');
    await lab.setForwarding('a', { ipv4: true, ipv6: true });
    assert.equal(await lab.readSysctl('a', 'net.ipv4.ip_forward'), '1');
    assert.equal(await lab.readSysctl('b', 'net.ipv4.ip_forward'), '0');
    assert.equal(await lab.readSysctl('b', 'net.ipv6.conf.all.accept_dad'), '0');
    assert.equal(await lab.readSysctl('b', 'net.ipv6.conf.default.accept_ra'), '0');
    assert.ok(await ping(lab, 'a', '198.51.100.202'));
    assert.ok(await ping(lab, 'b', '2001:db8:ff::1'));

    // Errors from the tools carry the command, exit code and stderr.
    const dup = await lab.link('a', 'v-a', 'b', 'v-c').then(
      () => assert.fail('duplicate interface accepted'),
      (e: unknown) => e,
    );
    assert.ok(dup instanceof CommandError);
    assert.notEqual(dup.exitCode, 0);
    assert.match(dup.message, /ip -n t6-\S+ link add v-a/);
    assert.match(dup.stderr, /exists/i);
    await assert.rejects(lab.exec('nope', 'true'), ConfigError);

    // Processes: one that exits on SIGTERM, one that ignores it (SIGKILL after the grace), one it leaves behind
    // in the namespace (killed with the namespace's other leftovers).
    const polite = lab.spawn('a', 'polite', process.execPath, ['-e', 'console.log("up"); setInterval(() => {}, 1000)']);
    const stubborn = lab.spawn('b', 'stubborn', process.execPath, [
      '-e',
      `process.on("SIGTERM", () => console.log("ignored")); require("child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {detached: true, stdio: "ignore"}).unref(); setInterval(() => {}, 1000); console.log("up")`,
    ]);
    await polite.waitForLog(/^up$/m);
    await stubborn.waitForLog(/^up$/m);
    assert.ok(polite.logPath.startsWith(lab.runDir));
    assert.match(polite.log(), /# .* polite in t6-/);
    const state = readLabStates().find((s) => s.prefix === lab.prefix)!;
    assert.deepEqual(state.processes.map((p) => p.pid), [polite.pid, stubborn.pid]);
    const inB = (await run('ip', ['netns', 'pids', b])).stdout.split(/\s+/).filter(Boolean).map(Number);
    assert.equal(inB.length, 2, 'stubborn and its child');
    const orphan = inB.find((p) => p !== stubborn.pid)!;

    const t0 = Date.now();
    await Promise.all([lab.destroy(), lab.destroy()]);
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(polite.exitInfo?.signal, 'SIGTERM');
    assert.equal(stubborn.exitInfo?.signal, 'SIGKILL');
    assert.equal(isAlive(orphan), false);
  } finally {
    await lab.destroy();
  }
  await lab.destroy();
  assert.equal(lab.isDestroyed, true);
  assert.deepEqual(await namespacesWith(lab.prefix), []);
  assert.equal(existsSync(join(LAB_STATE_DIR, `${lab.prefix}.json`)), false);
  assert.equal(existsSync(lab.runDir), false);
  await assert.rejects(lab.addNamespace('c'), ConfigError);
});

test('a failure in the middle of a build tears everything down', async (t) => {
  if (skipUnlessRoot(t)) return;
  let prefix = '';
  const steps: string[] = [];
  await assert.rejects(
    buildTeredoTopology({
      clients: ['cli-prc', 'cli-sym'],
      onStep: async (s) => {
        steps.push(s);
        if (s === 'nat:nat-prc') {
          prefix = liveLabList()[0]!.prefix;
          assert.equal((await namespacesWith(prefix)).length, 8);
          throw new Error('injected failure');
        }
      },
    }),
    /injected failure/,
  );
  assert.deepEqual(steps, ['namespaces', 'links', 'addresses', 'nat:nat-prc']);
  assert.deepEqual(await namespacesWith(prefix), []);
  assert.equal(liveLabList().length, 0);

  // A real tool failure half-way through (a clashing prefix already holds one of the names).
  const clash = randomLabPrefix();
  await run('ip', ['netns', 'add', `${clash}relay`]);
  try {
    await assert.rejects(buildTeredoTopology({ prefix: clash, clients: ['cli-pub'] }), (e: unknown) => e instanceof CommandError && /netns add/.test(e.message));
    assert.deepEqual(await namespacesWith(clash), [`${clash}relay`], 'only the one it did not make is left');
  } finally {
    await cleanupStale(clash);
  }
  assert.deepEqual(await namespacesWith(clash), []);
});

/** A child process that builds a lab with `prefix`, starts a sleeper inside it, prints "ready" and waits (or,
 *  with `then: 'exit'`, calls process.exit without tearing anything down). */
function labOwner(prefix: string, o: { handlers?: boolean; then?: 'wait' | 'exit' | 'release' } = {}): ReturnType<typeof spawn> {
  const code = `
    const { Lab, installCleanupHandlers } = await import(${JSON.stringify(LAB_MODULE)});
    if (${o.handlers === true}) installCleanupHandlers();
    const lab = new Lab({ prefix: ${JSON.stringify(prefix)}, stopGraceMs: 300 });
    await lab.addNamespace('x');
    await lab.addNamespace('y');
    lab.spawn('x', 'sleeper', process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: ${o.then === 'release'} });
    if (${o.then === 'release'}) lab.release();
    console.log('ready');
    if (${o.then === 'exit' || o.then === 'release'}) process.exit(0);
    setInterval(() => {}, 1000);`;
  return spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
}

function exited(p: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', () => r())));
}

test('the registry tears labs down from signal and exit handlers', async (t) => {
  if (skipUnlessRoot(t)) return;
  const onSignal = randomLabPrefix();
  const onExit = randomLabPrefix();
  const a = labOwner(onSignal, { handlers: true });
  const b = labOwner(onExit, { then: 'exit' });
  try {
    await new Promise<void>((resolve) => a.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    const sleeper = readLabStates().find((s) => s.prefix === onSignal)!.processes[0]!.pid;
    assert.equal((await namespacesWith(onSignal)).length, 2);
    a.kill('SIGTERM');
    await Promise.all([exited(a), exited(b)]);
    assert.equal(a.exitCode, 143);
    assert.equal(b.exitCode, 0);
    assert.deepEqual(await namespacesWith(onSignal), []);
    assert.deepEqual(await namespacesWith(onExit), []);
    assert.equal(isAlive(sleeper), false);
    assert.equal(readLabStates().some((s) => s.prefix === onSignal || s.prefix === onExit), false);
  } finally {
    a.kill('SIGKILL');
    b.kill('SIGKILL');
    await cleanupStale(onSignal, { includeLive: true });
    await cleanupStale(onExit, { includeLive: true });
  }
});

test('cleanupStale: leaves a live lab alone, removes a crashed one (namespaces, processes, state) and orphans', async (t) => {
  if (skipUnlessRoot(t)) return;
  await assert.rejects(cleanupStale('lab-'), ConfigError);
  await assert.rejects(cleanupStale('t6-abc'), ConfigError);
  const prefix = randomLabPrefix();
  const owner = labOwner(prefix);
  try {
    await new Promise<void>((resolve, reject) => {
      owner.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      owner.once('exit', (c) => reject(new Error(`lab owner exited with ${c}`)));
    });
    const state = readLabStates().find((s) => s.prefix === prefix)!;
    assert.equal(state.ownerPid, owner.pid);
    const sleeper = state.processes[0]!.pid;
    assert.ok(isAlive(sleeper));
    // An orphan with the same prefix and no state of its own (as `ip netns add` by hand would leave).
    await run('ip', ['netns', 'add', `${prefix}orphan`]);

    // The live lab's namespaces stay; the orphan is not in its list, so it goes.
    const live = await cleanupStale(prefix);
    assert.deepEqual(live.removed, [`${prefix}orphan`]);
    assert.deepEqual(live.skippedLive.sort(), [`${prefix}x`, `${prefix}y`]);
    assert.deepEqual(await namespacesWith(prefix), [`${prefix}x`, `${prefix}y`]);
    assert.ok(isAlive(sleeper));

    // The owner crashes: nothing of its lab is cleaned up by itself.
    owner.kill('SIGKILL');
    await exited(owner);
    assert.ok(isAlive(sleeper));
    const stale = await cleanupStale(prefix);
    assert.deepEqual(stale.removed.sort(), [`${prefix}x`, `${prefix}y`]);
    assert.ok(stale.stopped.includes(sleeper));
    assert.equal(isAlive(sleeper), false);
    assert.equal(readLabStates().some((s) => s.prefix === prefix), false);
    assert.equal(existsSync(state.runDir), false);
  } finally {
    owner.kill('SIGKILL');
    await cleanupStale(prefix, { includeLive: true });
  }
  assert.deepEqual(await namespacesWith(prefix), []);
});

test('cleanupStale: includeLive takes down a lab another live process owns (`lab down`)', async (t) => {
  if (skipUnlessRoot(t)) return;
  const prefix = randomLabPrefix();
  const owner = labOwner(prefix);
  try {
    await new Promise<void>((resolve) => owner.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    const r = await cleanupStale(prefix, { includeLive: true });
    assert.deepEqual(r.removed.sort(), [`${prefix}x`, `${prefix}y`]);
    assert.equal(r.stopped.length, 1);
    assert.ok(isAlive(owner.pid!), 'the owner process itself is not ours to stop');
  } finally {
    owner.kill('SIGKILL');
    await cleanupStale(prefix, { includeLive: true });
  }
  assert.deepEqual(await namespacesWith(prefix), []);
});

test('a released lab outlives its owner and goes only with includeLive (`lab up` / `lab down`)', async (t) => {
  if (skipUnlessRoot(t)) return;
  const prefix = randomLabPrefix();
  const owner = labOwner(prefix, { then: 'release' });
  try {
    await exited(owner);
    assert.equal(owner.exitCode, 0);
    const state = readLabStates().find((s) => s.prefix === prefix)!;
    assert.equal(state.persistent, true);
    const sleeper = state.processes[0]!.pid;
    assert.ok(isAlive(sleeper), 'the detached daemon keeps running');
    assert.deepEqual(await namespacesWith(prefix), [`${prefix}x`, `${prefix}y`]);
    const kept = await cleanupStale(prefix);
    assert.deepEqual(kept.removed, []);
    const down = await cleanupStale(prefix, { includeLive: true });
    assert.deepEqual(down.removed.sort(), [`${prefix}x`, `${prefix}y`]);
    assert.deepEqual(down.stopped, [sleeper]);
    assert.equal(isAlive(sleeper), false);
  } finally {
    owner.kill('SIGKILL');
    await cleanupStale(prefix, { includeLive: true });
  }
  assert.deepEqual(await namespacesWith(prefix), []);
  assert.equal(readLabStates().some((s) => s.prefix === prefix), false);
});
