/**
 * Miredo's configuration files, read the way Miredo 1.2.6 reads them (rfc/MIREDO-INTEROP.md §4), so that a working
 * miredo.conf or miredo-server.conf is accepted unchanged, plus a few transit6 directives on top.
 *
 * Line syntax (src/conf.c:miredo_conf_read_FILE):
 *   - the first whitespace-separated token is the directive, the second the value; the rest of the line is
 *     ignored (so `BindPort 3545  # comment` is fine, but `RelayType client#x` has the value "client#x");
 *   - a line whose first token starts with '#' is a comment; blank lines are skipped;
 *   - a line with a single token is ignored with a warning, as is a line over 1054 characters;
 *   - directive names are case-insensitive; when a directive repeats, the first one counts and the others are
 *     warnings, as are unknown directives and directives the mode does not use ("superfluous" in Miredo);
 *   - integers are strtoul(…, 0): decimal, 0x hex, leading-0 octal, at most 65535.
 * Difference: Miredo silently drops a last line that has no newline (fgets sees a "long line"); we read it.
 *
 * Values are parsed and checked for syntax here; ranges that depend on the role (global addresses, MTU limits,
 * required settings) are checked by src/config/daemon.ts, which cites the same "file line N" locations.
 *
 * Directives (M = Miredo 1.2.6, T = transit6; c = client, r = relay, s = server):
 *
 * | Directive           | Origin | Roles | Value                                   | Default                      |
 * |---------------------|--------|-------|-----------------------------------------|------------------------------|
 * | RelayType           | M      | c r   | client autoclient relay cone restricted | client (role relay: cone)    |
 * | ServerAddress       | M      | c     | IPv4 or host name (resolved at start)   | required                     |
 * | ServerAddress2      | M      | c     | IPv4 or host name (Miredo ignores it;   | primary + 1                  |
 * |                     |        |       | we use it for NAT-type detection)       |                              |
 * | BindAddress         | M      | c r   | local IPv4 for the Teredo UDP socket    | 0.0.0.0                      |
 * | BindPort            | M      | c r   | UDP port, 0 = ephemeral                 | 0                            |
 * | InterfaceName       | M      | c r   | tun name, ≤ 15 of [A-Za-z0-9_.-]        | the kernel's choice (tunN)   |
 * | InterfaceMTU        | M      | r s   | relay: tun MTU; server: RA MTU option   | 1280                         |
 * | Prefix              | M      | r s   | Teredo prefix (only 2001:0::/32 here)   | 2001:0::                     |
 * | SyslogFacility      | M      | c r s | daemon, user, local0…local7, …          | daemon                       |
 * | ServerBindAddress   | M      | s     | primary IPv4 (global)                   | required                     |
 * | ServerBindAddress2  | M      | s     | secondary IPv4 (global)                 | primary + 1                  |
 * | ServerPort          | T      | c s   | the server's UDP port                   | 3544                         |
 * | ProbePort           | T      | c s   | NAT-probe port on the secondary, or no  | 3546                         |
 * | NatUdpTimeout       | T      | c     | seconds the client assumes its NAT      | 30                           |
 * |                     |        |       | keeps an idle UDP mapping (≥ 4)         |                              |
 * | DetectNat           | T      | c     | yes/no: cone, port, symmetric probes    | yes                          |
 * | LocalDiscovery      | T      | c     | yes/no: RFC 4380 §5.2.8 discovery       | yes                          |
 * | SymmetricNatSupport | T      | c     | yes/no: RFC 6081 nonce trailers         | yes                          |
 * | Hairpinning         | T      | c     | yes/no: RFC 6081 §3.5 local address     | yes                          |
 * | OnDemand            | T      | c     | yes/no: qualify only when traffic comes | no                           |
 * | IdleTimeout         | T      | c     | seconds without traffic before dormancy | none (never dormant)         |
 * | MaxPeers            | T      | c r   | peer table size                         | 65536                        |
 * | Offload             | T      | c r   | yes/no: merge TCP segments and UDP      | yes                          |
 * |                     |        |       | datagrams written to the tunnel (GSO),  |                              |
 * |                     |        |       | UDP GSO on the data socket              |                              |
 * | RelayHostAddress    | T      | r     | comma-separated native IPv6 addresses:  | none (a full relay)          |
 * |                     |        |       | a host-specific relay for those only    |                              |
 * | ForwardNative       | T      | s     | yes/no: forward clients' echo tests     | yes                          |
 * | RsRateLimit         | T      | s     | RSs answered per source IPv4 address:   | 10/20                        |
 * |                     |        |       | RATE[/BURST] per second, or no          |                              |
 * | RsGlobalRateLimit   | T      | s     | RSs answered in total                   | 20000/20000                  |
 * | ForwardRateLimit    | T      | s     | bubbles/ICMPv6 forwarded per source     | 1000/2000                    |
 * | NewPeerRateLimit    | T      | r     | new peers per native source /64         | 100/200                      |
 * | NewPeerGlobalRateLimit | T   | r     | new peers in total                      | 1000/2000                    |
 * | IcmpErrorRateLimit  | T      | r     | ICMPv6 errors sent in total             | 100/200                      |
 * | RateLimitTableSize  | T      | r s   | slots per per-source table (power of 2) | 16384                        |
 * | ControlSocket       | T      | c r s | path of the `teredo show` socket        | /run/transit6/netns-N/…      |
 * | PidFile             | T      | c r s | path                                    | none                         |
 * | User                | T      | c r s | user to switch to once set up           | none (stay)                  |
 * | Metrics             | T      | c r s | HOST:PORT of the Prometheus endpoint    | none (off)                   |
 * | Pcap                | T      | c r s | capture to FILE-udp.pcap, FILE-tun.pcap | none (off)                   |
 * | LogLevel            | T      | c r s | debug, info, warn or error              | info                         |
 *
 * Relative paths in a file are taken from the file's directory.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import { ConfigError, UsageError } from '../core/errors.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6, type Ipv4 } from '../wire/ip.js';
import type { RateLimitSetting } from '../core/ratelimit.js';

export type DaemonRole = 'client' | 'relay' | 'server';
export type MiredoRelayType = 'client' | 'autoclient' | 'relay' | 'cone' | 'restricted';
export const RELAY_TYPES: readonly MiredoRelayType[] = ['client', 'autoclient', 'relay', 'cone', 'restricted'];

export const SYSLOG_FACILITIES = [
  'auth', 'authpriv', 'cron', 'daemon', 'ftp', 'kern', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5',
  'local6', 'local7', 'lpr', 'mail', 'news', 'syslog', 'user', 'uucp',
] as const;
export type SyslogFacility = (typeof SYSLOG_FACILITIES)[number];

/** An IPv4 setting: a literal, or a host name the daemon resolves when it starts (as Miredo does). */
export type HostAddress =
  | { kind: 'ipv4'; addr: Ipv4; text: string }
  | { kind: 'hostname'; name: string; needsResolving: true };

/** Where an HTTP endpoint listens: a literal address (IPv4, IPv6 in brackets, or a name) and a port. */
export interface ListenAddress {
  host: string;
  port: number;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A value and where it came from ("miredo.conf line 3", "--server", "default"), for error messages. */
export interface Located<T> {
  value: T;
  where: string;
}

/** Every directive's parsed value type. */
export interface DirectiveValues {
  RelayType: MiredoRelayType;
  ServerAddress: HostAddress;
  ServerAddress2: HostAddress;
  BindAddress: HostAddress;
  BindPort: number;
  InterfaceName: string;
  InterfaceMTU: number;
  Prefix: Uint8Array;
  SyslogFacility: SyslogFacility;
  ServerBindAddress: HostAddress;
  ServerBindAddress2: HostAddress;
  ServerPort: number;
  ProbePort: number | false;
  NatUdpTimeout: number;
  DetectNat: boolean;
  LocalDiscovery: boolean;
  SymmetricNatSupport: boolean;
  Hairpinning: boolean;
  OnDemand: boolean;
  IdleTimeout: number;
  MaxPeers: number;
  Offload: boolean;
  RelayHostAddress: Uint8Array[];
  ForwardNative: boolean;
  RsRateLimit: RateLimitSetting;
  RsGlobalRateLimit: RateLimitSetting;
  ForwardRateLimit: RateLimitSetting;
  NewPeerRateLimit: RateLimitSetting;
  NewPeerGlobalRateLimit: RateLimitSetting;
  IcmpErrorRateLimit: RateLimitSetting;
  RateLimitTableSize: number;
  ControlSocket: string;
  PidFile: string;
  User: string;
  Metrics: ListenAddress;
  Pcap: string;
  LogLevel: LogLevel;
}
export type DirectiveName = keyof DirectiveValues;

/** A parsed file or command line: the settings that were given, each with its location. */
export type MiredoConfig = { [K in DirectiveName]?: Located<DirectiveValues[K]> };

export interface ParsedConfig {
  config: MiredoConfig;
  /** Formatted "file line N: ..." messages; never fatal. */
  warnings: string[];
}

/** What to do with an error's location: flags are usage errors, files configuration errors. */
export function configFail(where: string, message: string): never {
  const text = locate(where, message);
  throw where.startsWith('--') ? new UsageError(text) : new ConfigError(text);
}

/** "file line N: message"; a flag's message that already starts with the flag is not prefixed twice. */
export function locate(where: string, message: string): string {
  return message.startsWith(`${where} `) ? message : `${where}: ${message}`;
}

interface ValueContext {
  where: string;
  /** The directive as written (or the flag), for messages. */
  name: string;
  /** Directory that relative paths are taken from. */
  baseDir: string;
  warn(message: string): void;
}

type Parser<T> = (text: string, ctx: ValueContext) => T;

interface DirectiveSpec<K extends DirectiveName> {
  name: K;
  /** The command-line flag that sets the same thing (without the leading --). */
  flag: string;
  roles: readonly DaemonRole[];
  miredo: boolean;
  parse: Parser<DirectiveValues[K]>;
  /** One line for --help. */
  help: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Value parsers

/** Miredo's miredo_conf_get_int16: strtoul(s, &end, 0), the whole string consumed, at most 65535. */
export function parseMiredoInt16(text: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (!m) return undefined;
  const digits = m[2]!;
  const v = /^0[xX]/.test(digits) ? parseInt(digits.slice(2), 16) : digits.length > 1 && digits[0] === '0' ? parseInt(digits, 8) : parseInt(digits, 10);
  // strtoul negates a '-' value into a huge unsigned one: only -0 survives the ≤ 65535 check.
  if (m[1] === '-' && v !== 0) return undefined;
  return v <= 65535 ? v : undefined;
}

/**
 * The numbers-and-dots forms getaddrinfo (inet_aton) accepts besides the dotted quad: "127.1", "0x7f000001",
 * "010.0.0.1" (octal parts). Miredo reads ServerAddress and the like through getaddrinfo, so these work there.
 */
export function parseInetAton(text: string): Ipv4 | undefined {
  const parts = text.split('.');
  if (parts.length < 1 || parts.length > 4) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0[xX][0-9a-fA-F]+$/.test(p)) n = parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) n = parseInt(p, 10);
    else return undefined;
    if (!Number.isSafeInteger(n)) return undefined;
    nums.push(n);
  }
  const last = nums.pop()!;
  for (const n of nums) if (n > 255) return undefined;
  const lastBits = 8 * (4 - nums.length);
  if (last >= 2 ** lastBits) return undefined;
  let v = 0;
  for (const n of nums) v = v * 256 + n;
  return (v * 2 ** lastBits + last) >>> 0;
}

const HOST_LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

export function parseHostAddress(text: string, ctx: ValueContext): HostAddress {
  const quad = parseIpv4(text);
  if (quad !== undefined) return { kind: 'ipv4', addr: quad, text };
  const aton = parseInetAton(text);
  if (aton !== undefined) {
    ctx.warn(`${ctx.name} '${text}' read as ${formatIpv4(aton)} (the short or non-decimal IPv4 form getaddrinfo accepts)`);
    return { kind: 'ipv4', addr: aton, text: formatIpv4(aton) };
  }
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  const labels = name.split('.');
  // A name whose last label is all digits is an IPv4 address gone wrong, not a host name (no TLD is numeric).
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) configFail(ctx.where, `${ctx.name} '${text}' is not a valid IPv4 address`);
  if (name.length === 0 || name.length > 253 || !labels.every((l) => HOST_LABEL.test(l))) {
    configFail(ctx.where, `${ctx.name} '${text}' is neither an IPv4 address nor a host name`);
  }
  return { kind: 'hostname', name: text, needsResolving: true };
}

function parseInt16(what: string): Parser<number> {
  return (text, ctx) => {
    const v = parseMiredoInt16(text);
    if (v === undefined) configFail(ctx.where, `${ctx.name} '${text}' is not ${what} (an integer 0-65535: decimal, 0x hex or 0 octal)`);
    return v;
  };
}

const parsePort: Parser<number> = (text, ctx) => {
  const v = parseInt16('a port')(text, ctx);
  if (v === 0) configFail(ctx.where, `${ctx.name} '${text}' is not a port (1-65535)`);
  return v;
};

const parsePortOrNo: Parser<number | false> = (text, ctx) => {
  if (/^(no|none|off|false|disabled)$/i.test(text)) return false;
  return parsePort(text, ctx);
};

const BOOL_TRUE = /^(yes|true|on|enabled)$/i;
const BOOL_FALSE = /^(no|false|off|disabled)$/i;

/** Miredo's (compiled-out) miredo_conf_get_bool words, or an integer (non-zero is true). */
const parseBool: Parser<boolean> = (text, ctx) => {
  if (BOOL_TRUE.test(text)) return true;
  if (BOOL_FALSE.test(text)) return false;
  if (/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(text)) return Number(text) !== 0;
  return configFail(ctx.where, `${ctx.name} '${text}' is not yes or no`);
};

/** Seconds (a decimal number allowed) → milliseconds. */
function parseSeconds(min: number, max: number): Parser<number> {
  return (text, ctx) => {
    if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) configFail(ctx.where, `${ctx.name} '${text}' is not a number of seconds`);
    const s = Number(text);
    if (s < min || s > max) configFail(ctx.where, `${ctx.name} ${text} is outside ${min}-${max} seconds`);
    return Math.round(s * 1000);
  };
}

function parseCount(min: number, max: number): Parser<number> {
  return (text, ctx) => {
    if (!/^[0-9]+$/.test(text)) configFail(ctx.where, `${ctx.name} '${text}' is not a whole number`);
    const n = Number(text);
    if (n < min || n > max) configFail(ctx.where, `${ctx.name} ${text} is outside ${min}-${max}`);
    return n;
  };
}

/** RATE[/BURST] (per second; the burst defaults to twice the rate), or no for no limit. */
const parseRateLimit: Parser<RateLimitSetting> = (text, ctx) => {
  if (/^(no|none|off|false|disabled|unlimited)$/i.test(text)) return undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?)(?:\/([0-9]+))?$/.exec(text);
  if (!m) configFail(ctx.where, `${ctx.name} '${text}' is not RATE[/BURST] (packets per second, e.g. 10/20) or no`);
  const perSecond = Number(m[1]);
  const burst = m[2] !== undefined ? Number(m[2]) : Math.max(1, Math.ceil(perSecond * 2));
  if (!(perSecond > 0) || perSecond > 1e9) configFail(ctx.where, `${ctx.name} rate ${m[1]} is outside (0, 1e9] per second`);
  if (burst < 1 || burst > 1e9) configFail(ctx.where, `${ctx.name} burst ${burst} is outside 1-1e9`);
  return { perSecond, burst };
};

const parseTableSize: Parser<number> = (text, ctx) => {
  const n = parseCount(2, 1 << 24)(text, ctx);
  if ((n & (n - 1)) !== 0) configFail(ctx.where, `${ctx.name} ${n} is not a power of two`);
  return n;
};

const parseRelayType: Parser<MiredoRelayType> = (text, ctx) => {
  const t = text.toLowerCase() as MiredoRelayType;
  if (!RELAY_TYPES.includes(t)) configFail(ctx.where, `unknown ${ctx.name} '${text}' (${RELAY_TYPES.join(', ')})`);
  if (t === 'restricted') ctx.warn(`${ctx.name} restricted is deprecated in Miredo ("STRONGLY DISCOURAGED"): the relay also sends direct bubbles`);
  return t;
};

/** Miredo logs an unknown facility and keeps "daemon"; miredo-checkconf (Debian's ExecStartPre) refuses it. */
const parseFacility: Parser<SyslogFacility> = (text, ctx) => {
  const f = text.toLowerCase() as SyslogFacility;
  if (!SYSLOG_FACILITIES.includes(f)) configFail(ctx.where, `unknown ${ctx.name} '${text}' (${SYSLOG_FACILITIES.join(', ')})`);
  return f;
};

/** miredo_conf_parse_teredo_prefix: an IPv6 address of which the first 32 bits count; ff00::/8 refused. */
const parsePrefix: Parser<Uint8Array> = (text, ctx) => {
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  if (slash >= 0 && text.slice(slash + 1) !== '32') configFail(ctx.where, `${ctx.name} '${text}': a Teredo prefix is 32 bits long`);
  const a = parseIpv6(addrText);
  if (!a) configFail(ctx.where, `${ctx.name} '${text}' is not an IPv6 address`);
  if (a[0] === 0xff) configFail(ctx.where, `${ctx.name} '${text}' is a multicast prefix`);
  const p = new Uint8Array(16);
  p.set(a.subarray(0, 4));
  return p;
};

export const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

const parseInterfaceName: Parser<string> = (text, ctx) => {
  if (!INTERFACE_NAME.test(text) || text === '.' || text === '..') {
    configFail(ctx.where, `${ctx.name} '${text}' is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
  }
  return text;
};

const parsePath: Parser<string> = (text, ctx) => {
  if (text.includes('\0')) configFail(ctx.where, `${ctx.name} is not a path`);
  return resolvePath(ctx.baseDir, text);
};

const parseUser: Parser<string> = (text, ctx) => {
  // A name (useradd's rules) or a numeric uid.
  if (!/^([a-z_][a-z0-9_.-]{0,31}\$?|[0-9]{1,10})$/i.test(text)) configFail(ctx.where, `${ctx.name} '${text}' is not a user name or uid`);
  return text;
};

/** HOST:PORT, [IPv6]:PORT, or :PORT for every address (as Prometheus exporters write it). */
export const parseListenAddress: Parser<ListenAddress> = (text, ctx) => {
  const m = /^(?:\[([0-9A-Za-z:.%]+)\]|([^:[\]]*)):([0-9]+)$/.exec(text);
  if (!m) configFail(ctx.where, `${ctx.name} '${text}' is not HOST:PORT (e.g. 127.0.0.1:9544, [::1]:9544 or :9544)`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) configFail(ctx.where, `${ctx.name} '${text}': the port must be 1-65535`);
  let host: string;
  if (m[1] !== undefined) {
    if (!parseIpv6(m[1])) configFail(ctx.where, `${ctx.name} '${text}': '${m[1]}' is not an IPv6 address`);
    host = m[1];
  } else {
    host = m[2] === '' ? '0.0.0.0' : m[2]!;
    if (parseIpv4(host) === undefined && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(host)) {
      configFail(ctx.where, `${ctx.name} '${text}': '${host}' is neither an IPv4 address nor a host name`);
    }
  }
  return { host, port };
};

const parseLogLevel: Parser<LogLevel> = (text, ctx) => {
  const l = text.toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(l)) configFail(ctx.where, `unknown ${ctx.name} '${text}' (${LOG_LEVELS.join(', ')})`);
  return l;
};

const parseHostAddresses: Parser<Uint8Array[]> = (text, ctx) =>
  text.split(',').map((t) => {
    const a = parseIpv6(t);
    if (!a || t.includes('%')) configFail(ctx.where, `${ctx.name} '${t}' is not an IPv6 address`);
    return a;
  });

// ---------------------------------------------------------------------------------------------------------------
// The directive table

const C: readonly DaemonRole[] = ['client'];
const R: readonly DaemonRole[] = ['relay'];
const S: readonly DaemonRole[] = ['server'];
const CR: readonly DaemonRole[] = ['client', 'relay'];
const CS: readonly DaemonRole[] = ['client', 'server'];
const RS: readonly DaemonRole[] = ['relay', 'server'];
const ALL: readonly DaemonRole[] = ['client', 'relay', 'server'];

const spec = <K extends DirectiveName>(s: DirectiveSpec<K>): DirectiveSpec<K> => s;

export const DIRECTIVES: { [K in DirectiveName]: DirectiveSpec<K> } = {
  RelayType: spec({ name: 'RelayType', flag: 'relay-type', roles: CR, miredo: true, parse: parseRelayType, help: 'client | autoclient | relay | cone | restricted' }),
  ServerAddress: spec({ name: 'ServerAddress', flag: 'server', roles: C, miredo: true, parse: parseHostAddress, help: "the Teredo server's primary IPv4 address or name" }),
  ServerAddress2: spec({ name: 'ServerAddress2', flag: 'server2', roles: C, miredo: true, parse: parseHostAddress, help: "the server's secondary address (default: primary + 1)" }),
  BindAddress: spec({ name: 'BindAddress', flag: 'bind-address', roles: CR, miredo: true, parse: parseHostAddress, help: 'local IPv4 address of the Teredo UDP socket (default 0.0.0.0)' }),
  BindPort: spec({ name: 'BindPort', flag: 'bind-port', roles: CR, miredo: true, parse: parseInt16('a port'), help: 'local UDP port (default 0: any)' }),
  InterfaceName: spec({ name: 'InterfaceName', flag: 'interface', roles: CR, miredo: true, parse: parseInterfaceName, help: "tunnel interface name (default: the kernel's tunN)" }),
  InterfaceMTU: spec({ name: 'InterfaceMTU', flag: 'mtu', roles: RS, miredo: true, parse: parseInt16('an MTU'), help: 'relay: tunnel MTU; server: the MTU advertised in RAs (1280-65535, default 1280)' }),
  Prefix: spec({ name: 'Prefix', flag: 'prefix', roles: RS, miredo: true, parse: parsePrefix, help: 'Teredo prefix (only 2001:0:: is supported)' }),
  SyslogFacility: spec({ name: 'SyslogFacility', flag: 'syslog-facility', roles: ALL, miredo: true, parse: parseFacility, help: 'syslog facility (default daemon)' }),
  ServerBindAddress: spec({ name: 'ServerBindAddress', flag: 'server-bind-address', roles: S, miredo: true, parse: parseHostAddress, help: "the server's primary global IPv4 address" }),
  ServerBindAddress2: spec({ name: 'ServerBindAddress2', flag: 'server-bind-address2', roles: S, miredo: true, parse: parseHostAddress, help: "the server's secondary global IPv4 address (default: primary + 1)" }),
  ServerPort: spec({ name: 'ServerPort', flag: 'server-port', roles: CS, miredo: false, parse: parsePort, help: "the server's UDP port (default 3544)" }),
  ProbePort: spec({ name: 'ProbePort', flag: 'probe-port', roles: CS, miredo: false, parse: parsePortOrNo, help: 'NAT-probe port on the secondary address, or no (default 3546)' }),
  NatUdpTimeout: spec({ name: 'NatUdpTimeout', flag: 'nat-udp-timeout', roles: C, miredo: false, parse: parseSeconds(4, 86400), help: "seconds the NAT keeps an idle UDP mapping; refreshes are fitted below it (default 30)" }),
  DetectNat: spec({ name: 'DetectNat', flag: 'detect-nat', roles: C, miredo: false, parse: parseBool, help: 'probe the NAT type after qualifying (default yes)' }),
  LocalDiscovery: spec({ name: 'LocalDiscovery', flag: 'local-discovery', roles: C, miredo: false, parse: parseBool, help: 'RFC 4380 local client discovery (default yes)' }),
  SymmetricNatSupport: spec({ name: 'SymmetricNatSupport', flag: 'symmetric-nat-support', roles: C, miredo: false, parse: parseBool, help: 'RFC 6081 nonce trailers in bubbles (default yes)' }),
  Hairpinning: spec({ name: 'Hairpinning', flag: 'hairpinning', roles: C, miredo: false, parse: parseBool, help: 'RFC 6081 local address in indirect bubbles (default yes)' }),
  OnDemand: spec({ name: 'OnDemand', flag: 'on-demand', roles: C, miredo: false, parse: parseBool, help: 'qualify only when IPv6 traffic arrives (default no)' }),
  IdleTimeout: spec({ name: 'IdleTimeout', flag: 'idle-timeout', roles: C, miredo: false, parse: parseSeconds(1, 31_536_000), help: 'go dormant after this many seconds without traffic (default: never)' }),
  MaxPeers: spec({ name: 'MaxPeers', flag: 'max-peers', roles: CR, miredo: false, parse: parseCount(1, 16_777_216), help: 'peer table size (default 65536)' }),
  Offload: spec({ name: 'Offload', flag: 'offload', roles: CR, miredo: false, parse: parseBool, help: 'offloads: TCP segments and UDP datagrams of one flow written to the tunnel merged into one (IFF_VNET_HDR, TCP GSO, USO), runs of same-size datagrams to one peer sent as one (UDP GSO): fewer packets for the kernel (default yes)' }),
  RelayHostAddress: spec({ name: 'RelayHostAddress', flag: 'host-address', roles: R, miredo: false, parse: parseHostAddresses, help: 'host-specific relay for these native IPv6 addresses (comma-separated)' }),
  ForwardNative: spec({ name: 'ForwardNative', flag: 'forward-native', roles: S, miredo: false, parse: parseBool, help: "forward clients' connectivity-test echoes to native IPv6 (default yes)" }),
  RsRateLimit: spec({ name: 'RsRateLimit', flag: 'rs-rate-limit', roles: S, miredo: false, parse: parseRateLimit, help: 'Router Solicitations answered per source IPv4 address: RATE[/BURST] per second, or no (default 10/20)' }),
  RsGlobalRateLimit: spec({ name: 'RsGlobalRateLimit', flag: 'rs-global-rate-limit', roles: S, miredo: false, parse: parseRateLimit, help: 'Router Solicitations answered in total: RATE[/BURST] or no (default 20000/20000)' }),
  ForwardRateLimit: spec({ name: 'ForwardRateLimit', flag: 'forward-rate-limit', roles: S, miredo: false, parse: parseRateLimit, help: 'bubbles and ICMPv6 forwarded per source IPv4 address: RATE[/BURST] or no (default 1000/2000)' }),
  NewPeerRateLimit: spec({ name: 'NewPeerRateLimit', flag: 'new-peer-rate-limit', roles: R, miredo: false, parse: parseRateLimit, help: 'new peers per native IPv6 source /64: RATE[/BURST] or no (default 100/200)' }),
  NewPeerGlobalRateLimit: spec({ name: 'NewPeerGlobalRateLimit', flag: 'new-peer-global-rate-limit', roles: R, miredo: false, parse: parseRateLimit, help: 'new peers in total: RATE[/BURST] or no (default 1000/2000)' }),
  IcmpErrorRateLimit: spec({ name: 'IcmpErrorRateLimit', flag: 'icmp-error-rate-limit', roles: R, miredo: false, parse: parseRateLimit, help: 'ICMPv6 errors about unreachable peers, in total (RFC 4443 §2.4(f)): RATE[/BURST] or no (default 100/200)' }),
  RateLimitTableSize: spec({ name: 'RateLimitTableSize', flag: 'rate-limit-table-size', roles: RS, miredo: false, parse: parseTableSize, help: 'slots in each per-source rate-limit table, a power of two (default 16384, 20 bytes each)' }),
  ControlSocket: spec({ name: 'ControlSocket', flag: 'control', roles: ALL, miredo: false, parse: parsePath, help: 'control socket path (default /run/transit6/netns-<inode>/teredo-<role>.sock)' }),
  PidFile: spec({ name: 'PidFile', flag: 'pidfile', roles: ALL, miredo: false, parse: parsePath, help: 'write the process id to this file' }),
  User: spec({ name: 'User', flag: 'user', roles: ALL, miredo: false, parse: parseUser, help: 'user to switch to once the sockets and the tunnel are open' }),
  Metrics: spec({ name: 'Metrics', flag: 'metrics', roles: ALL, miredo: false, parse: parseListenAddress, help: 'serve Prometheus metrics on HOST:PORT at /metrics (default: off)' }),
  Pcap: spec({ name: 'Pcap', flag: 'pcap', roles: ALL, miredo: false, parse: parsePath, help: 'capture the UDP side to FILE-udp.pcap and the tunnel side to FILE-tun.pcap' }),
  LogLevel: spec({ name: 'LogLevel', flag: 'log-level', roles: ALL, miredo: false, parse: parseLogLevel, help: 'debug | info | warn | error (default info)' }),
};

const BY_LOWER_NAME = new Map<string, DirectiveSpec<DirectiveName>>(
  Object.values(DIRECTIVES).map((s) => [s.name.toLowerCase(), s as DirectiveSpec<DirectiveName>]),
);
const BY_FLAG = new Map<string, DirectiveSpec<DirectiveName>>(Object.values(DIRECTIVES).map((s) => [s.flag, s as DirectiveSpec<DirectiveName>]));

/** The directives a role reads, in table order. */
export function directivesFor(role: DaemonRole): DirectiveName[] {
  return (Object.keys(DIRECTIVES) as DirectiveName[]).filter((k) => DIRECTIVES[k].roles.includes(role));
}

function roleNoun(role: DaemonRole): string {
  return role === 'client' ? 'a Teredo client' : role === 'relay' ? 'a Teredo relay' : 'a Teredo server';
}

// ---------------------------------------------------------------------------------------------------------------
// Lines

export interface RawDirective {
  /** As written. */
  name: string;
  value: string;
  line: number;
}

/** Miredo's fgets buffer is 1056 bytes: 1054 characters, the newline and the terminator. */
const MAX_LINE = 1054;
const WS = /[ \t\n\v\f\r]+/;

/** Splits a file into directive lines as src/conf.c does; `file` prefixes the warnings. */
export function readDirectiveLines(text: string, file: string): { directives: RawDirective[]; warnings: string[] } {
  const directives: RawDirective[] = [];
  const warnings: string[] = [];
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.length > MAX_LINE) {
      warnings.push(`${file} line ${line}: line longer than ${MAX_LINE} characters skipped (as Miredo does)`);
      return;
    }
    const tokens = raw.split(WS).filter((t) => t.length > 0);
    if (tokens.length === 0 || tokens[0]!.startsWith('#')) return;
    if (tokens.length === 1) {
      warnings.push(`${file} line ${line}: '${tokens[0]}' has no value: line ignored`);
      return;
    }
    directives.push({ name: tokens[0]!, value: tokens[1]!, line });
  });
  return { directives, warnings };
}

/**
 * Parses a Miredo-style file for `role`. With role undefined the file's own RelayType decides between client and
 * relay, as Miredo does. Throws ConfigError at the first bad value ("miredo.conf line 7: ..."); everything else
 * that Miredo only warns about comes back in `warnings`. `file` names the file in messages; `path`, when
 * given, is where it lives (relative paths inside are taken from its directory).
 */
export function parseMiredoConfig(text: string, file: string, role?: DaemonRole, path?: string): ParsedConfig {
  const { directives, warnings } = readDirectiveLines(text, file);
  const baseDir = dirname(resolvePath(path ?? file));
  const config: MiredoConfig = {};
  const firstLine = new Map<DirectiveName, number>();
  let effectiveRole = role;
  if (effectiveRole === undefined) {
    // Miredo reads RelayType first: it decides which other directives are used.
    const rt = directives.find((d) => d.name.toLowerCase() === 'relaytype');
    const t = rt ? parseRelayType(rt.value, { where: `${file} line ${rt.line}`, name: rt.name, baseDir, warn: () => {} }) : 'client';
    effectiveRole = t === 'client' || t === 'autoclient' ? 'client' : 'relay';
  }
  for (const d of directives) {
    const where = `${file} line ${d.line}`;
    const s = BY_LOWER_NAME.get(d.name.toLowerCase());
    if (!s) {
      warnings.push(`${where}: unknown directive '${d.name}' ignored`);
      continue;
    }
    const first = firstLine.get(s.name);
    if (first !== undefined) {
      warnings.push(`${where}: ${s.name} repeated: the first one (line ${first}) is used, this one ignored`);
      continue;
    }
    firstLine.set(s.name, d.line);
    if (!s.roles.includes(effectiveRole)) {
      warnings.push(`${where}: ${s.name} is not used by ${roleNoun(effectiveRole)}: ignored`);
      continue;
    }
    const ctx: ValueContext = { where, name: s.name, baseDir, warn: (m) => warnings.push(locate(where, m)) };
    (config as Record<string, Located<unknown>>)[s.name] = { value: s.parse(d.value, ctx), where };
  }
  return { config, warnings };
}

/** The parseArgs option table for a role's flags: all take a value (`--detect-nat no`, `--on-demand yes`). */
export function flagOptions(role: DaemonRole): Record<string, { type: 'string' }> {
  const out: Record<string, { type: 'string' }> = {};
  for (const k of directivesFor(role)) out[DIRECTIVES[k].flag] = { type: 'string' };
  return out;
}

/** "  --server ADDR   the Teredo server's ..." lines for a role's help text. */
export function flagHelp(role: DaemonRole): string {
  const rows = directivesFor(role).map((k) => [`--${DIRECTIVES[k].flag}`, `${DIRECTIVES[k].help} [${k}]`]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([f, h]) => `  ${f!.padEnd(w)}  ${h}`).join('\n');
}

/**
 * Command-line flags in the same form as a file. Unknown flags, and flags another role uses, are usage errors.
 * A boolean `true` stands for "yes" (so `--on-demand` alone works); `false` and undefined are "not given".
 */
export function parseFlags(flags: Record<string, string | boolean | undefined>, role: DaemonRole, cwd: string): ParsedConfig {
  const config: MiredoConfig = {};
  const warnings: string[] = [];
  for (const [flag, raw] of Object.entries(flags)) {
    if (raw === undefined || raw === false) continue;
    const s = BY_FLAG.get(flag);
    if (!s) throw new UsageError(`unknown option --${flag}`);
    if (!s.roles.includes(role)) throw new UsageError(`--${flag} is not an option of ${roleNoun(role)}`);
    const where = `--${flag}`;
    const text = raw === true ? 'yes' : raw;
    if (text === '') throw new UsageError(`${where} wants a value`);
    const ctx: ValueContext = { where, name: where, baseDir: cwd, warn: (m) => warnings.push(locate(where, m)) };
    (config as Record<string, Located<unknown>>)[s.name] = { value: s.parse(text, ctx), where };
  }
  return { config, warnings };
}

/** Text forms, for messages and `show state`. */
export function formatHostAddress(h: HostAddress): string {
  return h.kind === 'ipv4' ? formatIpv4(h.addr) : h.name;
}

export function formatPrefix(p: Uint8Array): string {
  return `${formatIpv6(p)}/32`;
}
