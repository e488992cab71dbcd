/**
 * A daemon's settings: defaults < configuration file (Miredo syntax, src/config/miredo.ts) < command-line flags,
 * merged and checked once, with every error naming where the bad value came from ("relay.conf line 4: ...",
 * "--bind-port: ..."). The result is typed per role and carries the options each core takes, ready to spread
 * into TeredoClientConfig, TeredoRelayConfig or TeredoServerConfig.
 *
 * Host names (ServerAddress teredo.example.net) stay names here: resolveIpv4() and resolveServerAddresses()
 * look them up when the daemon starts, and the client daemon may do so again after losing its server, as
 * Miredo's maintenance thread does.
 */
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { TeredoClientConfig } from '../teredo/client.js';
import type { TeredoRelayConfig } from '../teredo/relay.js';
import type { TeredoServerConfig } from '../teredo/server.js';
import { formatIpv4, isGlobalIpv4, ipv6Equal, parseIpv4, type Ipv4 } from '../wire/ip.js';
import { isGlobalUnicastIpv6 } from '../wire/ipv6class.js';
import { isTeredoAddress, TEREDO_PORT, TEREDO_PREFIX } from '../wire/teredo.js';
import { defaultControlPath } from '../io/control.js';
import type { RateLimitSetting } from '../core/ratelimit.js';
import { RelayLimiter, ServerLimiter } from '../teredo/limits.js';
import {
  configFail,
  formatHostAddress,
  formatPrefix,
  parseFlags,
  parseMiredoConfig,
  type DaemonRole,
  type DirectiveName,
  type DirectiveValues,
  type HostAddress,
  type ListenAddress,
  type Located,
  type LogLevel,
  type MiredoConfig,
  type MiredoRelayType,
  type SyslogFacility,
} from './miredo.js';

export type { DaemonRole } from './miredo.js';

function formatLimit(l: RateLimitSetting): string {
  return l ? `${l.perSecond}/s (burst ${l.burst})` : 'unlimited';
}

/** The files Miredo reads when given no -c (Debian: /etc/miredo/miredo.conf links to /etc/miredo.conf). */
export const MIREDO_DEFAULT_CONFIG: Record<DaemonRole, string> = {
  client: '/etc/miredo/miredo.conf',
  relay: '/etc/miredo/miredo.conf',
  server: '/etc/miredo/miredo-server.conf',
};

/** transit6's NAT-probe port on the server's secondary address (a Miredo server simply never answers there). */
export const DEFAULT_PROBE_PORT = 3546;
export const MIN_MTU = 1280;
export const MAX_MTU = 65535;

export interface BindSetting {
  /** 0.0.0.0 (any) by default; a name is resolved at start. */
  address: Located<HostAddress>;
  /** 0: an ephemeral port (Miredo's default). */
  port: number;
}

interface DaemonCommon {
  /** Absolute path of the file read, if any. */
  configFile: string | undefined;
  syslogFacility: SyslogFacility;
  /** The control socket: --control, ControlSocket, or this network namespace's default path. */
  controlSocket: string;
  pidFile: string | undefined;
  /** User to switch to once set up; undefined stays as started. */
  user: string | undefined;
  /** The Prometheus endpoint (--metrics, Metrics); undefined: off. */
  metrics: ListenAddress | undefined;
  /** Capture files' base path (--pcap, Pcap): BASE-udp.pcap and BASE-tun.pcap; undefined: off. */
  pcap: string | undefined;
  /** --log-level, LogLevel; undefined: the environment's TRANSIT6_LOG_LEVEL or info. */
  logLevel: LogLevel | undefined;
  /** Non-fatal remarks, "file line N: ..." each (unknown or repeated directives, ignored settings). */
  warnings: string[];
}

export interface ClientDaemonConfig extends DaemonCommon {
  role: 'client';
  relayType: 'client' | 'autoclient';
  server: Located<HostAddress>;
  /** undefined: primary + 1, as Miredo servers use. */
  server2: Located<HostAddress> | undefined;
  bind: BindSetting;
  /** undefined: the kernel picks tunN (what Miredo does without InterfaceName). */
  interfaceName: string | undefined;
  /** Offload (--offload, default on): TCP segments and UDP datagrams written to the tunnel are merged (io/gro.ts),
   *  runs of datagrams to one peer leave as UDP GSO messages. */
  offload: boolean;
  /** Everything TeredoClientConfig takes except the addresses, which need resolving and binding first. */
  core: Omit<TeredoClientConfig, 'server' | 'server2' | 'local'>;
}

export interface RelayDaemonConfig extends DaemonCommon {
  role: 'relay';
  /** relay and cone send indirect bubbles only; restricted sends direct ones too (rfc/MIREDO-INTEROP.md §3.6). */
  relayType: 'relay' | 'cone' | 'restricted';
  bind: BindSetting;
  interfaceName: string | undefined;
  /** Tunnel MTU (InterfaceMTU). */
  mtu: number;
  /** The Teredo prefix the tunnel routes: always 2001:0::/32 today. */
  prefix: Uint8Array;
  /** Offload (--offload, default on): TCP segments and UDP datagrams written to the tunnel are merged (io/gro.ts),
   *  runs of datagrams to one peer leave as UDP GSO messages. */
  offload: boolean;
  core: Omit<TeredoRelayConfig, 'local'>;
}

export interface ServerDaemonConfig extends DaemonCommon {
  role: 'server';
  primary: Located<HostAddress>;
  /** undefined: primary + 1, as Miredo does. */
  secondary: Located<HostAddress> | undefined;
  prefix: Uint8Array;
  core: Omit<TeredoServerConfig, 'primary' | 'secondary'>;
}

export type DaemonConfig = ClientDaemonConfig | RelayDaemonConfig | ServerDaemonConfig;

export interface ResolveOptions {
  /** Directory for a relative config path and relative paths in flags (default process.cwd()). */
  cwd?: string;
  /** For tests. */
  readFile?: (path: string) => string;
  /** For tests: the default control socket path (default: this network namespace's). */
  defaultControlPath?: (role: DaemonRole) => string;
}

type Flags = Record<string, string | boolean | undefined>;

export function resolveDaemonConfig(role: 'client', file: string | undefined, flags: Flags, opts?: ResolveOptions): ClientDaemonConfig;
export function resolveDaemonConfig(role: 'relay', file: string | undefined, flags: Flags, opts?: ResolveOptions): RelayDaemonConfig;
export function resolveDaemonConfig(role: 'server', file: string | undefined, flags: Flags, opts?: ResolveOptions): ServerDaemonConfig;
export function resolveDaemonConfig(role: DaemonRole, file: string | undefined, flags: Flags, opts?: ResolveOptions): DaemonConfig;
export function resolveDaemonConfig(role: DaemonRole, file: string | undefined, flags: Flags, opts: ResolveOptions = {}): DaemonConfig {
  const cwd = opts.cwd ?? process.cwd();
  const warnings: string[] = [];
  let fromFile: MiredoConfig = {};
  let configFile: string | undefined;
  if (file !== undefined) {
    // Miredo needed absolute paths (reference study §3); relative ones are taken from the working directory.
    configFile = resolvePath(cwd, file);
    const text = readConfigFile(configFile, file, opts.readFile);
    const parsed = parseMiredoConfig(text, file, role, configFile);
    fromFile = parsed.config;
    warnings.push(...parsed.warnings);
  }
  const fromFlags = parseFlags(flags, role, cwd);
  warnings.push(...fromFlags.warnings);
  const s = new Settings(fromFile, fromFlags.config, warnings);
  const common: DaemonCommon = {
    configFile,
    syslogFacility: s.get('SyslogFacility')?.value ?? 'daemon',
    controlSocket: s.get('ControlSocket')?.value ?? (opts.defaultControlPath ?? defaultControlPath)(role),
    pidFile: s.get('PidFile')?.value,
    user: s.get('User')?.value,
    metrics: s.get('Metrics')?.value,
    pcap: s.get('Pcap')?.value,
    logLevel: s.get('LogLevel')?.value,
    warnings,
  };
  switch (role) {
    case 'client':
      return clientConfig(s, common);
    case 'relay':
      return relayConfig(s, common);
    case 'server':
      return serverConfig(s, common);
  }
}

function readConfigFile(path: string, shown: string, readFile?: (path: string) => string): string {
  try {
    return readFile ? readFile(path) : readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new ConfigError(`cannot read configuration file ${shown}: ${why}`);
  }
}

/** Flags over file; a setting's location comes with it. */
class Settings {
  constructor(
    private readonly file: MiredoConfig,
    private readonly flags: MiredoConfig,
    private readonly warnings: string[],
  ) {}

  get<K extends DirectiveName>(name: K): Located<DirectiveValues[K]> | undefined {
    return (this.flags[name] ?? this.file[name]) as Located<DirectiveValues[K]> | undefined;
  }

  fromFlag(name: DirectiveName): boolean {
    return this.flags[name] !== undefined;
  }

  /** Miredo: a server named on the command line replaces the file's pair, so the file's second address is dropped. */
  dropFileSecondary(primary: DirectiveName, secondary: DirectiveName): void {
    const f = this.file[secondary];
    if (this.fromFlag(primary) && !this.fromFlag(secondary) && f) {
      this.warnings.push(`${f.where}: ${secondary} ignored: the server was given on the command line (--${flagOf(primary)})`);
      delete this.file[secondary];
    }
  }
}

function flagOf(name: DirectiveName): string {
  return { ServerAddress: 'server', ServerBindAddress: 'server-bind-address' }[name as string] ?? name;
}

const ANY: Located<HostAddress> = { value: { kind: 'ipv4', addr: 0, text: '0.0.0.0' }, where: 'default' };

function bindSetting(s: Settings): BindSetting {
  const address = s.get('BindAddress') ?? ANY;
  if (address.value.kind === 'ipv4' && address.value.addr >>> 28 >= 14) {
    configFail(address.where, `BindAddress ${address.value.text} is not a unicast address`);
  }
  return { address, port: s.get('BindPort')?.value ?? 0 };
}

function checkGlobal(name: string, h: Located<HostAddress>): void {
  if (h.value.kind === 'ipv4' && !isGlobalIpv4(h.value.addr)) {
    configFail(h.where, `${name} ${formatIpv4(h.value.addr)} is not a global unicast IPv4 address`);
  }
}

function checkPair(names: [string, string], a: Located<HostAddress>, b: Located<HostAddress> | undefined): void {
  checkGlobal(names[0], a);
  if (!b) {
    if (a.value.kind === 'ipv4') {
      const next = (a.value.addr + 1) >>> 0;
      if (!isGlobalIpv4(next)) configFail(a.where, `${names[1]} defaults to ${names[0]} + 1 = ${formatIpv4(next)}, which is not global: set ${names[1]}`);
    }
    return;
  }
  checkGlobal(names[1], b);
  if (a.value.kind === 'ipv4' && b.value.kind === 'ipv4' && a.value.addr === b.value.addr) {
    configFail(b.where, `${names[1]} must differ from ${names[0]} (${a.value.text})`);
  }
}

function mtuSetting(s: Settings): number {
  const m = s.get('InterfaceMTU');
  if (m && (m.value < MIN_MTU || m.value > MAX_MTU)) configFail(m.where, `InterfaceMTU ${m.value} is outside ${MIN_MTU}-${MAX_MTU}`);
  return m?.value ?? MIN_MTU;
}

function prefixSetting(s: Settings): Uint8Array {
  const p = s.get('Prefix');
  const rfc = new Uint8Array(16);
  rfc.set(TEREDO_PREFIX);
  if (p && !ipv6Equal(p.value, rfc)) {
    configFail(p.where, `Prefix ${formatPrefix(p.value)}: transit6 supports only the RFC 4380 prefix ${formatPrefix(rfc)}`);
  }
  return rfc;
}

function relayTypeFor(s: Settings, role: 'client' | 'relay'): MiredoRelayType {
  const t = s.get('RelayType');
  if (!t) return role === 'client' ? 'client' : 'cone';
  const isClient = t.value === 'client' || t.value === 'autoclient';
  if (role === 'client' && !isClient) configFail(t.where, `RelayType ${t.value} configures a Teredo relay: run 'transit6 teredo relay'`);
  if (role === 'relay' && isClient) configFail(t.where, `RelayType ${t.value} configures a Teredo client: run 'transit6 teredo client'`);
  return t.value;
}

function limits(s: Settings): { limits?: { maxPeers: number } } {
  const m = s.get('MaxPeers');
  return m ? { limits: { maxPeers: m.value } } : {};
}

/** A rate-limit setting when it was given (undefined in the result means "no limit", absence means the default). */
function rateLimits<K extends string>(s: Settings, table: Record<K, 'RsRateLimit' | 'RsGlobalRateLimit' | 'ForwardRateLimit' | 'NewPeerRateLimit' | 'NewPeerGlobalRateLimit' | 'IcmpErrorRateLimit'>): { rateLimits?: Partial<Record<K | 'tableSlots', unknown>> } {
  const out: Partial<Record<K | 'tableSlots', unknown>> = {};
  for (const [key, name] of Object.entries(table) as [K, DirectiveName][]) {
    const v = s.get(name);
    if (v) out[key] = v.value;
  }
  const slots = s.get('RateLimitTableSize');
  if (slots) out.tableSlots = slots.value;
  return Object.keys(out).length ? { rateLimits: out } : {};
}

function clientConfig(s: Settings, common: DaemonCommon): ClientDaemonConfig {
  const relayType = relayTypeFor(s, 'client') as ClientDaemonConfig['relayType'];
  s.dropFileSecondary('ServerAddress', 'ServerAddress2');
  const server = s.get('ServerAddress');
  if (!server) throw new ConfigError('no Teredo server: set ServerAddress in the configuration file or give --server');
  const server2 = s.get('ServerAddress2');
  checkPair(['ServerAddress', 'ServerAddress2'], server, server2);
  const bool = (name: 'DetectNat' | 'LocalDiscovery' | 'SymmetricNatSupport' | 'Hairpinning' | 'OnDemand') => s.get(name)?.value;
  const core: ClientDaemonConfig['core'] = {
    serverPort: s.get('ServerPort')?.value ?? TEREDO_PORT,
    probePort: s.get('ProbePort')?.value ?? DEFAULT_PROBE_PORT,
    natUdpTimeoutMs: s.get('NatUdpTimeout')?.value ?? 30_000,
    detectNat: bool('DetectNat') ?? true,
    localDiscovery: bool('LocalDiscovery') ?? true,
    symmetricNatSupport: bool('SymmetricNatSupport') ?? true,
    hairpinning: bool('Hairpinning') ?? true,
    onDemand: bool('OnDemand') ?? false,
    ...limits(s),
  };
  const idle = s.get('IdleTimeout');
  if (idle) core.idleDormancyMs = idle.value;
  if (core.probePort === core.serverPort) configFail(s.get('ProbePort')?.where ?? s.get('ServerPort')!.where, `ProbePort must differ from the server port ${core.serverPort}`);
  return { ...common, role: 'client', relayType, server, server2, bind: bindSetting(s), interfaceName: s.get('InterfaceName')?.value, offload: s.get('Offload')?.value ?? true, core };
}

function relayConfig(s: Settings, common: DaemonCommon): RelayDaemonConfig {
  const relayType = relayTypeFor(s, 'relay') as RelayDaemonConfig['relayType'];
  const hosts = s.get('RelayHostAddress');
  for (const a of hosts?.value ?? []) {
    if (!isGlobalUnicastIpv6(a) || isTeredoAddress(a)) configFail(hosts!.where, 'RelayHostAddress: a host-specific relay serves global, native (non-Teredo) IPv6 addresses');
  }
  const core: RelayDaemonConfig['core'] = {
    mode: hosts ? 'host' : 'relay',
    // rfc/MIREDO-INTEROP.md §3.6: relay and cone bubble indirectly only; restricted also directly.
    directBubbles: relayType === 'restricted',
    ...limits(s),
    ...(rateLimits(s, { newPeerPerSource: 'NewPeerRateLimit', newPeerGlobal: 'NewPeerGlobalRateLimit', icmpErrors: 'IcmpErrorRateLimit' }) as Pick<RelayDaemonConfig['core'], 'rateLimits'>),
  };
  if (hosts) core.hostAddresses = hosts.value;
  return {
    ...common,
    role: 'relay',
    relayType,
    bind: bindSetting(s),
    interfaceName: s.get('InterfaceName')?.value,
    mtu: mtuSetting(s),
    prefix: prefixSetting(s),
    offload: s.get('Offload')?.value ?? true,
    core,
  };
}

function serverConfig(s: Settings, common: DaemonCommon): ServerDaemonConfig {
  s.dropFileSecondary('ServerBindAddress', 'ServerBindAddress2');
  const primary = s.get('ServerBindAddress');
  // Miredo counts 0.0.0.0 as "not specified".
  if (!primary || (primary.value.kind === 'ipv4' && primary.value.addr === 0)) {
    throw new ConfigError('no server address: set ServerBindAddress in the configuration file or give --server-bind-address');
  }
  const secondary = s.get('ServerBindAddress2');
  checkPair(['ServerBindAddress', 'ServerBindAddress2'], primary, secondary);
  const port = s.get('ServerPort')?.value ?? TEREDO_PORT;
  const probe = s.get('ProbePort');
  const probePort = probe ? probe.value : DEFAULT_PROBE_PORT;
  if (probePort === port) configFail(probe?.where ?? s.get('ServerPort')!.where, `ProbePort must differ from the server port ${port}`);
  const core: ServerDaemonConfig['core'] = {
    port,
    mtu: mtuSetting(s),
    forwardNative: s.get('ForwardNative')?.value ?? true,
    ...(rateLimits(s, { rsPerSource: 'RsRateLimit', rsGlobal: 'RsGlobalRateLimit', forwardPerSource: 'ForwardRateLimit' }) as Pick<ServerDaemonConfig['core'], 'rateLimits'>),
  };
  if (probePort !== false) core.probePort = probePort;
  return { ...common, role: 'server', primary, secondary, prefix: prefixSetting(s), core };
}

// ---------------------------------------------------------------------------------------------------------------
// Name resolution, when the daemon starts

export type Lookup4 = (name: string) => Promise<string>;

// The resolver is loaded when a name needs it (addresses in the configuration need none).
const systemLookup: Lookup4 = async (name) => (await (await import('node:dns/promises')).lookup(name, { family: 4 })).address;

/**
 * A setting's IPv4 address, looked up with getaddrinfo (as Miredo does) when it is a name. `global` checks the
 * result with isGlobalIpv4 (ConfigError). A failed lookup throws an Error whose `code` is the resolver's
 * (ENOTFOUND, EAI_AGAIN): a client daemon may retry later, as Miredo does every 100 s.
 */
export async function resolveIpv4(setting: Located<HostAddress>, name: string, opts: { global?: boolean; lookup?: Lookup4 } = {}): Promise<Ipv4> {
  const h = setting.value;
  let addr: Ipv4;
  if (h.kind === 'ipv4') addr = h.addr;
  else {
    let text: string;
    try {
      text = await (opts.lookup ?? systemLookup)(h.name);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'ENOTFOUND';
      const err = new Error(`${setting.where}: ${name} '${h.name}' does not resolve to an IPv4 address (${code})`) as NodeJS.ErrnoException;
      err.code = code;
      throw err;
    }
    const parsed = parseIpv4(text);
    if (parsed === undefined) throw new Error(`${setting.where}: ${name} '${h.name}' resolved to '${text}', not an IPv4 address`);
    addr = parsed;
  }
  if (opts.global && !isGlobalIpv4(addr)) {
    const shown = h.kind === 'ipv4' ? formatIpv4(addr) : `'${h.name}' (${formatIpv4(addr)})`;
    throw new ConfigError(`${setting.where}: ${name} ${shown} is not a global unicast IPv4 address`);
  }
  return addr;
}

/** A client's server pair or a server's own pair, resolved and checked (global, different; second = first + 1 by default). */
export async function resolveServerAddresses(cfg: ClientDaemonConfig | ServerDaemonConfig, lookup?: Lookup4): Promise<{ primary: Ipv4; secondary: Ipv4 }> {
  const [first, second, names] =
    cfg.role === 'client'
      ? [cfg.server, cfg.server2, ['ServerAddress', 'ServerAddress2'] as const]
      : [cfg.primary, cfg.secondary, ['ServerBindAddress', 'ServerBindAddress2'] as const];
  const opts = lookup ? { global: true, lookup } : { global: true };
  const primary = await resolveIpv4(first, names[0], opts);
  let secondary: Ipv4;
  if (second) secondary = await resolveIpv4(second, names[1], opts);
  else {
    secondary = (primary + 1) >>> 0;
    if (!isGlobalIpv4(secondary)) throw new ConfigError(`${first.where}: ${names[1]} defaults to ${formatIpv4(primary)} + 1 = ${formatIpv4(secondary)}, which is not global: set ${names[1]}`);
  }
  if (secondary === primary) throw new ConfigError(`${(second ?? first).where}: ${names[1]} must differ from ${names[0]} (${formatIpv4(primary)})`);
  return { primary, secondary };
}

/** One line per setting, for `--check` style output and logs. */
export function describeDaemonConfig(cfg: DaemonConfig): string[] {
  const lines = [`role ${cfg.role}`];
  const ep = (b: BindSetting) => `${formatHostAddress(b.address.value)}:${b.port === 0 ? 'any' : b.port}`;
  if (cfg.role === 'client') {
    lines.push(`server ${formatHostAddress(cfg.server.value)}${cfg.server2 ? `, secondary ${formatHostAddress(cfg.server2.value)}` : ' (secondary: primary + 1)'}`);
    lines.push(`bind ${ep(cfg.bind)}`, `interface ${cfg.interfaceName ?? "(the kernel's tunN)"}`);
  } else if (cfg.role === 'relay') {
    lines.push(`relay type ${cfg.relayType}${cfg.core.mode === 'host' ? ' (host-specific)' : ''}`, `bind ${ep(cfg.bind)}`, `interface ${cfg.interfaceName ?? "(the kernel's tunN)"} mtu ${cfg.mtu}`);
    const l = new RelayLimiter(cfg.core.rateLimits).limits;
    lines.push(`rate limits: new peers ${formatLimit(l.newPeerPerSource)} per source /64, ${formatLimit(l.newPeerGlobal)} in total; ICMPv6 errors ${formatLimit(l.icmpErrors)}`);
  } else {
    lines.push(`addresses ${formatHostAddress(cfg.primary.value)}${cfg.secondary ? ` and ${formatHostAddress(cfg.secondary.value)}` : ' and primary + 1'} port ${cfg.core.port}`);
    lines.push(`probe port ${cfg.core.probePort ?? 'none'}`, `RA MTU ${cfg.core.mtu}`);
    const l = new ServerLimiter(cfg.core.rateLimits).limits;
    lines.push(`rate limits: RS ${formatLimit(l.rsPerSource)} per source, ${formatLimit(l.rsGlobal)} in total; forwarding ${formatLimit(l.forwardPerSource)} per source`);
  }
  lines.push(`control socket ${cfg.controlSocket}`);
  return lines;
}
