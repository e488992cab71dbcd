/**
 * The Teredo lab: the topology of the Miredo reference study (shared/reference/miredo-lab-report.md §2), with our
 * namespace names and one addition, two clients behind one NAT (nat-lan).
 *
 *                    +------------------------------ inet (IPv4 + IPv6 router) ------------------------------+
 *                    | i-ts     i-relay     i-nat-prc  i-nat-sym  i-nat-fc  i-cli-pub  i-nat-prc2  i-nat-lan |
 *                    |  .14       .30         .14        .30        .46       .62        .78         .94     |
 *                    +--|----------|-----------|----------|----------|---------|----------|-----------|------+
 *   tserver eth0 198.51.100.1+.2/28 |     nat-prc wan0  nat-sym  nat-fc    cli-pub   nat-prc2    nat-lan wan0
 *        2001:db8:100::2/64         |     203.0.113.1   .17      .33       .49       .65         .81
 *                                   |       lan0 .1     lan0     lan0      (no NAT)  lan0        br0 192.168.5.1
 *          relay eth0 198.51.100.17/28    cli-prc     cli-sym  cli-fc              cli-prc2    cli-lan1 .10
 *               2001:db8:200::2/64        192.168.1.10 2.10     3.10                4.10        cli-lan2 .11
 *          relay eth1 2001:db8:1::1/64
 *                     |
 *          v6host eth0 2001:db8:1::10/64 (IPv6 only, default via the relay)
 *
 * inet routes 2001::/32 (the Teredo prefix) and 2001:db8:1::/64 to the relay (2001:db8:200::2). Public IPv4 uses
 * only 198.51.100.0/24 and 203.0.113.0/24 (/28 links); 192.0.2.0/24 is never used (the host's root namespace
 * has it). LANs are 192.168.1–5.0/24, inside the NAT namespaces only.
 */
import { ConfigError } from '../core/errors.js';
import { Lab, type LabOptions, type NatKind, type StaticUdpMapping } from './netns.js';

export type ClientName = 'cli-prc' | 'cli-sym' | 'cli-fc' | 'cli-pub' | 'cli-prc2' | 'cli-lan1' | 'cli-lan2';
export type NatName = 'nat-prc' | 'nat-sym' | 'nat-fc' | 'nat-prc2' | 'nat-lan';

export const ALL_CLIENTS: readonly ClientName[] = ['cli-prc', 'cli-sym', 'cli-fc', 'cli-pub', 'cli-prc2', 'cli-lan1', 'cli-lan2'];

/** Teredo UDP ports used by the lab's daemons (RFC 4380 §2.17 for the server; the relay's is the report's). */
export const TEREDO_SERVER_PORT = 3544;
export const LAB_RELAY_PORT = 3545;

export interface ServerInfo {
  ns: string;
  iface: string;
  /** Primary server address (ServerAddress) and the secondary, primary + 1 (RFC 4380 §5.2.1). */
  primary: string;
  secondary: string;
  prefixLen: number;
  gateway: string;
  /** Native IPv6: the server sends connectivity-test echoes natively (report §2). */
  ipv6: string;
  ipv6PrefixLen: number;
  gateway6: string;
}

export interface RelayInfo {
  ns: string;
  /** Towards inet: IPv4 and IPv6. */
  inetIface: string;
  ipv4: string;
  prefixLen: number;
  gateway: string;
  ipv6: string;
  gateway6: string;
  /** Towards v6host. */
  lanIface: string;
  lanIpv6: string;
  lanPrefix: string;
}

export interface V6HostInfo {
  ns: string;
  iface: string;
  ipv6: string;
  ipv6PrefixLen: number;
  gateway6: string;
}

export interface NatInfo {
  name: NatName;
  ns: string;
  kind: Exclude<NatKind, 'none'>;
  wan: string;
  lan: string;
  publicAddr: string;
  publicPrefixLen: number;
  gateway: string;
  lanAddr: string;
  lanNet: string;
  clients: ClientName[];
  udpPortRange?: [number, number];
  staticUdp?: StaticUdpMapping;
}

export interface ClientInfo {
  name: ClientName;
  ns: string;
  iface: string;
  addr: string;
  prefixLen: number;
  gateway: string;
  /** The NAT in front of it, or null (cli-pub). */
  nat: NatName | null;
  natKind: NatKind;
  /** The IPv4 address the Internet sees. */
  publicAddr: string;
  /** The local UDP port a Teredo client must bind here (cli-fc: the static mapping's LAN port). */
  bindPort?: number;
}

export interface InetInfo {
  ns: string;
  /** Interface name → addresses on inet's side of each link. */
  ifaces: Record<string, string[]>;
}

/** What was built: enough to start daemons and aim probes. Plain data (JSON-safe). */
export interface TeredoTopology {
  prefix: string;
  runDir: string;
  namespaces: string[];
  inet: InetInfo;
  server: ServerInfo;
  relay: RelayInfo;
  v6host: V6HostInfo;
  nats: NatInfo[];
  clients: ClientInfo[];
}

export interface TeredoLab {
  lab: Lab;
  topology: TeredoTopology;
}

export interface TeredoTopologyOptions extends LabOptions {
  /** Which clients to build (with their NATs); default ALL_CLIENTS. [] builds inet, tserver, relay, v6host only. */
  clients?: readonly ClientName[];
  /** nf_conntrack_udp_timeout for every NAT namespace (the kernel default is 30 s, as in the report). */
  natUdpTimeout?: number;
  /** Called after each build step ('namespaces', 'links', 'addresses', 'nat:nat-prc', …, 'done'); a throw aborts
   *  the build, which then tears down everything it made. For tests and progress output. */
  onStep?: (step: string) => void | Promise<void>;
  /** Commands in flight at once; default 6. */
  concurrency?: number;
  /** Every link splits GSO packets before they cross (Lab.link segmentGso), for captures that must see each
   *  datagram as its own frame. Default false (the daemons' UDP GSO messages cross veth links whole). */
  segmentGso?: boolean;
}

interface SiteClient {
  name: ClientName;
  addr: string;
  bindPort?: number;
  /** nat-lan's bridge port for this client. */
  port?: string;
}

interface SiteDef {
  inetIf: string;
  inetAddr: string;
  /** The NAT's WAN address, or cli-pub's own address. */
  wanAddr: string;
  nat?: {
    name: NatName;
    kind: Exclude<NatKind, 'none'>;
    lanAddr: string;
    lanNet: string;
    bridge?: string;
    udpPortRange?: [number, number];
    staticUdp?: StaticUdpMapping;
  };
  clients: SiteClient[];
}

const PUB_PREFIX_LEN = 28;
const LAN_PREFIX_LEN = 24;

/** The report's addresses (§2), plus nat-lan at 203.0.113.80/28. */
const SITES: readonly SiteDef[] = [
  {
    inetIf: 'i-nat-prc', inetAddr: '203.0.113.14', wanAddr: '203.0.113.1',
    nat: { name: 'nat-prc', kind: 'port-restricted', lanAddr: '192.168.1.1', lanNet: '192.168.1.0/24', udpPortRange: [20000, 29999] },
    clients: [{ name: 'cli-prc', addr: '192.168.1.10' }],
  },
  {
    inetIf: 'i-nat-sym', inetAddr: '203.0.113.30', wanAddr: '203.0.113.17',
    nat: { name: 'nat-sym', kind: 'symmetric', lanAddr: '192.168.2.1', lanNet: '192.168.2.0/24' },
    clients: [{ name: 'cli-sym', addr: '192.168.2.10' }],
  },
  {
    inetIf: 'i-nat-fc', inetAddr: '203.0.113.46', wanAddr: '203.0.113.33',
    nat: {
      name: 'nat-fc', kind: 'full-cone', lanAddr: '192.168.3.1', lanNet: '192.168.3.0/24',
      staticUdp: { lanAddr: '192.168.3.10', lanPort: 3550, publicPort: 45454 },
    },
    clients: [{ name: 'cli-fc', addr: '192.168.3.10', bindPort: 3550 }],
  },
  { inetIf: 'i-cli-pub', inetAddr: '203.0.113.62', wanAddr: '203.0.113.49', clients: [{ name: 'cli-pub', addr: '203.0.113.49' }] },
  {
    inetIf: 'i-nat-prc2', inetAddr: '203.0.113.78', wanAddr: '203.0.113.65',
    nat: { name: 'nat-prc2', kind: 'port-restricted', lanAddr: '192.168.4.1', lanNet: '192.168.4.0/24', udpPortRange: [20000, 29999] },
    clients: [{ name: 'cli-prc2', addr: '192.168.4.10' }],
  },
  {
    inetIf: 'i-nat-lan', inetAddr: '203.0.113.94', wanAddr: '203.0.113.81',
    nat: {
      name: 'nat-lan', kind: 'port-restricted', lanAddr: '192.168.5.1', lanNet: '192.168.5.0/24', bridge: 'br0',
      udpPortRange: [20000, 29999],
    },
    clients: [
      { name: 'cli-lan1', addr: '192.168.5.10', port: 'lan1' },
      { name: 'cli-lan2', addr: '192.168.5.11', port: 'lan2' },
    ],
  },
];

const CORE = {
  server: { primary: '198.51.100.1', secondary: '198.51.100.2', inet: '198.51.100.14', ipv6: '2001:db8:100::2', inet6: '2001:db8:100::1' },
  relay: { ipv4: '198.51.100.17', inet: '198.51.100.30', ipv6: '2001:db8:200::2', inet6: '2001:db8:200::1', lan6: '2001:db8:1::1' },
  v6host: { ipv6: '2001:db8:1::10' },
  teredoPrefix: '2001::/32',
  v6hostPrefix: '2001:db8:1::/64',
} as const;

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure after all started ones end. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure;
}

/** Describes the topology for a set of clients without building anything. */
export function describeTeredoTopology(prefix: string, runDir: string, clients: readonly ClientName[] = ALL_CLIENTS): TeredoTopology {
  for (const c of clients) if (!ALL_CLIENTS.includes(c)) throw new ConfigError(`unknown client '${c}' (one of ${ALL_CLIENTS.join(', ')})`);
  const full = (n: string): string => `${prefix}${n}`;
  const nats: NatInfo[] = [];
  const cls: ClientInfo[] = [];
  const inetIfaces: Record<string, string[]> = {
    'i-ts': [`${CORE.server.inet}/${PUB_PREFIX_LEN}`, `${CORE.server.inet6}/64`],
    'i-relay': [`${CORE.relay.inet}/${PUB_PREFIX_LEN}`, `${CORE.relay.inet6}/64`],
  };
  for (const site of SITES) {
    const chosen = site.clients.filter((c) => clients.includes(c.name));
    if (chosen.length === 0) continue;
    inetIfaces[site.inetIf] = [`${site.inetAddr}/${PUB_PREFIX_LEN}`];
    if (site.nat) {
      const n = site.nat;
      nats.push({
        name: n.name, ns: full(n.name), kind: n.kind, wan: 'wan0', lan: n.bridge ?? 'lan0',
        publicAddr: site.wanAddr, publicPrefixLen: PUB_PREFIX_LEN, gateway: site.inetAddr,
        lanAddr: n.lanAddr, lanNet: n.lanNet, clients: chosen.map((c) => c.name),
        ...(n.udpPortRange ? { udpPortRange: n.udpPortRange } : {}),
        ...(n.staticUdp ? { staticUdp: n.staticUdp } : {}),
      });
    }
    for (const c of chosen) {
      cls.push({
        name: c.name, ns: full(c.name), iface: 'eth0', addr: c.addr,
        prefixLen: site.nat ? LAN_PREFIX_LEN : PUB_PREFIX_LEN,
        gateway: site.nat ? site.nat.lanAddr : site.inetAddr,
        nat: site.nat ? site.nat.name : null, natKind: site.nat ? site.nat.kind : 'none',
        publicAddr: site.wanAddr,
        ...(c.bindPort !== undefined ? { bindPort: c.bindPort } : {}),
      });
    }
  }
  const names = ['inet', 'tserver', 'relay', 'v6host', ...nats.flatMap((n) => [n.name, ...n.clients])];
  for (const c of cls) if (!names.includes(c.name)) names.push(c.name);
  return {
    prefix,
    runDir,
    namespaces: names.map(full),
    inet: { ns: full('inet'), ifaces: inetIfaces },
    server: {
      ns: full('tserver'), iface: 'eth0', primary: CORE.server.primary, secondary: CORE.server.secondary,
      prefixLen: PUB_PREFIX_LEN, gateway: CORE.server.inet, ipv6: CORE.server.ipv6, ipv6PrefixLen: 64, gateway6: CORE.server.inet6,
    },
    relay: {
      ns: full('relay'), inetIface: 'eth0', ipv4: CORE.relay.ipv4, prefixLen: PUB_PREFIX_LEN, gateway: CORE.relay.inet,
      ipv6: CORE.relay.ipv6, gateway6: CORE.relay.inet6, lanIface: 'eth1', lanIpv6: CORE.relay.lan6, lanPrefix: CORE.v6hostPrefix,
    },
    v6host: { ns: full('v6host'), iface: 'eth0', ipv6: CORE.v6host.ipv6, ipv6PrefixLen: 64, gateway6: CORE.relay.lan6 },
    nats,
    clients: cls,
  };
}

export function topologyClient(t: TeredoTopology, name: ClientName): ClientInfo {
  const c = t.clients.find((x) => x.name === name);
  if (!c) throw new ConfigError(`client '${name}' is not in this topology (built: ${t.clients.map((x) => x.name).join(', ') || 'none'})`);
  return c;
}

export function topologyNat(t: TeredoTopology, name: NatName): NatInfo {
  const n = t.nats.find((x) => x.name === name);
  if (!n) throw new ConfigError(`NAT '${name}' is not in this topology`);
  return n;
}

/** Builds the Teredo lab. On any failure everything built so far is torn down and the error is rethrown. */
export async function buildTeredoTopology(opts: TeredoTopologyOptions = {}): Promise<TeredoLab> {
  const lab = new Lab(opts);
  try {
    const topology = describeTeredoTopology(lab.prefix, lab.runDir, opts.clients ?? ALL_CLIENTS);
    await build(lab, topology, opts);
    return { lab, topology };
  } catch (e) {
    await lab.destroy().catch((d: unknown) => {
      // The build error is the one to report; the teardown trouble is attached to it.
      if (e instanceof Error) e.message += `\n  (and teardown failed: ${d instanceof Error ? d.message : String(d)})`;
    });
    throw e;
  }
}

async function build(lab: Lab, t: TeredoTopology, opts: TeredoTopologyOptions): Promise<void> {
  const limit = opts.concurrency ?? 6;
  const step = async (name: string): Promise<void> => {
    if (opts.onStep) await opts.onStep(name);
  };
  const short = (full: string): string => full.slice(lab.prefix.length);

  // 1. Namespaces. The first alone: `ip netns add` sets up the /run/netns mount on first use.
  const [first, ...rest] = t.namespaces.map(short);
  await lab.addNamespace(first!);
  await pool(rest, limit, async (n) => {
    await lab.addNamespace(n);
  });
  await step('namespaces');

  // 2. Links, each veth pair made from inside the first namespace named.
  const links: [string, string, string, string][] = [
    ['inet', 'i-ts', 'tserver', t.server.iface],
    ['inet', 'i-relay', 'relay', t.relay.inetIface],
    ['relay', t.relay.lanIface, 'v6host', t.v6host.iface],
  ];
  const bridges: { ns: string; bridge: string; ports: string[] }[] = [];
  for (const site of SITES) {
    const chosen = site.clients.filter((c) => t.clients.some((x) => x.name === c.name));
    if (chosen.length === 0) continue;
    if (!site.nat) {
      for (const c of chosen) links.push(['inet', site.inetIf, c.name, 'eth0']);
      continue;
    }
    links.push(['inet', site.inetIf, site.nat.name, 'wan0']);
    if (site.nat.bridge) {
      for (const c of chosen) links.push([site.nat.name, c.port!, c.name, 'eth0']);
      bridges.push({ ns: site.nat.name, bridge: site.nat.bridge, ports: chosen.map((c) => c.port!) });
    } else {
      for (const c of chosen) links.push([site.nat.name, 'lan0', c.name, 'eth0']);
    }
  }
  await pool(links, limit, async ([a, ia, b, ib]) => lab.link(a, ia, b, ib, { segmentGso: opts.segmentGso === true }));
  for (const br of bridges) await lab.addBridge(br.ns, br.bridge, br.ports);
  await step('links');

  // 3. Addresses, routes and forwarding, one namespace per task.
  const tasks: (() => Promise<void>)[] = [];
  tasks.push(async () => {
    for (const [ifname, addrs] of Object.entries(t.inet.ifaces)) for (const a of addrs) await lab.addAddress('inet', ifname, a);
    await lab.setForwarding('inet', { ipv4: true, ipv6: true });
    // The advertised route for the Teredo prefix, and the native network behind the relay.
    await lab.addRoute('inet', CORE.teredoPrefix, t.relay.ipv6);
    await lab.addRoute('inet', CORE.v6hostPrefix, t.relay.ipv6);
  });
  tasks.push(async () => {
    const s = t.server;
    await lab.addAddress('tserver', s.iface, `${s.primary}/${s.prefixLen}`);
    await lab.addAddress('tserver', s.iface, `${s.secondary}/${s.prefixLen}`);
    await lab.addAddress('tserver', s.iface, `${s.ipv6}/${s.ipv6PrefixLen}`);
    await lab.addRoute('tserver', 'default', s.gateway);
    await lab.addRoute('tserver', 'default', s.gateway6);
  });
  tasks.push(async () => {
    const r = t.relay;
    await lab.addAddress('relay', r.inetIface, `${r.ipv4}/${r.prefixLen}`);
    await lab.addAddress('relay', r.inetIface, `${r.ipv6}/64`);
    await lab.addAddress('relay', r.lanIface, `${r.lanIpv6}/64`);
    await lab.setForwarding('relay', { ipv6: true });
    await lab.addRoute('relay', 'default', r.gateway);
    await lab.addRoute('relay', 'default', r.gateway6);
  });
  tasks.push(async () => {
    const v = t.v6host;
    await lab.addAddress('v6host', v.iface, `${v.ipv6}/${v.ipv6PrefixLen}`);
    await lab.addRoute('v6host', 'default', v.gateway6);
  });
  for (const n of t.nats) {
    tasks.push(async () => {
      await lab.addAddress(n.name, n.wan, `${n.publicAddr}/${n.publicPrefixLen}`);
      await lab.addAddress(n.name, n.lan, `${n.lanAddr}/${LAN_PREFIX_LEN}`);
      await lab.addRoute(n.name, 'default', n.gateway);
    });
  }
  for (const c of t.clients) {
    tasks.push(async () => {
      await lab.addAddress(c.name, c.iface, `${c.addr}/${c.prefixLen}`);
      await lab.addRoute(c.name, 'default', c.gateway);
    });
  }
  await pool(tasks, limit, (task) => task());
  await step('addresses');

  // 4. NAT rules and conntrack timeouts.
  for (const n of t.nats) {
    await lab.nat(n.name, n.kind, {
      wan: n.wan,
      lan: n.lan,
      publicAddr: n.publicAddr,
      ...(n.udpPortRange ? { udpPortRange: n.udpPortRange } : {}),
      ...(n.staticUdp ? { staticUdp: n.staticUdp } : {}),
    });
    if (opts.natUdpTimeout !== undefined) await lab.setConntrackUdpTimeout(n.name, opts.natUdpTimeout);
    await step(`nat:${n.name}`);
  }
  await step('done');
}
