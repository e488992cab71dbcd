/**
 * Parsers never throw on network bytes: they return a value or a named reason, which the core counts as a drop.
 */
export type Parsed<T, R extends string = string> = { ok: true; value: T } | { ok: false; reason: R };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function fail<R extends string>(reason: R): { ok: false; reason: R } {
  return { ok: false, reason };
}
