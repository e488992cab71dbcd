/** Milliseconds on whatever clock the driver uses (monotonic in real life, virtual in the simulator). */
export type Millis = number;

/**
 * Named deadlines. A core keeps one table; the driver asks for the earliest deadline and calls the core's
 * handleTimeout once it has passed. Nothing here reads a clock.
 */
export class TimerTable<K extends string> {
  private readonly deadlines = new Map<K, Millis>();

  set(name: K, at: Millis): void {
    this.deadlines.set(name, at);
  }

  clear(name: K): void {
    this.deadlines.delete(name);
  }

  get(name: K): Millis | undefined {
    return this.deadlines.get(name);
  }

  has(name: K): boolean {
    return this.deadlines.has(name);
  }

  /** The earliest deadline, or undefined when nothing is armed. */
  next(): Millis | undefined {
    let best: Millis | undefined;
    for (const at of this.deadlines.values()) if (best === undefined || at < best) best = at;
    return best;
  }

  /** Removes and returns the timers due at `now`, earliest first (ties in insertion order). */
  due(now: Millis): K[] {
    const fired: [K, Millis][] = [];
    for (const [name, at] of this.deadlines) if (at <= now) fired.push([name, at]);
    fired.sort((a, b) => a[1] - b[1]);
    for (const [name] of fired) this.deadlines.delete(name);
    return fired.map(([name]) => name);
  }
}

/** Earliest of several optional deadlines. */
export function earliest(...deadlines: (Millis | undefined)[]): Millis | undefined {
  let best: Millis | undefined;
  for (const d of deadlines) if (d !== undefined && (best === undefined || d < best)) best = d;
  return best;
}
