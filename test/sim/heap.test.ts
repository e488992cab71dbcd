import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventHeap } from '../../src/core/heap.js';
import { SeededRng, randomBelow } from '../../src/core/rng.js';

test('pops in time order', () => {
  const h = new EventHeap<string>();
  h.push(30, 'c');
  h.push(10, 'a');
  h.push(20, 'b');
  assert.equal(h.size, 3);
  assert.equal(h.peek()!.value, 'a');
  assert.deepEqual([h.pop()!.value, h.pop()!.value, h.pop()!.value], ['a', 'b', 'c']);
  assert.equal(h.pop(), undefined);
  assert.equal(h.size, 0);
});

test('ties come out first-in first-out', () => {
  const h = new EventHeap<number>();
  for (let i = 0; i < 50; i++) h.push(i % 2 === 0 ? 5 : 1, i);
  const out: number[] = [];
  for (let e = h.pop(); e; e = h.pop()) out.push(e.value);
  const odds = Array.from({ length: 25 }, (_, i) => 2 * i + 1);
  const evens = Array.from({ length: 25 }, (_, i) => 2 * i);
  assert.deepEqual(out, [...odds, ...evens]);
});

test('matches a stable sort on (at, seq) for random input, with interleaved pops', () => {
  const rng = new SeededRng(7);
  const h = new EventHeap<number>();
  const model: { at: number; seq: number }[] = [];
  const popped: number[] = [];
  const expected: number[] = [];
  let seq = 0;
  for (let i = 0; i < 2000; i++) {
    if (randomBelow(rng, 3) === 0 && model.length > 0) {
      model.sort((a, b) => a.at - b.at || a.seq - b.seq);
      expected.push(model.shift()!.seq);
      popped.push(h.pop()!.value);
    } else {
      const at = randomBelow(rng, 20);
      model.push({ at, seq });
      const e = h.push(at, seq);
      assert.equal(e.seq, seq);
      seq++;
    }
  }
  assert.deepEqual(popped, expected);
});

test('rejects NaN times', () => {
  assert.throws(() => new EventHeap<number>().push(Number.NaN, 1), RangeError);
});
