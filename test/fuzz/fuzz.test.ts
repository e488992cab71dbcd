/**
 * The short fuzz run (a few seconds): fast-check properties over every decoder in src/wire and every entry point of
 * the Teredo server, relay and client, with random and mutated-valid inputs (test/fuzz/harness.ts has the
 * invariants). Before that, the regression vectors are replayed: test/fuzz/corpus/*.txt (what the long run,
 * `npm run fuzz`, ever found) and test/vectors/wire-fuzz-regressions.hex (the crafted datagrams of the Miredo lab
 * report §10.1 and the wire fuzz loop's finds) through every core target.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { TeredoServer } from '../../src/teredo/server.js';
import { encodeTeredoPacket } from '../../src/wire/teredo.js';
import { buildBubble } from '../../src/wire/ipv6.js';
import { allTargets, applyEdits, checkServerActions, CLIENT_EP, parseCorpus, repair, seedsFor, SERVER_EP, SERVER_PRIMARY, SERVER_SECONDARY, teredoAddr, type Edit } from './harness.js';

const RUNS_PER_TARGET = Number(process.env.TRANSIT6_FUZZ_RUNS ?? 3000);

/** The repository's test directory, from the compiled file (dist/test/fuzz) or the working directory. */
function testDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'test', 'fuzz', 'corpus'))) return join(dir, 'test');
    dir = dirname(dir);
  }
  return join(process.cwd(), 'test');
}

function hexLines(path: string): Uint8Array[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => Uint8Array.from(Buffer.from(l, 'hex')));
}

test('regression corpus: every saved vector passes its target', () => {
  const targets = new Map(allTargets().map((t) => [t.name, t]));
  const dir = join(testDir(), 'fuzz', 'corpus');
  let n = 0;
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) {
    for (const v of parseCorpus(readFileSync(join(dir, f), 'utf8'))) {
      const t = targets.get(v.target);
      assert.ok(t, `${f} line ${v.line}: unknown target ${v.target}`);
      assert.doesNotThrow(() => t.run(v.data, v.selector), `${f} line ${v.line}`);
      n++;
    }
  }
  assert.ok(n > 0, 'the corpus is not empty');
});

test('the Miredo report §10.1 crafted datagrams and the wire regressions go through every core target, from every sender', () => {
  const vectors = [new Uint8Array(0), ...hexLines(join(testDir(), 'vectors', 'wire-fuzz-regressions.hex'))];
  assert.ok(vectors.length > 10);
  for (const t of allTargets()) {
    for (const v of vectors) for (let selector = 0; selector < 16; selector++) t.run(v, selector);
  }
});

const edit: fc.Arbitrary<Edit> = fc.tuple(fc.nat(), fc.integer({ min: 0, max: 0xffff }), fc.nat(5));

for (const t of allTargets()) {
  test(`fast-check: ${t.name} (random and mutated-valid inputs)`, () => {
    const seeds = seedsFor(t);
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 1600 }),
      fc.uint8Array({ maxLength: 80 }),
      fc.tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 5 }), fc.boolean()).map(([i, edits, fix]) => {
        const m = applyEdits(seeds[i]!, edits);
        return fix ? repair(m) : m;
      }),
    );
    fc.assert(
      fc.property(input, fc.nat(), (data, selector) => {
        t.run(data, selector);
      }),
      { numRuns: RUNS_PER_TARGET, seed: 4380 },
    );
  });
}

test('the server invariants are not vacuous: a leaked nonce, a forward to a private address and a native UDP forward all fail', () => {
  const s = new TeredoServer({ primary: SERVER_PRIMARY, secondary: SERVER_SECONDARY });
  const bubble = encodeTeredoPacket({ ipv6: buildBubble(teredoAddr(CLIENT_EP), teredoAddr({ addr: 0xcb007107, port: 5000 })) });
  // A correct forward passes ...
  checkServerActions(s, [{ kind: 'udp-send', local: SERVER_EP, remote: { addr: 0xcb007107, port: 5000 }, data: bubble }], CLIENT_EP, bubble);
  // ... a forward to somewhere else does not,
  assert.throws(() => checkServerActions(s, [{ kind: 'udp-send', local: SERVER_EP, remote: { addr: 0x0a000001, port: 5000 }, data: bubble }], CLIENT_EP, bubble));
  // nor an RA for a bubble, nor an answer with a nonce the RS did not carry,
  const ra = encodeTeredoPacket({ origin: CLIENT_EP, auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: new Uint8Array(8).fill(0x22), confirmation: 0 }, ipv6: buildBubble(teredoAddr(CLIENT_EP), teredoAddr(CLIENT_EP)) });
  assert.throws(() => checkServerActions(s, [{ kind: 'udp-send', local: SERVER_EP, remote: CLIENT_EP, data: ra }], CLIENT_EP, bubble));
  // nor anything natively that is not the input's echo.
  assert.throws(() => checkServerActions(s, [{ kind: 'ipv6-forward', packet: buildBubble(teredoAddr(CLIENT_EP), teredoAddr(CLIENT_EP)) }], CLIENT_EP, bubble));
});
