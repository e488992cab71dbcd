#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';

// Optimize hot functions after less work than V8's default (67584 bytecode "budget" units): a daemon that carries a
// packet every few milliseconds otherwise runs its data path in the interpreter or baseline code for a long time,
// and each wake-up costs more. Measured in the Teredo lab (ping through client and relay, README "Performance").
// Set before any of our modules is loaded, so every function's budget is the new one.
setFlagsFromString('--interrupt-budget=2048');
await import('../dist/src/cli/main.js');
