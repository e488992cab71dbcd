#!/usr/bin/env node
// Runs every compiled test file with Node's built-in test runner. Lab tests (test/lab) need root and skip
// themselves otherwise; --no-lab leaves them out entirely.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const noLab = process.argv.includes('--no-lab');
const root = new URL('../dist/test', import.meta.url).pathname;
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (noLab && name === 'lab') continue;
      walk(p);
    } else if (name.endsWith('.test.js')) files.push(p);
  }
})(root);
if (files.length === 0) {
  console.error('no test files found under dist/test: run `npm run build` first');
  process.exit(1);
}
// Lab tests share kernel state (namespaces, iptables), so files run one at a time.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
