/** `transit6 lab` usage errors (no root needed: they come before the root check) and the parts in its help. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.js';

async function lab(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['lab', ...argv], { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('lab up: --only takes teredo, isatap, 6to4, portproxy; bad selections are usage errors (exit 2, one line)', async () => {
  for (const [args, msg] of [
    [['--only', 'bogus'], /unknown part 'bogus' \(one of teredo, isatap, 6to4, portproxy\)/],
    [['--only', ','], /--only wants a list/],
    [['--only', 'isatap,6to4', '--clients', 'prc'], /--clients is for the teredo part/],
    [['--prefix', 'lab-'], /--prefix: refusing prefix 'lab-'/],
    [['--prefix', 't6-'], /a prefix of its own/],
    [['--timeout', '0'], /--timeout wants seconds/],
  ] as const) {
    const r = await lab(['up', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, msg);
    assert.equal(r.err.split('\n').length, 1, r.err);
  }
  const d = await lab(['down', '--only', 'isatap']);
  assert.equal(d.code, 2);
  assert.match(d.err, /--only goes with 'lab up'/);
});

test('lab --help names the three parts and what up shows of each', async () => {
  const h = await lab(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.out, /--only LIST +up: which parts \(teredo, isatap, 6to4, portproxy; default all/);
  for (const part of ['teredo', 'isatap', '6to4', 'portproxy']) assert.match(h.out, new RegExp(`^ {2}${part} `, 'm'));
});
