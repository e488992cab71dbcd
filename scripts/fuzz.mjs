#!/usr/bin/env node
// The long fuzz run: `npm run fuzz -- --inputs N [--seed S]` (default 1 000 000 inputs, seed 1). Every decoder in
// src/wire and every Teredo core entry point, random and mutated-valid inputs, invariants checked
// (test/fuzz/harness.ts). Prints the count of inputs and of crashes; each crash is appended to
// test/fuzz/corpus/crashes.txt as a regression vector (replayed by test/fuzz/fuzz.test.ts), and the exit status is
// 1 when there was any.
import { appendFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { inputs: { type: 'string', default: '1000000' }, seed: { type: 'string', default: '1' }, quiet: { type: 'boolean', default: false } } });
const inputs = Number(values.inputs);
const seed = Number(values.seed);
if (!Number.isInteger(inputs) || inputs < 1 || !Number.isInteger(seed)) {
  console.error('usage: npm run fuzz -- [--inputs N] [--seed S]');
  process.exit(2);
}
const harness = await import(new URL('../dist/test/fuzz/harness.js', import.meta.url).href).catch(() => {
  console.error('dist/test/fuzz/harness.js not found: run `npm run build` first');
  process.exit(2);
});
const started = Date.now();
const r = harness.runFuzz(inputs, seed, values.quiet ? undefined : (n) => console.error(`  ${n} inputs, ${((Date.now() - started) / 1000).toFixed(0)} s`));
const seconds = (Date.now() - started) / 1000;
const corpus = new URL('../test/fuzz/corpus/crashes.txt', import.meta.url);
for (const c of r.crashes) {
  appendFileSync(corpus, `# ${new Date().toISOString()} seed ${seed}: ${c.error}\n${harness.formatVector(c.target, c.selector, c.data)}\n`);
}
for (const [name, n] of Object.entries(r.perTarget)) console.log(`${name.padEnd(24)} ${n} inputs, ${r.acted[name] ?? 0} went deep (core acted / Teredo+IPv6 decoded)`);
const uniq = new Map();
for (const c of r.crashes) uniq.set(`${c.target}: ${c.error.split(' | ')[0]}`, (uniq.get(`${c.target}: ${c.error.split(' | ')[0]}`) ?? 0) + 1);
for (const [k, n] of uniq) console.log(`crash x${n}: ${k}`);
console.log(`fuzz: ${r.inputs} inputs, ${r.crashes.length} crashes, seed ${seed}, ${seconds.toFixed(1)} s`);
process.exit(r.crashes.length ? 1 : 0);
