import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ConfigError } from '../../src/core/errors.js';
import {
  assertLabNamespace,
  CommandError,
  formatCommand,
  inNs,
  isAlive,
  processStartTime,
  run,
  runSync,
  spawnInNs,
  stopPid,
  stopPidSync,
} from '../../src/lab/exec.js';

const node = process.execPath;

test('run: resolves with stdout and stderr of a successful command', async () => {
  const r = await run(node, ['-e', 'process.stdout.write("out"); process.stderr.write("err")']);
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, 'out');
  assert.equal(r.stderr, 'err');
});

test('run: a non-zero exit is a CommandError naming the command, exit code and stderr', async () => {
  const err = await run(node, ['-e', 'process.stderr.write("it broke\\n"); process.exit(3)']).then(
    () => assert.fail('should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CommandError);
  assert.equal(err.exitCode, 3);
  assert.equal(err.stderr, 'it broke\n');
  assert.match(err.message, /exit code 3/);
  assert.match(err.message, /it broke/);
  assert.ok(err.message.includes(node), err.message);
});

test('run: allowFailure returns the result instead', async () => {
  const r = await run(node, ['-e', 'process.exit(4)'], { allowFailure: true });
  assert.equal(r.exitCode, 4);
});

test('run: input goes to standard input', async () => {
  const r = await run(node, ['-e', 'process.stdin.pipe(process.stdout)'], { input: 'hello' });
  assert.equal(r.stdout, 'hello');
});

test('run: a missing program and a timeout are explained', async () => {
  await assert.rejects(run('/nonexistent/t6-no-such-program', []), (e: unknown) => e instanceof CommandError && /not found/.test(e.message));
  await assert.rejects(
    run(node, ['-e', 'setTimeout(() => {}, 10000)'], { timeoutMs: 200 }),
    (e: unknown) => e instanceof CommandError && /timed out after 200 ms/.test(e.message),
  );
});

test('runSync: same errors synchronously', () => {
  assert.equal(runSync(node, ['-e', 'process.stdout.write("x")']).stdout, 'x');
  assert.throws(() => runSync(node, ['-e', 'process.stderr.write("bad"); process.exit(5)']), (e: unknown) =>
    e instanceof CommandError && e.exitCode === 5 && e.stderr === 'bad',
  );
  assert.equal(runSync(node, ['-e', 'process.exit(6)'], { allowFailure: true }).exitCode, 6);
});

test('formatCommand quotes what a shell would need quoted (for messages only)', () => {
  assert.equal(formatCommand('ip', ['-n', 't6-a-inet', 'addr']), 'ip -n t6-a-inet addr');
  assert.equal(formatCommand('echo', ["it's", 'a b']), `echo 'it'\\''s' 'a b'`);
});

test('only t6- namespaces are ever entered', async () => {
  for (const bad of ['', 'inet', 'root', 't6-', 't6-a/b', 't6-a b', `t6-${'x'.repeat(80)}`]) {
    assert.throws(() => assertLabNamespace(bad), ConfigError, bad);
  }
  assertLabNamespace('t6-0a1b2c-cli-prc2');
  await assert.rejects(inNs('inet', 'true'), ConfigError);
  assert.throws(() => spawnInNs('default', 'sleep', ['1'], { logPath: '/dev/null' }), ConfigError);
});

test('stopPid: SIGTERM for a well-behaved process, SIGKILL after the grace for one that ignores it', async () => {
  const polite = spawn(node, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const stubborn = spawn(node, ['-e', 'process.on("SIGTERM", () => {}); process.stdout.write("ready"); setInterval(() => {}, 1000)'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    await new Promise((r) => stubborn.stdout!.once('data', r));
    const start = processStartTime(stubborn.pid!);
    assert.ok(start !== undefined);
    assert.equal(await stopPid(polite.pid!, { graceMs: 2000 }), 'terminated');
    const t0 = Date.now();
    assert.equal(await stopPid(stubborn.pid!, { graceMs: 300, startTime: start }), 'killed');
    assert.ok(Date.now() - t0 >= 300);
    assert.equal(isAlive(stubborn.pid!), false);
    assert.equal(await stopPid(stubborn.pid!), 'not-running');
  } finally {
    polite.kill('SIGKILL');
    stubborn.kill('SIGKILL');
  }
});

test('stopPid: a recorded PID whose start time no longer matches is left alone', async () => {
  const p = spawn(node, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    const start = processStartTime(p.pid!)!;
    assert.equal(await stopPid(p.pid!, { startTime: start + 1 }), 'not-running');
    assert.equal(isAlive(p.pid!), true);
    assert.equal(stopPidSync(p.pid!, { startTime: start, graceMs: 2000 }), 'terminated');
  } finally {
    p.kill('SIGKILL');
  }
});
