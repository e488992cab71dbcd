/**
 * A binary min-heap ordered by (at, seq): the simulator's event queue and the cores' per-peer deadlines. `seq` is
 * an insertion counter, so entries due at the same instant come out in the order they were scheduled; that
 * tie-break is what makes a run reproducible.
 */
import type { Millis } from './time.js';

export interface HeapEntry<T> {
  readonly at: Millis;
  readonly seq: number;
  readonly value: T;
}

export class EventHeap<T> {
  private readonly items: HeapEntry<T>[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.items.length;
  }

  /** Schedules `value` at `at`; returns the entry (its seq identifies it in traces). */
  push(at: Millis, value: T): HeapEntry<T> {
    // A NaN would compare false both ways and silently corrupt the heap order.
    if (Number.isNaN(at)) throw new RangeError('EventHeap.push: time is NaN');
    const entry: HeapEntry<T> = { at, seq: this.nextSeq++, value };
    this.items.push(entry);
    this.siftUp(this.items.length - 1);
    return entry;
  }

  peek(): HeapEntry<T> | undefined {
    return this.items[0];
  }

  pop(): HeapEntry<T> | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }

  private siftUp(i: number): void {
    const items = this.items;
    const e = items[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (!before(e, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = e;
  }

  private siftDown(i: number): void {
    const items = this.items;
    const n = items.length;
    const e = items[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(items[r]!, items[l]!) ? r : l;
      if (!before(items[child]!, e)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = e;
  }
}

function before<T>(a: HeapEntry<T>, b: HeapEntry<T>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
