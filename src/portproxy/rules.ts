/**
 * PortProxy rules: the model, the netsh grammar with netsh's defaults, the config file format and the diff that a
 * running proxy applies live.
 *
 * The grammar is `netsh interface portproxy add|set|delete v4tov4|v4tov6|v6tov4|v6tov6 listenport=N
 * [connectaddress=A] [connectport=M] [listenaddress=B] [protocol=tcp]` (Windows Server 2008 white paper,
 * "PortProxy"; the netsh interface portproxy reference). As in netsh, the tags may be left out and the values
 * given in that order (listenport, connectaddress, connectport, listenaddress, protocol). Defaults, as netsh:
 *   connectport    = listenport
 *   connectaddress = the local computer: 127.0.0.1 for ...tov4, ::1 for ...tov6
 *   listenaddress  = every address of the listening family ('*' in `show`, bound as 0.0.0.0 or ::)
 * Beyond netsh, each rule may carry: limit=N (concurrent connections), idle=SECONDS (idle timeout), acl=CIDR[,CIDR]
 * (allowed client sources) and proxy=v1|v2 (a PROXY protocol header towards the backend).
 *
 * The config file is the same grammar, one rule a line, without the verb: `v4tov6 listenport=80 ...`. Blank lines
 * and '#' comments are allowed. A malformed line is an error naming the line.
 */
import { UsageError } from '../core/errors.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from '../wire/ip.js';

export type Family = 4 | 6;
export type Mode = 'v4tov4' | 'v4tov6' | 'v6tov4' | 'v6tov6';
export const MODES: readonly Mode[] = ['v4tov4', 'v4tov6', 'v6tov4', 'v6tov6'];
export type ProxyProtocol = 'none' | 'v1' | 'v2';

/** The wildcard listen address: every address of the listening family. */
export const ANY = '*';

export interface Rule {
  mode: Mode;
  /** An IP literal of the listening family, a host name, or '*' (every address of the family). */
  listenAddress: string;
  listenPort: number;
  /** An IP literal of the connecting family or a host name (resolved in that family only). */
  connectAddress: string;
  connectPort: number;
  /** Most concurrent connections; 0 = no limit. */
  limit: number;
  /** Seconds without traffic either way after which a connection is closed; 0 = never. */
  idleSeconds: number;
  /** Client sources allowed, as CIDRs of the listening family; empty = everyone. */
  acl: string[];
  proxyProtocol: ProxyProtocol;
}

export function listenFamily(mode: Mode): Family {
  return mode.startsWith('v4') ? 4 : 6;
}

export function connectFamily(mode: Mode): Family {
  return mode.endsWith('v4') ? 4 : 6;
}

export function isMode(s: string): s is Mode {
  return (MODES as readonly string[]).includes(s);
}

/** What identifies a rule (netsh's delete takes exactly these): the mode's listening family, address and port. */
export function ruleKey(r: Pick<Rule, 'mode' | 'listenAddress' | 'listenPort'>): string {
  return `${r.mode} ${canonicalAddress(r.listenAddress, listenFamily(r.mode)) ?? r.listenAddress.toLowerCase()} ${r.listenPort}`;
}

/** The address the listener binds: '*' becomes 0.0.0.0 or ::. */
export function bindAddress(r: Rule): string {
  if (r.listenAddress === ANY) return listenFamily(r.mode) === 4 ? '0.0.0.0' : '::';
  return r.listenAddress;
}

/** The local computer, as netsh's connectaddress default. */
export function localAddress(f: Family): string {
  return f === 4 ? '127.0.0.1' : '::1';
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses and CIDRs

/** An IP literal's canonical text in family f, undefined if `text` is not a literal of that family. IPv6 literals
 *  may be written in brackets ([::1]), as people do in netsh commands. */
export function canonicalAddress(text: string, f: Family): string | undefined {
  if (f === 4) {
    const a = parseIpv4(text);
    return a === undefined ? undefined : formatIpv4(a);
  }
  const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!t.includes(':') || t.includes('%')) return undefined;
  const a = parseIpv6(t);
  return a === undefined ? undefined : formatIpv6(a);
}

/** The other family's literal (an IPv6 literal given to an IPv4 side, say). */
function literalFamily(text: string): Family | undefined {
  if (canonicalAddress(text, 4) !== undefined) return 4;
  if (canonicalAddress(text, 6) !== undefined) return 6;
  return undefined;
}

const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** A host name as getaddrinfo takes it (letters, digits, '-', '_', dots; not all digits and dots). */
export function isHostName(text: string): boolean {
  return HOSTNAME_RE.test(text) && !/^[0-9.]+$/.test(text);
}

export interface Cidr {
  family: Family;
  bytes: Uint8Array;
  bits: number;
}

function addressBytes(text: string, f: Family): Uint8Array | undefined {
  if (f === 4) {
    const a = parseIpv4(text);
    if (a === undefined) return undefined;
    return new Uint8Array([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]);
  }
  if (!text.includes(':') || text.includes('%')) return undefined;
  return parseIpv6(text);
}

/** "198.51.100.0/24", "2001:db8::/32", or a single address (a /32 or /128). */
export function parseCidr(text: string, f: Family): Cidr | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const max = f === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return undefined;
    bits = Number(b);
    if (bits > max) return undefined;
  }
  const bytes = addressBytes(addr, f);
  if (!bytes) return undefined;
  return { family: f, bytes, bits };
}

export function formatCidr(c: Cidr): string {
  const a = c.family === 4 ? formatIpv4(((c.bytes[0]! << 24) | (c.bytes[1]! << 16) | (c.bytes[2]! << 8) | c.bytes[3]!) >>> 0) : formatIpv6(c.bytes);
  return `${a}/${c.bits}`;
}

function prefixMatch(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  const full = bits >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

/** A compiled source ACL: allows(address) for the client addresses a listener reports. */
export class Acl {
  private readonly entries: Cidr[];
  constructor(
    cidrs: readonly string[],
    readonly family: Family,
  ) {
    this.entries = cidrs.map((c) => {
      const p = parseCidr(c, family);
      if (!p) throw new UsageError(`bad acl entry '${c}': expected an IPv${family} address or CIDR`);
      return p;
    });
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** An empty ACL allows everyone. An IPv4-mapped IPv6 source (::ffff:a.b.c.d) is read as its IPv4 address. */
  allows(address: string): boolean {
    if (this.entries.length === 0) return true;
    let text = address;
    if (this.family === 4 && /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(text)) text = text.slice(7);
    const bytes = addressBytes(text, this.family);
    if (!bytes) return false;
    return this.entries.some((e) => prefixMatch(bytes, e.bytes, e.bits));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing key=value arguments

export type Verb = 'add' | 'set' | 'delete';

/** Ports are numbers or service names (netsh: "{Integer | ServiceName}"): the caller passes the lookup. */
export type ServiceLookup = (name: string) => number | undefined;

/** The fields a command line (or config line) gave, before defaults. */
export interface RuleSpec {
  mode: Mode;
  listenPort: number;
  listenAddress?: string;
  connectAddress?: string;
  connectPort?: number;
  limit?: number;
  idleSeconds?: number;
  acl?: string[];
  proxyProtocol?: ProxyProtocol;
}

/** Tags and their spellings: netsh's own, and kebab/flag-style ones. */
const TAGS: Record<string, keyof RuleSpec | 'protocol'> = {
  listenport: 'listenPort',
  'listen-port': 'listenPort',
  listenaddress: 'listenAddress',
  'listen-address': 'listenAddress',
  connectaddress: 'connectAddress',
  'connect-address': 'connectAddress',
  connectport: 'connectPort',
  'connect-port': 'connectPort',
  protocol: 'protocol',
  limit: 'limit',
  idle: 'idleSeconds',
  'idle-timeout': 'idleSeconds',
  idletimeout: 'idleSeconds',
  acl: 'acl',
  proxy: 'proxyProtocol',
  'proxy-protocol': 'proxyProtocol',
  proxyprotocol: 'proxyProtocol',
};

/** netsh's positional order when the tags are left out. */
const POSITIONAL: (keyof RuleSpec | 'protocol')[] = ['listenPort', 'connectAddress', 'connectPort', 'listenAddress', 'protocol'];

const MAX_LIMIT = 1_000_000;
const MAX_IDLE = 7 * 24 * 3600;

function parsePort(v: string, what: string, services?: ServiceLookup): number {
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    if (n >= 1 && n <= 65535) return n;
    throw new UsageError(`bad ${what} '${v}': ports are 1-65535`);
  }
  const s = /^[A-Za-z][A-Za-z0-9_+.-]*$/.test(v) ? services?.(v.toLowerCase()) : undefined;
  if (s !== undefined) return s;
  throw new UsageError(`bad ${what} '${v}': expected a port number (1-65535)${services ? ' or a known service name' : ''}`);
}

function parseCount(v: string, what: string, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) > max) throw new UsageError(`bad ${what} '${v}': expected a whole number 0-${max}`);
  return Number(v);
}

function parseSeconds(v: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(v);
  if (!m) throw new UsageError(`bad idle '${v}': expected seconds (or 30s, 5m, 2h), 0 for none`);
  const n = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  if (n > MAX_IDLE) throw new UsageError(`bad idle '${v}': at most ${MAX_IDLE} seconds`);
  return n;
}

function checkAddress(v: string, f: Family, what: string, allowAny: boolean): string {
  if (allowAny && (v === ANY || v === (f === 4 ? '0.0.0.0' : '::'))) return ANY;
  const lit = canonicalAddress(v, f);
  if (lit !== undefined) return lit;
  const other = literalFamily(v);
  if (other !== undefined) throw new UsageError(`bad ${what} '${v}': an IPv${other} address where this mode needs IPv${f}`);
  if (isHostName(v)) return v.toLowerCase();
  throw new UsageError(`bad ${what} '${v}': expected an IPv${f} address or a host name`);
}

/**
 * Reads `key=value` and positional arguments after the mode (netsh grammar). Throws UsageError naming what is
 * wrong. `verb` decides which tags are allowed: delete takes only listenport and listenaddress (and protocol).
 */
export function parseRuleArgs(verb: Verb, mode: Mode, args: readonly string[], services?: ServiceLookup): RuleSpec {
  const lf = listenFamily(mode);
  const cf = connectFamily(mode);
  const seen = new Set<string>();
  const spec: Partial<RuleSpec> = { mode };
  for (const arg of args) {
    let key: keyof RuleSpec | 'protocol';
    let value: string;
    const eq = arg.indexOf('=');
    if (eq > 0) {
      const tag = arg.slice(0, eq).toLowerCase();
      const k = TAGS[tag];
      if (!k) throw new UsageError(`unknown parameter '${arg.slice(0, eq)}' (expected listenport, listenaddress, connectaddress, connectport, protocol, limit, idle, acl, proxy)`);
      key = k;
      value = arg.slice(eq + 1);
    } else {
      // An untagged value fills the next field in netsh's order that was not given by tag.
      const order = verb === 'delete' ? (['listenPort', 'listenAddress'] as const) : POSITIONAL;
      const next = order.find((k) => !seen.has(k));
      if (next === undefined) throw new UsageError(`unexpected argument '${arg}'`);
      key = next;
      value = arg;
    }
    if (verb === 'delete' && key !== 'listenPort' && key !== 'listenAddress' && key !== 'protocol') {
      throw new UsageError(`delete takes only listenport and listenaddress, not ${key.toLowerCase()}`);
    }
    if (seen.has(key)) throw new UsageError(`${key.toLowerCase()} given twice`);
    seen.add(key);
    if (value === '') throw new UsageError(`${key.toLowerCase()} needs a value`);
    switch (key) {
      case 'protocol':
        if (value.toLowerCase() !== 'tcp') throw new UsageError(`bad protocol '${value}': PortProxy proxies TCP only`);
        break;
      case 'listenPort':
        spec.listenPort = parsePort(value, 'listenport', services);
        break;
      case 'connectPort':
        spec.connectPort = parsePort(value, 'connectport', services);
        break;
      case 'listenAddress':
        spec.listenAddress = checkAddress(value, lf, 'listenaddress', true);
        break;
      case 'connectAddress':
        spec.connectAddress = checkAddress(value, cf, 'connectaddress', false);
        break;
      case 'limit':
        spec.limit = parseCount(value, 'limit', MAX_LIMIT);
        break;
      case 'idleSeconds':
        spec.idleSeconds = parseSeconds(value);
        break;
      case 'acl': {
        const list = value.toLowerCase() === 'any' ? [] : value.split(',').map((s) => s.trim());
        for (const c of list) {
          const p = parseCidr(c, lf);
          if (!p) throw new UsageError(`bad acl entry '${c}': expected an IPv${lf} address or CIDR (the listening family)`);
        }
        spec.acl = list.map((c) => formatCidr(parseCidr(c, lf)!));
        break;
      }
      case 'proxyProtocol': {
        const v = value.toLowerCase();
        if (v !== 'none' && v !== 'v1' && v !== 'v2') throw new UsageError(`bad proxy '${value}': expected none, v1 or v2`);
        spec.proxyProtocol = v;
        break;
      }
      default:
        throw new UsageError(`unexpected parameter ${String(key)}`);
    }
  }
  if (spec.listenPort === undefined) throw new UsageError('listenport is required');
  return spec as RuleSpec;
}

/** A full rule from a spec, with netsh's defaults for what it leaves out. */
export function ruleFromSpec(s: RuleSpec): Rule {
  return {
    mode: s.mode,
    listenAddress: s.listenAddress ?? ANY,
    listenPort: s.listenPort,
    connectAddress: s.connectAddress ?? localAddress(connectFamily(s.mode)),
    connectPort: s.connectPort ?? s.listenPort,
    limit: s.limit ?? 0,
    idleSeconds: s.idleSeconds ?? 0,
    acl: s.acl ?? [],
    proxyProtocol: s.proxyProtocol ?? 'none',
  };
}

/** `set`: the existing rule with the fields the spec names replaced. */
export function mergeSpec(r: Rule, s: RuleSpec): Rule {
  return {
    ...r,
    ...(s.connectAddress !== undefined ? { connectAddress: s.connectAddress } : {}),
    ...(s.connectPort !== undefined ? { connectPort: s.connectPort } : {}),
    ...(s.limit !== undefined ? { limit: s.limit } : {}),
    ...(s.idleSeconds !== undefined ? { idleSeconds: s.idleSeconds } : {}),
    ...(s.acl !== undefined ? { acl: s.acl } : {}),
    ...(s.proxyProtocol !== undefined ? { proxyProtocol: s.proxyProtocol } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Rule sets

/** Two rules that cannot both listen: same family and port, and the same address or one of them the wildcard
 *  (Linux refuses to bind 0.0.0.0:80 beside 127.0.0.1:80). */
export function listenConflict(a: Rule, b: Rule): boolean {
  if (listenFamily(a.mode) !== listenFamily(b.mode) || a.listenPort !== b.listenPort) return false;
  return a.listenAddress === ANY || b.listenAddress === ANY || a.listenAddress === b.listenAddress;
}

export type EditResult = { ok: true; rules: Rule[]; rule?: Rule } | { ok: false; error: string };

/** Sorted as `show` lists them: by mode, then listen port, then address. */
export function sortRules(rules: readonly Rule[]): Rule[] {
  return [...rules].sort(
    (a, b) => MODES.indexOf(a.mode) - MODES.indexOf(b.mode) || a.listenPort - b.listenPort || a.listenAddress.localeCompare(b.listenAddress),
  );
}

/** The listening sockets of a set must not collide. Returns the first clash, described. */
export function findConflict(rules: readonly Rule[]): string | undefined {
  for (let i = 0; i < rules.length; i++) {
    for (let j = i + 1; j < rules.length; j++) {
      if (listenConflict(rules[i]!, rules[j]!)) return `${describeListen(rules[i]!)} and ${describeListen(rules[j]!)} would listen on the same port`;
    }
  }
  return undefined;
}

export function describeListen(r: Rule): string {
  const a = r.listenAddress === ANY ? '*' : listenFamily(r.mode) === 6 && r.listenAddress.includes(':') ? `[${r.listenAddress}]` : r.listenAddress;
  return `${r.mode} ${a}:${r.listenPort}`;
}

/**
 * Applies one command to a rule set. add creates or replaces the rule with the same key (as netsh does); set
 * changes the named fields of an existing rule; delete removes one. A new listener that would clash with another
 * rule's (same port, one address the wildcard) is refused.
 */
export function applyEdit(rules: readonly Rule[], verb: Verb, spec: RuleSpec): EditResult {
  const key = ruleKey({ mode: spec.mode, listenAddress: spec.listenAddress ?? ANY, listenPort: spec.listenPort });
  const idx = rules.findIndex((r) => ruleKey(r) === key);
  const others = rules.filter((_, i) => i !== idx);
  const existing = idx >= 0 ? rules[idx] : undefined;
  if (verb === 'delete') {
    if (!existing) return { ok: false, error: `no ${key.split(' ')[0]} rule listens on ${describeListen(ruleFromSpec(spec)).split(' ')[1]}` };
    return { ok: true, rules: others, rule: existing };
  }
  let rule: Rule;
  if (verb === 'set') {
    if (!existing) return { ok: false, error: `no ${spec.mode} rule listens on ${describeListen(ruleFromSpec(spec)).split(' ')[1]} (use add)` };
    rule = mergeSpec(existing, spec);
  } else {
    rule = ruleFromSpec(spec);
  }
  const clash = others.find((o) => listenConflict(o, rule));
  if (clash) return { ok: false, error: `${describeListen(rule)} clashes with the rule ${describeListen(clash)} (same port; remove that one first)` };
  const next = [...others];
  if (idx >= 0) next.splice(idx, 0, rule);
  else next.push(rule);
  return { ok: true, rules: sortRules(next), rule };
}

// ---------------------------------------------------------------------------------------------------------------
// The config file

export const CONFIG_HEADER = '# transit6 portproxy rules: one rule a line, as `transit6 portproxy add` takes them (without "add").\n';

/** One rule as a config line: every field explicit, extras only when set. */
export function formatRuleLine(r: Rule): string {
  const parts = [r.mode, `listenport=${r.listenPort}`, `listenaddress=${r.listenAddress}`, `connectaddress=${r.connectAddress}`, `connectport=${r.connectPort}`];
  if (r.limit > 0) parts.push(`limit=${r.limit}`);
  if (r.idleSeconds > 0) parts.push(`idle=${r.idleSeconds}`);
  if (r.acl.length > 0) parts.push(`acl=${r.acl.join(',')}`);
  if (r.proxyProtocol !== 'none') parts.push(`proxy=${r.proxyProtocol}`);
  return parts.join(' ');
}

export function serializeRules(rules: readonly Rule[]): string {
  return CONFIG_HEADER + sortRules(rules).map((r) => `${formatRuleLine(r)}\n`).join('');
}

export class ConfigParseError extends UsageError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
  }
}

/** Reads a config file's text. Throws ConfigParseError naming the line for anything malformed, including two rules
 *  for one listener and listeners that clash. */
export function parseRules(text: string, file = 'portproxy.conf', services?: ServiceLookup): Rule[] {
  const rules: Rule[] = [];
  const lineOf = new Map<Rule, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const hash = raw.indexOf('#');
    const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (body === '') continue;
    if (/[^\x20-\x7e\t\r]/.test(body)) throw new ConfigParseError(file, i + 1, 'unexpected control or non-ASCII character');
    const words = body.split(/\s+/);
    let first = words[0]!.toLowerCase();
    // `add v4tov6 ...` lines (pasted commands) are taken too.
    if (first === 'add' && words.length > 1) {
      words.shift();
      first = words[0]!.toLowerCase();
    }
    if (!isMode(first)) throw new ConfigParseError(file, i + 1, `expected v4tov4, v4tov6, v6tov4 or v6tov6, found '${words[0]}'`);
    let rule: Rule;
    try {
      rule = ruleFromSpec(parseRuleArgs('add', first, words.slice(1), services));
    } catch (e) {
      throw new ConfigParseError(file, i + 1, e instanceof Error ? e.message : String(e));
    }
    const dup = rules.find((r) => ruleKey(r) === ruleKey(rule));
    if (dup) throw new ConfigParseError(file, i + 1, `a second rule for ${describeListen(rule)} (first on line ${lineOf.get(dup)})`);
    const clash = rules.find((r) => listenConflict(r, rule));
    if (clash) throw new ConfigParseError(file, i + 1, `${describeListen(rule)} clashes with ${describeListen(clash)} on line ${lineOf.get(clash)} (same port)`);
    rules.push(rule);
    lineOf.set(rule, i + 1);
  }
  return rules;
}

// ---------------------------------------------------------------------------------------------------------------
// Diff for live apply

export interface RuleDiff {
  /** Listeners to open. */
  added: Rule[];
  /** Listeners to close (their connections finish on their own). */
  removed: Rule[];
  /** Same listener, new target or options: the listener stays, new connections use `to`, old ones continue. */
  changed: { from: Rule; to: Rule }[];
  unchanged: Rule[];
}

export function sameRule(a: Rule, b: Rule): boolean {
  return formatRuleLine(a) === formatRuleLine(b);
}

export function diffRules(oldRules: readonly Rule[], newRules: readonly Rule[]): RuleDiff {
  const oldByKey = new Map(oldRules.map((r) => [ruleKey(r), r]));
  const newKeys = new Set(newRules.map(ruleKey));
  const d: RuleDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const r of newRules) {
    const o = oldByKey.get(ruleKey(r));
    if (!o) d.added.push(r);
    else if (sameRule(o, r)) d.unchanged.push(r);
    else d.changed.push({ from: o, to: r });
  }
  for (const r of oldRules) if (!newKeys.has(ruleKey(r))) d.removed.push(r);
  return d;
}

// ---------------------------------------------------------------------------------------------------------------
// show

const FAMILY_NAME: Record<Family, string> = { 4: 'ipv4', 6: 'ipv6' };

/** netsh's `show` table: one block per mode, "Listen on ipv4:  Connect to ipv6:", address and port columns. */
export function formatShow(rules: readonly Rule[], which: Mode | 'all'): string {
  const out: string[] = [];
  for (const mode of MODES) {
    if (which !== 'all' && which !== mode) continue;
    const rs = sortRules(rules.filter((r) => r.mode === mode));
    if (rs.length === 0) continue;
    const extras = rs.some((r) => r.limit > 0 || r.idleSeconds > 0 || r.acl.length > 0 || r.proxyProtocol !== 'none');
    const aw = Math.max(15, ...rs.map((r) => Math.max(r.listenAddress.length, r.connectAddress.length)));
    const head = `Listen on ${FAMILY_NAME[listenFamily(mode)]}:`;
    out.push('', `${head.padEnd(aw + 12)}Connect to ${FAMILY_NAME[connectFamily(mode)]}:`, '');
    out.push(`${'Address'.padEnd(aw)} ${'Port'.padEnd(10)} ${'Address'.padEnd(aw)} ${'Port'.padEnd(10)}${extras ? ' Options' : ''}`.trimEnd());
    out.push(`${'-'.repeat(aw)} ${'-'.repeat(10)} ${'-'.repeat(aw)} ${'-'.repeat(10)}${extras ? ` ${'-'.repeat(7)}` : ''}`);
    for (const r of rs) {
      const opts = formatRuleLine(r).split(' ').slice(5).join(' ');
      out.push(`${r.listenAddress.padEnd(aw)} ${String(r.listenPort).padEnd(10)} ${r.connectAddress.padEnd(aw)} ${String(r.connectPort).padEnd(10)} ${opts}`.trimEnd());
    }
  }
  if (out.length === 0) return '';
  out.push('');
  return out.join('\n');
}
