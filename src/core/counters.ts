/** Named counters (drops by reason, packets by kind). Every drop a core makes is counted here. */
export class Counters<K extends string = string> {
  private readonly values = new Map<K, number>();

  inc(name: K, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by);
  }

  get(name: K): number {
    return this.values.get(name) ?? 0;
  }

  total(): number {
    let t = 0;
    for (const v of this.values.values()) t += v;
    return t;
  }

  /** Sorted by name so that output and recorded expectations are stable. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.values.keys()].sort()) out[k] = this.values.get(k)!;
    return out;
  }

  reset(): void {
    this.values.clear();
  }
}
