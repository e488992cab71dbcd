/**
 * The rule file on disk. Writes are atomic: the new text goes to a temporary file in the same directory, is
 * fsync'ed, renamed over the old file, and the directory is fsync'ed, so that a crash at any moment (kill -9,
 * power loss) leaves either the old rule set or the new one, never a mix or a truncated file.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseRules, serializeRules, type Rule, type ServiceLookup } from '../../portproxy/rules.js';

export const DEFAULT_CONFIG = '/etc/transit6/portproxy.conf';

let services: Map<string, number> | undefined;

/** Port names from /etc/services (tcp entries and their aliases), as netsh takes service names for ports. */
export function serviceLookup(path = '/etc/services'): ServiceLookup {
  if (!services) {
    services = new Map();
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // No services file: only numbers are taken.
    }
    for (const line of text.split('\n')) {
      const body = line.replace(/#.*/, '').trim();
      const m = /^(\S+)\s+(\d+)\/tcp\b\s*(.*)$/.exec(body);
      if (!m) continue;
      const port = Number(m[2]);
      for (const name of [m[1]!, ...m[3]!.split(/\s+/).filter(Boolean)]) if (!services.has(name.toLowerCase())) services.set(name.toLowerCase(), port);
    }
  }
  const map = services;
  return (name) => map.get(name);
}

/** The rules in `path`; a missing file is an empty set. A malformed one throws ConfigParseError naming the line. */
export function readRules(path: string): Rule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return parseRules(text, path, serviceLookup());
}

const TMP_RE = /^\.(.+)\.tmp-(\d+)-[0-9a-f]+$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes `text` to `path` atomically (temporary file, fsync, rename, fsync of the directory). The file keeps its
 *  mode if it existed (0644 otherwise). Temporary files that killed writers left behind are removed. */
export function writeFileAtomic(path: string, text: string): void {
  const dir = dirname(path);
  const base = basename(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  let mode = 0o644;
  try {
    mode = statSync(path).mode & 0o7777;
  } catch {
    // new file
  }
  for (const name of readdirSync(dir)) {
    const m = TMP_RE.exec(name);
    if (m && m[1] === base && !pidAlive(Number(m[2]))) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        // raced with another cleaner
      }
    }
  }
  const tmp = join(dir, `.${base}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const data = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export function writeRules(path: string, rules: readonly Rule[]): void {
  writeFileAtomic(path, serializeRules(rules));
}
