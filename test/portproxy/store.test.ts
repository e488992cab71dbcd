import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readRules, writeFileAtomic, writeRules } from '../../src/io/portproxy/store.js';
import { ConfigParseError, formatRuleLine, parseRuleArgs, ruleFromSpec, serializeRules, type Rule } from '../../src/portproxy/rules.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 't6-portproxy-store-'));
const rulesFor = (n: number): Rule[] =>
  Array.from({ length: n }, (_, i) => ruleFromSpec(parseRuleArgs('add', i % 2 ? 'v4tov6' : 'v6tov4', [`listenport=${10000 + i}`, `connectport=${20000 + i}`])));

test('store: a missing file is no rules; writes go through a temporary file that does not stay', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'sub', 'portproxy.conf');
    assert.deepEqual(readRules(path), []);
    writeRules(path, rulesFor(3));
    assert.deepEqual(readRules(path).map(formatRuleLine), rulesFor(3).map(formatRuleLine).sort((a, b) => (a < b ? -1 : 1)).sort());
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['portproxy.conf']);
    // The file keeps a mode the admin gave it.
    chmodSync(path, 0o600);
    writeRules(path, rulesFor(1));
    assert.equal(statSync(path).mode & 0o777, 0o600);
    // A killed writer's temporary file (its PID no longer runs) is cleared by the next write.
    writeFileSync(join(dir, 'sub', '.portproxy.conf.tmp-999999999-abcd'), 'half');
    writeRules(path, rulesFor(2));
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['portproxy.conf']);
    // A malformed file names its line.
    writeFileSync(path, 'v4tov4 listenport=1\nbogus\n');
    assert.throws(() => readRules(path), (e: Error) => e instanceof ConfigParseError && e.line === 2 && e.message.startsWith(`${path}:2:`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('store: kill -9 during rule writes in a loop leaves the old or the new rule set, never a broken file', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'portproxy.conf');
    const sets = [rulesFor(40), rulesFor(200)].map((r) => serializeRules(r));
    writeFileAtomic(path, sets[0]!);
    const storeUrl = new URL('../../src/io/portproxy/store.js', import.meta.url).href;
    // A child rewrites the file as fast as it can, alternating the two sets; we kill it at varying moments.
    const script = `
      import { writeFileAtomic } from ${JSON.stringify(storeUrl)};
      const sets = ${JSON.stringify(sets)};
      process.stdout.write('go\\n');
      for (let i = 0; ; i++) writeFileAtomic(${JSON.stringify(path)}, sets[i % 2]);
    `;
    for (let round = 0; round < 20; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((r) => child.once('exit', r));
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 5 + ((round * 7) % 40)));
      child.kill('SIGKILL');
      await exited;
      const text = readFileSync(path, 'utf8');
      assert.ok(text === sets[0] || text === sets[1], `round ${round}: the file is neither set (${text.length} bytes)`);
      assert.ok(readRules(path).length === 40 || readRules(path).length === 200);
    }
    // The killed writers' temporary files go at the next write.
    writeFileAtomic(path, sets[0]!);
    assert.deepEqual(readdirSync(dir), ['portproxy.conf']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
