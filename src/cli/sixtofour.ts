/**
 * `transit6 6to4 host|router|relay|show`: 6to4 (RFC 3056) over the user-space protocol-41 data plane. The router
 * mode also serves a LAN the way the white paper's Internet Connection Sharing example does: it takes
 * 2002:WWXX:YYZZ:<subnet>::1/64 on the LAN interface, forwards, and advertises the /64 there with radvd.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, UsageError } from '../core/errors.js';
import { SixToFour, type SixToFourMode } from '../sixtofour/node.js';
import { createLogger, type Logger } from '../io/log.js';
import { localIpv4Addresses, resolveIpv4Name, spawnRadvd, type TunnelDaemonOptions } from '../io/proto41.js';
import { formatIpv6, parseIpv4, type Ipv4 } from '../wire/ip.js';
import { sixToFourAddress, sixToFourRefusal, SIXTOFOUR_RELAY_ANYCAST } from '../wire/sixtofour.js';
import { intArg, ipv4Arg, OBSERVE_OPTIONS, observeArgs, runTunnelDaemon, tunnelShowCommand } from './isatap.js';
import { EXIT_OK, EXIT_USAGE, type CliIo } from './io.js';

const HELP = `usage: transit6 6to4 host [--local ADDR]... [--relay NAME|ADDR|anycast] [options]
       transit6 6to4 router --lan IFACE [--subnet N] [--local ADDR]... [--relay NAME|ADDR|anycast] [options]
       transit6 6to4 relay [--local ADDR]... [options]
       transit6 6to4 show state|stats [--json] [--control PATH]

6to4 (RFC 3056) in user space: IPv6 in IPv4 protocol 41 over a raw socket and a TUN device (the kernel's sit
driver is not needed). Runs in the foreground; SIGTERM or SIGINT stop it and remove the interface; SIGHUP is
logged and ignored (there is no reload: restart it to change options). Needs root.

Each public IPv4 address w.x.y.z gives the address 2002:WWXX:YYZZ::WWXX:YYZZ and the site prefix
2002:WWXX:YYZZ::/48. 2002::/16 is sent straight to the IPv4 address it embeds; other IPv6 destinations go to the
relay. A private IPv4 address (RFC 1918 and the like) cannot be used: 6to4 needs a public one. The documentation
ranges count as public, so that labs can use 198.51.100.0/24 and 203.0.113.0/24.

  --local ADDR          a public IPv4 address of this host (repeatable; default: every public one it has)
  --relay NAME|ADDR     host, router: the 6to4 relay for native IPv6 destinations (without it: 2002::/16 only).
                        'anycast' or 192.88.99.1 is RFC 3068's anycast relay, deprecated by RFC 7526: only on request
  --strict-relay        host, router: take packets from native IPv6 sources only from --relay (RFC 3964 §5.3;
                        by default any public sender may bring them, as return traffic takes the relay nearest
                        the native host)
  --interface NAME      the tunnel interface's name (default tun6to4)
  --mtu N               the tunnel MTU (default 1280)
  --control PATH        control socket (default /run/transit6/netns-<inode>/6to4.sock)
  --metrics HOST:PORT   Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9546; default off)
  --pcap FILE           capture to FILE-ipv4.pcap (the protocol-41 packets, IPv4 header included) and
                        FILE-tun.pcap (the IPv6 packets of the tunnel interface)
  --log-level LEVEL     debug | info | warn | error (default info)

router:
  --lan IFACE           the LAN interface: gets 2002:WWXX:YYZZ:<subnet>::1/64 and router advertisements
  --subnet N            the LAN's subnet (SLA ID), 0-65535 (default: the LAN interface's index, as Windows ICS does)
  --advertise radvd|none  who advertises the LAN prefix (default radvd: started and stopped with the daemon)
  --ra-interval S       radvd's MaxRtrAdvInterval (default 600)

relay: serves 2002::/16 towards native IPv6 (route 2002::/16 to this host on the native side); turns forwarding on.

examples:
  transit6 6to4 host --relay 198.51.100.18
  transit6 6to4 router --lan eth1 --subnet 1 --relay relay.example.net
  transit6 6to4 relay --local 198.51.100.18
  transit6 6to4 host --metrics 127.0.0.1:9546 --pcap /tmp/6to4 --log-level debug
  transit6 6to4 show state`;

export async function sixToFourCommand(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.out(HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (sub === 'show') return tunnelShowCommand('6to4', rest, io);
  if (sub !== 'host' && sub !== 'router' && sub !== 'relay') throw new UsageError(`unknown mode '${sub}': host, router, relay or show`);
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(HELP);
    return EXIT_OK;
  }
  const { values: v } = parseArgs({
    args: rest,
    options: {
      local: { type: 'string', multiple: true },
      relay: { type: 'string' },
      'strict-relay': { type: 'boolean' },
      interface: { type: 'string' },
      mtu: { type: 'string' },
      control: { type: 'string' },
      lan: { type: 'string' },
      subnet: { type: 'string' },
      advertise: { type: 'string' },
      'ra-interval': { type: 'string' },
      ...OBSERVE_OPTIONS,
    },
    strict: true,
    allowPositionals: false,
  });
  const mode: SixToFourMode = sub;
  if (mode !== 'router') for (const k of ['lan', 'subnet', 'advertise', 'ra-interval'] as const) if (v[k] !== undefined) throw new UsageError(`--${k} is for '6to4 router'`);
  if (mode === 'relay' && (v.relay !== undefined || v['strict-relay'])) throw new UsageError(`--${v.relay !== undefined ? 'relay' : 'strict-relay'} is for '6to4 host' and '6to4 router'`);
  if (v['strict-relay'] && v.relay === undefined) throw new UsageError('--strict-relay needs --relay');
  if (mode === 'router' && !v.lan) throw new UsageError("6to4 router needs --lan IFACE (the interface its LAN is on)");
  if (v.lan !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(v.lan)) throw new UsageError(`--lan ${v.lan}: not an interface name`);
  const advertise = v.advertise ?? 'radvd';
  if (advertise !== 'radvd' && advertise !== 'none') throw new UsageError(`--advertise ${advertise}: radvd or none`);
  // Windows' ICS takes the private interface's index as the subnet (the white paper's 2002:836B:1759:5::/64).
  const subnet = v.subnet !== undefined ? intArg('--subnet', v.subnet, 0, 65535) : mode === 'router' ? interfaceIndex(v.lan!) : 0;
  const raInterval = v['ra-interval'] !== undefined ? intArg('--ra-interval', v['ra-interval'], 4, 1800) : 600;
  const mtu = v.mtu !== undefined ? intArg('--mtu', v.mtu, 1280, 65515) : 1280;
  const locals = chooseLocals((v.local ?? []).map((a) => ipv4Arg('--local', a)));
  const observe = observeArgs(v);
  const log = createLogger(`6to4-${mode}`, observe.logLevel ? { level: observe.logLevel } : {});
  let relay: Ipv4 | undefined;
  if (v.relay !== undefined) relay = await relayAddress(v.relay, log);
  if (mode === 'router' && advertise === 'radvd' && spawnSync('radvd', ['-v']).error) {
    throw new ConfigError('radvd is not installed: install it (Debian package radvd) or pass --advertise none and advertise the LAN prefix yourself');
  }
  const core = new SixToFour({ mode, locals, ...(relay !== undefined ? { relay } : {}), ...(v['strict-relay'] ? { strictRelay: true } : {}), ...(mode === 'router' ? { subnet } : {}), mtu });
  const lanAddress = sixToFourAddress(locals[0]!, subnet, 1n);
  const lanPrefix = `${formatIpv6(sixToFourAddress(locals[0]!, subnet))}/64`;
  const opts: TunnelDaemonOptions = {
    name: '6to4',
    interfaceName: v.interface ?? 'tun6to4',
    log,
    core,
    forwarding: mode !== 'host',
    ...(v.control ? { controlPath: v.control } : {}),
    ...observe.daemon,
    ...(mode === 'router'
      ? {
          afterStart: () => startLan(v.lan!, lanAddress, lanPrefix, advertise === 'radvd', raInterval, log),
          extraState: () => ({ lanInterface: v.lan, lanAddress: formatIpv6(lanAddress), lanPrefix, advertiser: advertise }),
        }
      : {}),
  };
  return runTunnelDaemon(opts, io, log);
}

function interfaceIndex(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()) & 0xffff;
  } catch {
    throw new ConfigError(`--lan ${name}: no such interface`);
  }
}

/** The public IPv4 addresses to use: those given (each must be public), or every public one this host has. */
function chooseLocals(given: Ipv4[]): Ipv4[] {
  for (const a of given) {
    const why = sixToFourRefusal(a);
    if (why) throw new ConfigError(`--local ${why}`);
  }
  if (given.length > 0) return given;
  const all = localIpv4Addresses();
  const usable = all.filter((a) => sixToFourRefusal(a) === undefined);
  if (usable.length === 0) {
    const found = all.length > 0 ? ` (this host has ${all.map((a) => sixToFourRefusal(a)!).join('; ')})` : '';
    throw new ConfigError(`no public IPv4 address: 6to4 needs one (RFC 3056 §2)${found}`);
  }
  return usable;
}

export async function relayAddress(text: string, log: Logger): Promise<Ipv4> {
  let a: Ipv4 | undefined = text === 'anycast' ? SIXTOFOUR_RELAY_ANYCAST : parseIpv4(text);
  if (a === undefined) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(text)) throw new UsageError(`--relay ${text}: neither an IPv4 address nor a host name`);
    try {
      a = (await resolveIpv4Name(text))[0]!;
    } catch (e) {
      throw new ConfigError(`--relay ${text}: ${(e as Error).message}`);
    }
  }
  if (a === SIXTOFOUR_RELAY_ANYCAST) {
    log.warn('using the 6to4 anycast relay 192.88.99.1: RFC 7526 deprecates it and it may be unreachable; prefer a relay you know');
    return a;
  }
  const why = sixToFourRefusal(a);
  if (why) throw new ConfigError(`--relay ${why}`);
  return a;
}

/** Router mode: the LAN address, and radvd advertising the /64 on the LAN. Returns the cleanup. */
async function startLan(lan: string, address: Uint8Array, prefix: string, radvd: boolean, maxInterval: number, log: Logger): Promise<() => Promise<void>> {
  const ip = (args: string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
  };
  const cidr = `${formatIpv6(address)}/64`;
  ip(['-6', 'addr', 'replace', cidr, 'dev', lan, 'nodad']);
  log.info(`LAN ${lan}: ${cidr}`, { lan, address: cidr, prefix });
  const stopRadvd = radvd ? spawnRadvd(radvdConfig(lan, prefix, maxInterval), '6to4', log) : undefined;
  if (radvd) log.info(`radvd advertises ${prefix} on ${lan}`);
  return async () => {
    await stopRadvd?.();
    spawnSync('ip', ['-6', 'addr', 'del', cidr, 'dev', lan]);
  };
}

/** radvd.conf for the LAN: the 6to4 /64, on-link and autonomous; this router as the LAN's default router. */
export function radvdConfig(lan: string, prefix: string, maxInterval: number): string {
  const min = Math.max(3, Math.floor(maxInterval / 3));
  return `# written by transit6 6to4 router
interface ${lan} {
  AdvSendAdvert on;
  MaxRtrAdvInterval ${maxInterval};
  MinRtrAdvInterval ${min};
  prefix ${prefix} {
    AdvOnLink on;
    AdvAutonomous on;
  };
};
`;
}
