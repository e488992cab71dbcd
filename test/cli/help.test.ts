import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main, usage } from '../../src/cli/main.js';

async function help(argv: string[]): Promise<{ code: number; text: string }> {
  const out: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => out.push(s) });
  return { code, text: out.join('\n') };
}

/** Every command in `transit6 --help`, and the subcommands that have help of their own. */
const SUBCOMMANDS: Record<string, string[][]> = {
  sim: [['qualify'], ['reach'], ['trace']],
  teredo: [['show'], ['client'], ['relay'], ['server']],
};

test('transit6 --help lists every command; each command and subcommand has help with usage and examples', async () => {
  const top = await help(['--help']);
  assert.equal(top.code, 0);
  const names = [...usage().matchAll(/^ {2}([a-z0-9-]+) {2,}/gm)].map((m) => m[1]!);
  assert.ok(names.includes('trace') && names.includes('teredo'), names.join(','));
  for (const name of names) {
    for (const sub of [[], ...(SUBCOMMANDS[name] ?? [])]) {
      const argv = [name, ...sub, '--help'];
      const h = await help(argv);
      assert.equal(h.code, 0, `transit6 ${argv.join(' ')}`);
      assert.match(h.text, /usage: transit6 /, `transit6 ${argv.join(' ')}`);
      assert.match(h.text, /^examples:$/m, `transit6 ${argv.join(' ')} has examples`);
      // Examples are real command lines of this command.
      const ex = h.text.slice(h.text.search(/^examples:$/m)).split('\n').slice(1).filter((l) => /^ {2}\S/.test(l));
      assert.ok(ex.length > 0 && ex.some((l) => l.includes(`transit6 ${name}`)), `transit6 ${argv.join(' ')}: ${ex.join(' | ')}`);
    }
  }
});

test('the daemon help names the observability flags', async () => {
  const h = await help(['teredo', '--help']);
  for (const flag of ['--metrics HOST:PORT', '--pcap FILE', '--log-level LEVEL']) assert.ok(h.text.includes(flag), flag);
});
