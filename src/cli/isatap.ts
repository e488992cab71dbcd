/**
 * `transit6 isatap host|router|show`: the ISATAP daemons (RFC 5214) over the user-space protocol-41 data plane
 * (src/io/proto41.ts), and `show state|stats` for a running one. Also the pieces `transit6 6to4` shares: the
 * daemon's signal handling and the show command.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { existsSync, readdirSync } from 'node:fs';
import { ConfigError, UsageError } from '../core/errors.js';
import { SeededRng, type Rng } from '../core/rng.js';
import { IsatapHost } from '../isatap/host.js';
import { DEFAULT_ROUTER_LIFETIME_S, IsatapRouter } from '../isatap/router.js';
import { controlDir, controlRequest, ControlError, DEFAULT_TIMEOUT_MS } from '../io/control.js';
import { parseListenAddress } from '../config/miredo.js';
import { createNotifier } from '../io/sdnotify.js';
import { createLogger, LEVELS, type Level, type Logger } from '../io/log.js';
import {
  localIpv4Addresses,
  resolveIpv4Name,
  sourceAddressTowards,
  spawnRadvd,
  startTunnelDaemon,
  tunnelControlPath,
  type TunnelDaemonHandle,
  type TunnelDaemonOptions,
} from '../io/proto41.js';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6Prefix, type Ipv4 } from '../wire/ip.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type CliIo } from './io.js';

const HELP = `usage: transit6 isatap host [--router ADDR|NAME]... [options]
       transit6 isatap router --prefix PREFIX/64 [--prefix ...] [--default-route] [options]
       transit6 isatap show state|stats [--json] [--role host|router] [--control PATH]

ISATAP (RFC 5214) in user space: IPv6 in IPv4 protocol 41 over a raw socket and a TUN device (the kernel's sit
driver is not needed). Runs in the foreground; SIGTERM or SIGINT stop it and remove the interface; SIGHUP is
logged and ignored (there is no reload: restart it to change options). Needs root.

host: finds its ISATAP router by resolving the name "isatap" (the hosts file, then DNS with the search domains of
resolv.conf) or from --router, as 'netsh interface isatap set router' does; re-resolves every hour; solicits
each router over protocol 41 and configures the link-local address fe80::5efe:w.x.y.z (fe80::200:5efe:w.x.y.z for
a public IPv4), an address and on-link route for each advertised /64 and a default route via a router that
offers one. Hosts on the same ISATAP prefix talk directly.
  --router ADDR|NAME     an ISATAP router by IPv4 address (repeatable) or the name to resolve instead of "isatap"
  --local ADDR           this host's IPv4 address (default: the one the kernel uses towards the router)
  --interface NAME       the tunnel interface's name (default isatap0)
  --prl-refresh S        seconds between resolutions of the router name (default 3600)
  --hosts-file PATH      hosts file for the router name (default /etc/hosts)
  --resolv-conf PATH     resolv.conf for the search domains and name servers (default /etc/resolv.conf)

router: answers solicitations with advertisements of the given prefixes and forwards between the ISATAP hosts
and native IPv6 (turns IPv6 forwarding on).
  --prefix PREFIX/64     a prefix to advertise (repeatable; at least one)
  --default-route        advertise this router as a default router (router lifetime 1800 s)
  --router-lifetime S    router lifetime with --default-route (default 1800)
  --local ADDR           the router's IPv4 address (default: the first one on this host)
  --interface NAME       the tunnel interface's name (default isatap0)
  --mtu N                the link MTU to advertise (default 1280)
  --advertiser core|radvd  who answers solicitations: this daemon (default) or radvd on the tunnel interface
                         (UnicastOnly, as ISATAP has no multicast), started and stopped with the daemon

both:
  --control PATH         control socket (default /run/transit6/netns-<inode>/isatap-<role>.sock)
  --metrics HOST:PORT    Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9545; default off)
  --pcap FILE            capture to FILE-ipv4.pcap (the protocol-41 packets, IPv4 header included) and
                         FILE-tun.pcap (the IPv6 packets of the tunnel interface)
  --log-level LEVEL      debug | info | warn | error (default info)

examples:
  transit6 isatap router --local 10.1.0.1 --prefix 2001:db8:5efe::/64 --default-route
  transit6 isatap host --router 10.1.0.1
  transit6 isatap host                      # the router from the name "isatap"
  transit6 isatap host --router 10.1.0.1 --metrics 127.0.0.1:9545 --pcap /tmp/isatap --log-level debug
  transit6 isatap show state`;

export async function isatapCommand(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.out(HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (sub === 'show') return tunnelShowCommand('isatap', rest, io);
  if (sub !== 'host' && sub !== 'router') throw new UsageError(`unknown role '${sub}': host, router or show`);
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(HELP);
    return EXIT_OK;
  }
  const options = {
    router: { type: 'string', multiple: true },
    local: { type: 'string' },
    interface: { type: 'string' },
    'prl-refresh': { type: 'string' },
    'hosts-file': { type: 'string' },
    'resolv-conf': { type: 'string' },
    prefix: { type: 'string', multiple: true },
    'default-route': { type: 'boolean' },
    'router-lifetime': { type: 'string' },
    mtu: { type: 'string' },
    advertiser: { type: 'string' },
    control: { type: 'string' },
    ...OBSERVE_OPTIONS,
  } as const;
  const { values: v } = parseArgs({ args: rest, options, strict: true, allowPositionals: false });
  const hostOnly = ['router', 'prl-refresh', 'hosts-file', 'resolv-conf'] as const;
  const routerOnly = ['prefix', 'default-route', 'router-lifetime', 'mtu', 'advertiser'] as const;
  for (const k of sub === 'host' ? routerOnly : hostOnly) if (v[k] !== undefined) throw new UsageError(`--${k} is for 'isatap ${sub === 'host' ? 'router' : 'host'}'`);
  const local = v.local !== undefined ? ipv4Arg('--local', v.local) : undefined;
  const observe = observeArgs(v);
  const log = createLogger(`isatap-${sub}`, observe.logLevel ? { level: observe.logLevel } : {});
  const base = {
    name: `isatap-${sub}`,
    interfaceName: v.interface ?? 'isatap0',
    log,
    ...(v.control ? { controlPath: v.control } : {}),
    ...observe.daemon,
  };
  let opts: TunnelDaemonOptions;
  if (sub === 'host') {
    const literals: Ipv4[] = [];
    const names: string[] = [];
    for (const r of v.router ?? []) {
      const a = parseIpv4(r);
      if (a !== undefined) literals.push(a);
      else if (/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(r)) names.push(r);
      else throw new UsageError(`--router ${r}: neither an IPv4 address nor a host name`);
    }
    if (names.length > 1) throw new UsageError('--router: one name at most (addresses may be repeated)');
    const routerName = names[0] ?? (literals.length === 0 ? 'isatap' : undefined);
    const resolver = { ...(v['hosts-file'] ? { hostsFile: v['hosts-file'] } : {}), ...(v['resolv-conf'] ? { resolvConf: v['resolv-conf'] } : {}) };
    const prlRefreshMs = v['prl-refresh'] !== undefined ? intArg('--prl-refresh', v['prl-refresh'], 10, 86400) * 1000 : undefined;
    const me = local ?? (await hostLocalAddress(literals, routerName, resolver, log));
    opts = {
      ...base,
      resolver,
      core: new IsatapHost({ local: me, ...(routerName ? { routerName } : {}), routers: literals, ...(prlRefreshMs ? { prlRefreshMs } : {}) }, cryptoRng()),
    };
  } else {
    const prefixes = (v.prefix ?? []).map((p) => {
      const parsed = parseIpv6Prefix(p);
      if (!parsed) throw new UsageError(`--prefix ${p}: not an IPv6 prefix (PREFIX/64)`);
      if (parsed.length !== 64) throw new UsageError(`--prefix ${p}: ISATAP prefixes are /64 (RFC 5214 §6.1)`);
      if (parsed.prefix[0] === 0xff || (parsed.prefix[0] === 0xfe && (parsed.prefix[1]! & 0xc0) === 0x80)) throw new UsageError(`--prefix ${p}: not a unicast prefix for addresses`);
      return parsed.prefix;
    });
    if (prefixes.length === 0) throw new UsageError('isatap router needs at least one --prefix PREFIX/64');
    const advertiser = v.advertiser ?? 'core';
    if (advertiser !== 'core' && advertiser !== 'radvd') throw new UsageError(`--advertiser ${advertiser}: core or radvd`);
    if (advertiser === 'radvd' && spawnSync('radvd', ['-v']).error) throw new ConfigError('radvd is not installed: install it (Debian package radvd) or leave --advertiser at core');
    const me = local ?? firstLocal(log);
    const routerLifetimeS = v['router-lifetime'] !== undefined ? intArg('--router-lifetime', v['router-lifetime'], 1, 9000) : DEFAULT_ROUTER_LIFETIME_S;
    const mtu = v.mtu !== undefined ? intArg('--mtu', v.mtu, 1280, 65515) : 1280;
    const defaultRoute = v['default-route'] === true;
    opts = {
      ...base,
      forwarding: true,
      core: new IsatapRouter({ local: me, prefixes, defaultRoute, routerLifetimeS, mtu, advertiser: advertiser === 'radvd' ? 'kernel' : 'core' }),
      ...(advertiser === 'radvd'
        ? {
            afterStart: async (ifname: string) => spawnRadvd(isatapRadvdConfig(ifname, prefixes.map((p) => `${formatIpv6(p)}/64`), defaultRoute ? routerLifetimeS : 0, mtu), 'isatap-router', log),
          }
        : {}),
    };
  }
  return runTunnelDaemon(opts, io, log);
}

/**
 * radvd.conf for the ISATAP router's tunnel interface: UnicastOnly (ISATAP is NBMA, RFC 5214 §8: no periodic
 * multicast advertisements, solicited ones unicast to the host), the prefixes on-link and autonomous.
 */
export function isatapRadvdConfig(ifname: string, prefixes: string[], routerLifetimeS: number, mtu: number): string {
  const lines = ['# written by transit6 isatap router --advertiser radvd', `interface ${ifname} {`, '  AdvSendAdvert on;', '  UnicastOnly on;', `  AdvDefaultLifetime ${routerLifetimeS};`, `  AdvLinkMTU ${mtu};`];
  for (const p of prefixes) lines.push(`  prefix ${p} {`, '    AdvOnLink on;', '    AdvAutonomous on;', '  };');
  lines.push('};', '');
  return lines.join('\n');
}

/** Starts the daemon, then waits for SIGTERM/SIGINT. */
export async function runTunnelDaemon(opts: TunnelDaemonOptions, io: CliIo, log: Logger): Promise<number> {
  // Under systemd (Type=notify): READY=1 once the interface, control socket and core run, STATUS= at each state
  // change of the core, STOPPING=1 when a signal stops it.
  const notify = createNotifier({ onError: (m) => log.warn(m) });
  let handle: TunnelDaemonHandle;
  let state: string | undefined;
  try {
    handle = await startTunnelDaemon({
      ...opts,
      onStatus: (s) => {
        state = s;
        notify.status(s);
      },
    });
  } catch (e) {
    io.err(`transit6 ${opts.name}: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  notify.ready(`running (${opts.name.replace('-', ' ')} on ${handle.interfaceName})${state ? `; ${state}` : ''}`);
  return new Promise<number>((resolve) => {
    const finish = (sig: string): void => {
      notify.stopping(`stopping (${sig})`);
      void handle.stop(sig).then(() => resolve(EXIT_OK));
    };
    process.once('SIGTERM', () => finish('SIGTERM'));
    process.once('SIGINT', () => finish('SIGINT'));
    // SIGHUP's default action would kill the daemon and leave the interface behind: these daemons have no reload.
    process.on('SIGHUP', () => log.warn('SIGHUP ignored: this daemon has no reload; restart it to change its options'));
    log.debug('running');
  });
}

/** --metrics, --pcap and --log-level, as the ISATAP and 6to4 daemons take them. */
export const OBSERVE_OPTIONS = {
  metrics: { type: 'string' },
  pcap: { type: 'string' },
  'log-level': { type: 'string' },
} as const;

export function observeArgs(v: { metrics?: string | undefined; pcap?: string | undefined; 'log-level'?: string | undefined }): {
  logLevel: Level | undefined;
  daemon: Pick<TunnelDaemonOptions, 'metrics' | 'pcap'>;
} {
  const daemon: Pick<TunnelDaemonOptions, 'metrics' | 'pcap'> = {};
  if (v.metrics !== undefined) daemon.metrics = parseListenAddress(v.metrics, { where: '--metrics', name: '--metrics', baseDir: process.cwd(), warn: () => undefined });
  if (v.pcap !== undefined) {
    if (v.pcap === '' || v.pcap.includes('\0')) throw new UsageError('--pcap needs a file name');
    daemon.pcap = v.pcap;
  }
  const level = v['log-level']?.toLowerCase();
  if (level !== undefined && !(LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level ${v['log-level']}: debug, info, warn or error`);
  return { logLevel: level as Level | undefined, daemon };
}

export function ipv4Arg(flag: string, text: string): Ipv4 {
  const a = parseIpv4(text);
  if (a === undefined) throw new UsageError(`${flag} ${text}: not an IPv4 address`);
  return a;
}

export function intArg(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`${flag} ${text}: a whole number from ${min} to ${max}`);
  return Number(text);
}

/** The cores take an Rng; the daemons seed one from the OS CSPRNG (jitter only, nothing secret). */
export function cryptoRng(): Rng {
  const seed = new Uint32Array(1);
  globalThis.crypto.getRandomValues(seed);
  return new SeededRng(seed[0]!);
}

function firstLocal(log: Logger): Ipv4 {
  const all = localIpv4Addresses();
  if (all.length === 0) throw new ConfigError('no IPv4 address on this host: give one with --local');
  if (all.length > 1) log.info(`using ${formatIpv4(all[0]!)} (of ${all.map(formatIpv4).join(', ')}); --local chooses another`);
  return all[0]!;
}

async function hostLocalAddress(literals: Ipv4[], name: string | undefined, resolver: { hostsFile?: string; resolvConf?: string }, log: Logger): Promise<Ipv4> {
  let towards = literals[0];
  if (towards === undefined && name) {
    try {
      towards = (await resolveIpv4Name(name, resolver))[0];
    } catch (e) {
      log.warn(`cannot resolve ${name} yet (${(e as Error).message}): trying again later`);
    }
  }
  if (towards !== undefined) {
    try {
      return await sourceAddressTowards(towards);
    } catch {
      // No route yet: fall back to the first address.
    }
  }
  return firstLocal(log);
}

// ---------------------------------------------------------------------------------------------------------------
// show

/** `transit6 isatap show ...` and `transit6 6to4 show ...`: asks the daemon of this namespace. */
export async function tunnelShowCommand(family: 'isatap' | '6to4', argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, role: { type: 'string' }, control: { type: 'string' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  const usage = `usage: transit6 ${family} show state|stats [--json]${family === 'isatap' ? ' [--role host|router]' : ''} [--control PATH]`;
  if (v.help) {
    io.out(usage);
    return EXIT_OK;
  }
  const what = positionals[0];
  if (positionals.length !== 1 || (what !== 'state' && what !== 'stats')) throw new UsageError(`${family} show wants state or stats`);
  let path = v.control;
  if (!path) {
    let names: string[];
    if (family === '6to4') names = ['6to4'];
    else if (v.role === 'host' || v.role === 'router') names = [`isatap-${v.role}`];
    else if (v.role !== undefined) throw new UsageError(`--role ${v.role}: host or router`);
    else names = ['isatap-host', 'isatap-router'];
    let dirNames: string[] = [];
    try {
      dirNames = existsSync(controlDir()) ? readdirSync(controlDir()) : [];
    } catch {
      throw new ControlError('permission', `permission denied: run as root (cannot read ${controlDir()})`);
    }
    const found = names.filter((n) => dirNames.includes(`${n}.sock`));
    if (found.length === 0) {
      io.err(`transit6 ${family} show: no ${family} daemon runs in this network namespace (no ${names.map((n) => tunnelControlPath(n)).join(' or ')})`);
      return EXIT_FAILURE;
    }
    if (found.length > 1) throw new UsageError(`several ${family} daemons run here (${found.join(', ')}): choose one with --role`);
    path = tunnelControlPath(found[0]!);
  }
  const timeout = v.timeout !== undefined ? intArg('--timeout', v.timeout, 1, 600) * 1000 : DEFAULT_TIMEOUT_MS;
  const result = (await controlRequest(path, what, undefined, timeout)) as Record<string, unknown>;
  io.out(v.json ? JSON.stringify(result, null, 2) : formatTunnelJson(result));
  return EXIT_OK;
}

/** A readable rendering of a tunnel daemon's answer: scalars as "name : value", lists and records indented. */
export function formatTunnelJson(o: Record<string, unknown>, indent = ''): string {
  const lines: string[] = [];
  const label = (k: string): string => k.replace(/([A-Z])/g, ' $1').toLowerCase();
  for (const [k, val] of Object.entries(o)) {
    if (Array.isArray(val)) {
      lines.push(`${indent}${label(k)} (${val.length}):`);
      for (const item of val) {
        if (item !== null && typeof item === 'object') lines.push(`${indent}  - ${Object.entries(item as Record<string, unknown>).map(([a, b]) => `${label(a)}=${fmt(b)}`).join(', ')}`);
        else lines.push(`${indent}  - ${fmt(item)}`);
      }
    } else if (val !== null && typeof val === 'object') {
      const entries = Object.entries(val as Record<string, unknown>);
      lines.push(`${indent}${label(k)}:${entries.length === 0 ? ' none' : ''}`);
      lines.push(formatTunnelJson(val as Record<string, unknown>, `${indent}  `));
    } else lines.push(`${indent}${label(k).padEnd(26 - indent.length)}: ${fmt(val)}`);
  }
  return lines.filter((l) => l !== '').join('\n');
}

function fmt(v: unknown): string {
  if (v === null || v === undefined) return '-';
  return typeof v === 'string' ? v : JSON.stringify(v);
}
