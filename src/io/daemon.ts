/**
 * The Teredo daemons: a core, the driver, real sockets and a tunnel, the control socket, a pid file, signals.
 * Setup happens as root (tunnel, sockets, raw socket, control socket); then the daemon can switch to an
 * unprivileged user, keeping a small privileged helper for interface changes, as Miredo's privproc does.
 */
import { createSocket } from 'node:dgram';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import type { Rng } from '../core/rng.js';
import { resolveDaemonConfig, resolveIpv4, resolveServerAddresses, type ClientDaemonConfig, type DaemonConfig, type RelayDaemonConfig, type ServerDaemonConfig } from '../config/daemon.js';
import { TeredoClient } from '../teredo/client.js';
import { TeredoRelay } from '../teredo/relay.js';
import { TeredoServer } from '../teredo/server.js';
import { formatIpv4, parseIpv4, type Ipv4, type Ipv4Port } from '../wire/ip.js';
import {
  clientPeersJson,
  clientStateJson,
  clientStatsJson,
  ControlServer,
  relayPeersJson,
  relayStateJson,
  relayStatsJson,
  serverStateJson,
  serverStatsJson,
} from './control.js';
import { Driver, type IfaceAction } from './driver.js';
import { applyIfaceCommand, toIfaceCommand } from './iface.js';
import { loadNative } from './native.js';
import { PrivilegedHelper } from './privclient.js';
import { sourceAddressTowards } from './localaddr.js';
import { TunDevice } from './tun.js';
import { ClientFastPath, RelayFastPath } from '../teredo/fastpath.js';
import { ServerFastPath } from '../teredo/serverfast.js';
import { attachServerFastPath } from './serverpath.js';
import { UdpBatchSocket, type UdpBatchOptions } from './udp.js';
import { createLogger, type Logger } from './log.js';
import { metricsText, serveMetrics } from './metrics.js';
import { PcapCapture } from './pcapfile.js';
import { logStateChange, stateChangeLine } from './statelog.js';
import { TapHub } from './tap.js';
import { EventFeed, tapStream } from './tapstream.js';
import { packageVersion } from './version.js';
import type { StateJson, StatsJson } from './control.js';
import type { StateAction } from './driver.js';

/** What every role's start function gets from startDaemon: the packet tap and where state changes go. */
interface Hooks {
  /** The packet tap (metrics, pcap, trace --live); a fast path only counts while it is idle. */
  hub: TapHub;
  onState: (a: StateAction, ctx: { address?: Uint8Array; server?: string }) => void;
}

/**
 * The OS CSPRNG behind the cores' Rng interface, drawn 4 KiB at a time: a relay takes 4 random bytes per bubble,
 * and one randomFillSync call per bubble was a fifth of its CPU while filling its peer table.
 */
export class CryptoRng implements Rng {
  private readonly bytes = new Uint8Array(4096);
  private readonly words = new Uint32Array(this.bytes.buffer);
  private used = this.bytes.length;

  private refill(): void {
    randomFillSync(this.bytes);
    this.used = 0;
  }

  u32(): number {
    this.used = (this.used + 3) & ~3;
    if (this.used + 4 > this.bytes.length) this.refill();
    const v = this.words[this.used >> 2]!;
    this.used += 4;
    return v;
  }

  fill(b: Uint8Array): void {
    if (b.length > 256) {
      randomFillSync(b);
      return;
    }
    if (this.used + b.length > this.bytes.length) this.refill();
    b.set(this.bytes.subarray(this.used, this.used + b.length));
    this.used += b.length; // never handed out twice: `used` only moves forward until the next refill
  }
}

export interface DaemonHandle {
  config: DaemonConfig;
  stop(reason: string): Promise<void>;
  driver: Driver;
  /**
   * Reload without privileges: a new core with the new settings takes over the open tunnel and sockets. Settings
   * that need them reopened (interface, bind address and port, server addresses of a server, control socket,
   * pid file, user) refuse the reload with a reason.
   */
  reloadInPlace(flags: Record<string, string | boolean | undefined>, configFile: string | undefined): Promise<void>;
  /** Resolves, with the reason, when the daemon cannot go on: its tunnel interface was removed under it. */
  failed: Promise<string>;
}

type Started = {
  driver: Driver;
  /** The local IPv4 address the daemon's datagrams leave from (for capture files when bound to 0.0.0.0). */
  localAddr: Ipv4;
  handler: (cmd: string, args: Record<string, unknown> | undefined) => unknown;
  replaceCore: (next: DaemonConfig) => Promise<void>;
};

/** The settings a reload in place cannot change. */
function fixedPart(c: DaemonConfig): string {
  const base = { role: c.role, control: c.controlSocket, pid: c.pidFile, user: c.user, metrics: c.metrics, pcap: c.pcap };
  if (c.role === 'client') return JSON.stringify({ ...base, bind: c.bind, iface: c.interfaceName });
  if (c.role === 'relay') return JSON.stringify({ ...base, bind: c.bind, iface: c.interfaceName, mtu: c.mtu });
  return JSON.stringify({ ...base, primary: c.primary, secondary: c.secondary, port: c.core.port, probe: c.core.probePort });
}

function ipv4Or(addr: string | number): Ipv4 {
  return typeof addr === 'number' ? addr : parseIpv4(addr)!;
}

/** Opens the tunnel; without a name the kernel picks tunN, as Miredo does. */
/**
 * Socket buffers of the service sockets: 4 MiB each way (forced while still root). The kernel default (~208 KiB)
 * holds only ~250 small datagrams: a burst of 1 000 RS, or a TCP window of Teredo packets, overflowed it.
 */
const DATA_SOCKET = { rcvbuf: 4 << 20, sndbuf: 4 << 20 } as const;

/**
 * The tunnel's transmit queue: packets the kernel holds for our reader while the event loop is busy elsewhere. The
 * TUN default (500) overflowed in the lab at ~100k pps of 64-byte UDP whenever the client was descheduled for a few
 * milliseconds (tx dropped on the interface; bench/where-loss.ts); 2000 absorbed it. TCP is not held longer by it:
 * TCP small queues bound what one socket keeps below it.
 */
const TUN_TX_QUEUE_LEN = 2000;

/**
 * A client's or relay's data socket; with offload, UDP GSO for runs of same-size datagrams to one peer, and UDP GRO:
 * such runs (the peer's GSO messages, or datagrams the NIC's GRO coalesced) arrive as one message, split back into
 * the datagrams in the receive batch, so the kernel queues and wakes once for the run instead of once a datagram.
 */
function dataSocket(offload: boolean): UdpBatchOptions {
  return offloadEnabled(offload) ? { ...DATA_SOCKET, gsoSegments: 64, gro: true } : DATA_SOCKET;
}

/** The allocation-free data path (teredo/fastpath.ts); TRANSIT6_NO_FASTPATH=1 leaves every packet to the core. */
function fastPathEnabled(): boolean {
  return process.env.TRANSIT6_NO_FASTPATH !== '1';
}

/** What `show state` says of the data path of a client or relay. */
function describeDataPath(tun: TunDevice, socket: UdpBatchSocket, offload: boolean): string {
  const parts = [fastPathEnabled() ? 'fast path' : 'cores only (TRANSIT6_NO_FASTPATH=1)'];
  if (offloadEnabled(offload)) {
    parts.push(`GRO into the tunnel (${tun.uso ? 'TCP and UDP' : 'TCP; UDP needs Linux 6.2'}), UDP GSO${socket.gro ? ' and GRO' : ''}`);
  } else parts.push('offloads off');
  return parts.join('; ');
}

/** Offload (io/gro.ts) from the configuration, or TRANSIT6_OFFLOAD=1/0 (the benchmark's switch) over it. */
function offloadEnabled(configured: boolean): boolean {
  const env = process.env.TRANSIT6_OFFLOAD;
  if (env === '1') return true;
  if (env === '0') return false;
  return configured;
}

function openTun(name: string | undefined, offload = false): TunDevice {
  return TunDevice.open(name ?? 'tun%d', { offload: offloadEnabled(offload) });
}

export interface StartOptions {
  /** A one-line status after each state change (the CLI passes it to systemd as STATUS=). */
  onStatus?: (status: string) => void;
}

export async function startDaemon(
  role: 'client' | 'relay' | 'server',
  configFile: string | undefined,
  flags: Record<string, string | boolean | undefined>,
  log: Logger = createLogger(role),
  opts: StartOptions = {},
): Promise<DaemonHandle> {
  const config = resolveDaemonConfig(role, configFile, flags);
  if (config.logLevel) log.setLevel(config.logLevel);
  for (const w of config.warnings) log.warn(w);
  const hub = new TapHub();
  const events = new EventFeed();
  const hooks: Hooks = {
    hub,
    onState: (a, ctx) => {
      logStateChange(log, a, ctx);
      const line = stateChangeLine(a, ctx);
      events.emit({ ...line.fields, msg: line.msg });
      opts.onStatus?.(line.msg);
    },
  };
  const rng = new CryptoRng();
  const cleanups: (() => void | Promise<void>)[] = [];
  // Miredo runs unprivileged once set up; so do we, as nobody unless told otherwise (User root keeps root).
  const user = config.user ?? (process.getuid?.() === 0 ? 'nobody' : undefined);
  const dropTo = user && user !== 'root' && process.getuid?.() === 0 ? user : undefined;
  // A client keeps a root helper for interface changes (relays and servers never change theirs). It starts first,
  // so that its own start-up is over by the time qualification asks for the Teredo address.
  let helper: PrivilegedHelper | undefined;
  if (config.role === 'client' && dropTo !== undefined) helper = PrivilegedHelper.take();
  else await PrivilegedHelper.discard();
  let ifaceName: string | undefined;
  let fail: (reason: string) => void = () => undefined;
  const failed = new Promise<string>((resolve) => (fail = resolve));
  // The kernel reports a TUN device deleted under us (ip link del) as an error on its fd: nothing more can be read
  // or written, so the daemon stops cleanly instead of lingering without its interface.
  const onTunError = (e: Error): void => fail(`the tunnel interface ${ifaceName ?? ''} is gone (${e.message})`);
  try {
    let driver: Driver;
    let handler: (cmd: string, args: Record<string, unknown> | undefined) => unknown;
    let replaceCore: Started['replaceCore'];
    let localAddr: Ipv4;
    const ifaceRun = async (a: IfaceAction): Promise<void> => {
      const cmd = toIfaceCommand(ifaceName!, a);
      if (helper) await helper.run(cmd);
      else await applyIfaceCommand(cmd);
    };
    if (config.role === 'client') {
      ({ driver, handler, replaceCore, localAddr } = await startClient(config, rng, log, hooks, ifaceRun, (n) => (ifaceName = n), cleanups, onTunError));
    } else if (config.role === 'relay') {
      ({ driver, handler, replaceCore, localAddr } = await startRelay(config, rng, log, hooks, (n) => (ifaceName = n), cleanups, onTunError));
    } else {
      ({ driver, handler, replaceCore, localAddr } = await startServer(config, log, hooks, cleanups));
    }
    const control = new ControlServer(
      config.controlSocket,
      (req) => (req.cmd === 'tap' ? tapStream(hub, events, { role, state: handler('state', undefined) }, req.args) : handler(req.cmd, req.args)),
      { role },
    );
    await control.listen();
    cleanups.push(() => control.close());
    // Capture files and the metrics port are opened while still privileged.
    if (config.pcap) {
      const capture = new PcapCapture(config.pcap, { localAddr, onError: (e) => log.warn(e.message) });
      const stopTap = hub.add(capture.sink, { replay: true });
      cleanups.push(() => {
        stopTap();
        capture.close();
      });
      log.info(`capturing to ${capture.outer.path} and ${capture.tun.path}`, { pcapUdp: capture.outer.path, pcapTun: capture.tun.path });
    }
    if (config.metrics) {
      const version = packageVersion();
      const metrics = await serveMetrics(config.metrics, () =>
        metricsText({ role, version, state: handler('state', undefined) as StateJson, stats: handler('stats', undefined) as StatsJson, traffic: hub.counts() }),
      log);
      cleanups.push(() => metrics.close());
    }
    if (config.pidFile) {
      writeFileSync(config.pidFile, `${process.pid}\n`);
      const pidFile = config.pidFile;
      cleanups.push(() => {
        try {
          unlinkSync(pidFile);
        } catch {
          // Already gone, or no longer ours to remove after dropping privileges.
        }
      });
    }
    if (dropTo !== undefined) {
      // The helper's first line names our interface, written while we are still root: whatever this process does
      // once unprivileged, the helper touches that interface only. Its answer is not awaited (its start-up may
      // still be under way); a refusal fails the interface changes that follow, which are logged.
      if (helper) {
        if (ifaceName) helper.bind(ifaceName).catch((e: Error) => log.warn(`privileged helper: ${e.message}`));
        else {
          await helper.close();
          helper = undefined;
        }
      }
      dropPrivileges(dropTo);
      log.info(`running as ${dropTo}`, { user: dropTo });
    }
    driver.start();
    log.info(`started ${role}`, { interface: ifaceName ?? null, control: config.controlSocket });
    let stopping: Promise<void> | undefined;
    const stop = (reason: string): Promise<void> => {
      stopping ??= (async () => {
        log.info(`stopping: ${reason}`);
        driver.stop();
        await driver.ifaceIdle();
        for (const c of cleanups.reverse()) await c();
        if (helper) await helper.close();
      })();
      return stopping;
    };
    let current: DaemonConfig = config;
    const reloadInPlace = async (newFlags: Record<string, string | boolean | undefined>, newFile: string | undefined): Promise<void> => {
      const next = resolveDaemonConfig(role, newFile, newFlags);
      if (fixedPart(next) !== fixedPart(current)) throw new Error('the new configuration changes the interface, sockets, control socket, pid file or user: restart the daemon');
      await replaceCore(next);
      if (next.logLevel !== current.logLevel) log.setLevel(next.logLevel ?? 'info');
      current = next;
    };
    return { config, stop, driver, reloadInPlace, failed };
  } catch (e) {
    for (const c of cleanups.reverse()) await c();
    if (helper) await helper.close();
    throw e;
  }
}

/** The user's uid and primary gid from /etc/passwd, else from `id` (users known only through NSS). */
function userIds(user: string): { uid: number; gid: number } {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === user && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // No readable /etc/passwd: ask id.
  }
  const id = (flag: '-u' | '-g'): number => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function dropPrivileges(user: string): void {
  const { uid, gid } = userIds(user);
  process.setgroups?.([gid]);
  process.setgid!(gid);
  process.setuid!(uid);
}

async function startClient(
  initial: ClientDaemonConfig,
  rng: Rng,
  log: Logger,
  hooks: Hooks,
  ifaceRun: (a: IfaceAction) => Promise<void>,
  setIface: (n: string) => void,
  cleanups: (() => void | Promise<void>)[],
  onTunError?: (e: Error) => void,
): Promise<Started> {
  let config = initial;
  const { primary, secondary } = await resolveServerAddresses(config);
  const bindAddr = await resolveIpv4(config.bind.address, 'BindAddress');
  const socket = UdpBatchSocket.bind(formatIpv4(bindAddr), config.bind.port, dataSocket(config.offload));
  cleanups.push(() => socket.close());
  const localAddr = bindAddr !== 0 ? bindAddr : await sourceAddressTowards(primary);
  const local: Ipv4Port = { addr: localAddr, port: socket.port };
  const tun = openTun(config.interfaceName, config.offload);
  if (onTunError) tun.onError(onTunError);
  cleanups.push(() => tun.close());
  setIface(tun.name);
  // The link comes up at once with its link-local address; the Teredo address follows qualification.
  await applyIfaceCommand({ op: 'link', iface: tun.name, mtu: 1280, txQueueLen: TUN_TX_QUEUE_LEN, addresses: [{ address: 'fe80::ffff:ffff:ffff', prefixLength: 64 }] });
  let client = new TeredoClient({ ...config.core, server: primary, server2: secondary, local }, rng);
  const fast = (c: TeredoClient): ClientFastPath | undefined => (fastPathEnabled() ? new ClientFastPath(c) : undefined);
  const driver = new Driver(client, {
    sockets: [{ local: { addr: bindAddr, port: socket.port }, socket }],
    tun,
    fastPath: fast(client),
    iface: ifaceRun,
    tap: hooks.hub,
    onState: (a) => {
      const address = client.status().teredoAddress;
      hooks.onState(a, { ...(address ? { address } : {}), server: formatServerName(config) });
    },
    onError: (e) => log.warn(e.message),
  });
  // Local discovery (RFC 4380 §5.2.8): bubbles to 224.0.0.253:3544 are heard on a socket joined to the group.
  if (config.core.localDiscovery !== false) {
    const d = createSocket({ type: 'udp4', reuseAddr: true });
    d.on('error', (e) => log.warn(`local discovery off: ${e.message}`));
    d.on('message', (msg, rinfo) => {
      const from = { addr: ipv4Or(rinfo.address), port: rinfo.port };
      if (from.addr === local.addr && from.port === local.port) return; // our own announcement
      driver.feedDatagram(from, { addr: 0xe00000fd, port: 3544 }, msg);
    });
    d.bind(3544, () => {
      try {
        d.addMembership('224.0.0.253', formatIpv4(localAddr));
      } catch (e) {
        log.warn(`local discovery off: ${(e as Error).message}`);
      }
    });
    cleanups.push(() => new Promise<void>((r) => d.close(() => r())));
  }
  const handler = (cmd: string, args: Record<string, unknown> | undefined): unknown => {
    const now = driver.now();
    switch (cmd) {
      case 'state':
        return clientStateJson(client.status(), { now, startedAt: 0, interfaceName: tun.name, dataPath: describeDataPath(tun, socket, config.offload), pid: process.pid, clientPort: config.bind.port, serverName: formatServerName(config), interfaceStatus: driver.ifaceStatus() });
      case 'peers':
        return clientPeersJson(client.peerTable(), now, args);
      case 'stats':
        return clientStatsJson(client, { io: { ...socket.counters(), ...prefixed('tun', tun.counters()), ...prefixed('driver', driver.counters.snapshot()) } });
      default:
        throw new Error(`unknown command '${cmd}' (state, peers, stats)`);
    }
  };
  const replaceCore = async (next: DaemonConfig): Promise<void> => {
    if (next.role !== 'client') return;
    const servers = await resolveServerAddresses(next);
    // The new core takes over the socket, so the NAT mapping with the permissions the old core's probes opened:
    // it learns those and the old detection, lest it re-detect on a warm mapping (see TeredoClient).
    client = new TeredoClient({ ...next.core, server: servers.primary, server2: servers.secondary, local }, rng, client.handover());
    config = next;
    driver.replaceEndpoint(client, fast(client));
  };
  return { driver, handler, replaceCore, localAddr };
}

async function startRelay(
  initial: RelayDaemonConfig,
  rng: Rng,
  log: Logger,
  hooks: Hooks,
  setIface: (n: string) => void,
  cleanups: (() => void | Promise<void>)[],
  onTunError?: (e: Error) => void,
): Promise<Started> {
  let config = initial;
  const bindAddr = await resolveIpv4(config.bind.address, 'BindAddress');
  const socket = UdpBatchSocket.bind(formatIpv4(bindAddr), config.bind.port, dataSocket(config.offload));
  cleanups.push(() => socket.close());
  const tun = openTun(config.interfaceName, config.offload);
  if (onTunError) tun.onError(onTunError);
  cleanups.push(() => tun.close());
  setIface(tun.name);
  // The relay's tunnel carries 2001::/32 (Miredo: fe80::ffff:ffff:ffff/64 and 2001::/32 dev teredo, metric 1024).
  await applyIfaceCommand({
    op: 'link',
    iface: tun.name,
    mtu: config.mtu,
    txQueueLen: TUN_TX_QUEUE_LEN,
    addresses: [{ address: 'fe80::ffff:ffff:ffff', prefixLength: 64 }],
    routes: [{ prefix: '2001::', prefixLength: 32, metric: 1024 }],
  });
  const local = { addr: bindAddr, port: socket.port };
  let relay = new TeredoRelay({ ...config.core, local }, rng);
  const fast = (r: TeredoRelay): RelayFastPath | undefined => (fastPathEnabled() ? new RelayFastPath(r) : undefined);
  const driver = new Driver(relay, {
    sockets: [{ local, socket }],
    tun,
    // Towards native IPv6: back into the kernel, which routes it out of the native interface (batched writes).
    forward: (p) => tun.enqueue(p, 0, p.length),
    forwardAt: (b, o, n) => tun.enqueue(b, o, n),
    fastPath: fast(relay),
    tap: hooks.hub,
    onState: (a) => hooks.onState(a, {}),
    onError: (e) => log.warn(e.message),
  });
  const handler = (cmd: string, args: Record<string, unknown> | undefined): unknown => {
    const now = driver.now();
    switch (cmd) {
      case 'state':
        return relayStateJson(relay.peers, {
          now,
          startedAt: 0,
          interfaceName: tun.name,
          dataPath: describeDataPath(tun, socket, config.offload),
          pid: process.pid,
          relayType: config.relayType,
          mode: config.core.mode ?? 'relay',
          directBubbles: config.core.directBubbles ?? false,
          local,
          prefix: config.prefix,
          mtu: config.mtu,
          hostAddresses: config.core.hostAddresses ?? [],
        });
      case 'peers':
        return relayPeersJson(relay.peers, now, args);
      case 'stats':
        return relayStatsJson(relay.stats(), { io: { ...socket.counters(), ...prefixed('tun', tun.counters()), ...prefixed('driver', driver.counters.snapshot()) } });
      default:
        throw new Error(`unknown command '${cmd}' (state, peers, stats)`);
    }
  };
  const replaceCore = async (next: DaemonConfig): Promise<void> => {
    if (next.role !== 'relay') return;
    relay = new TeredoRelay({ ...next.core, local }, rng);
    config = next;
    driver.replaceEndpoint(relay, fast(relay));
  };
  return { driver, handler, replaceCore, localAddr: bindAddr };
}

async function startServer(
  config: ServerDaemonConfig,
  log: Logger,
  hooks: Hooks,
  cleanups: (() => void | Promise<void>)[],
): Promise<Started> {
  const { primary, secondary } = await resolveServerAddresses(config);
  // The per-source rate-limit tables are keyed with a secret, so that nobody can pick sources that share a slot.
  const rateLimitKey = randomFillSync(new Uint8Array(16));
  let core = { ...config.core, primary, secondary, rateLimitKey };
  let server = new TeredoServer(core);
  const sockets = server.localEndpoints().map((local) => {
    const socket = UdpBatchSocket.bind(formatIpv4(local.addr), local.port, DATA_SOCKET);
    cleanups.push(() => socket.close());
    return { local, socket };
  });
  // Clients' connectivity tests leave natively through a raw IPv6 socket (as miredo-server does).
  const native = loadNative();
  let rawFd: number | undefined;
  try {
    rawFd = native.rawOpen(6, 255);
    const fd = rawFd;
    cleanups.push(() => native.close(fd));
  } catch (e) {
    log.warn(`no raw IPv6 socket (${(e as Error).message}): connectivity tests will not be forwarded`);
  }
  const driver = new Driver(server, {
    sockets,
    ...(rawFd !== undefined ? { forward: (p: Uint8Array) => void native.rawSend(rawFd!, p, 0, p.length, null) } : {}),
    tap: hooks.hub,
    onState: (a) => hooks.onState(a, {}),
    onError: (e) => log.warn(e.message),
  });
  // Router Solicitations on the Teredo port are answered by the fast path (TRANSIT6_NO_FASTPATH=1: all by the core).
  const socketAt = (addr: Ipv4): UdpBatchSocket => sockets.find((s) => s.local.addr === addr && s.local.port === server.addresses.port)!.socket;
  const fast = (s: TeredoServer): ServerFastPath | undefined => (fastPathEnabled() ? new ServerFastPath(s, socketAt(primary), socketAt(secondary)) : undefined);
  let fastPath = fast(server);
  if (fastPath) attachServerFastPath(driver, sockets, server.addresses.port, hooks.hub, () => fastPath);
  const handler = (cmd: string, _args: Record<string, unknown> | undefined): unknown => {
    const now = driver.now();
    switch (cmd) {
      case 'state':
        return serverStateJson(core, server.stats(), { now, startedAt: 0, pid: process.pid, dataPath: fastPathEnabled() ? 'fast path (router solicitations answered from the receive batch)' : 'cores only (TRANSIT6_NO_FASTPATH=1)' });
      case 'peers':
        return { role: 'server', total: 0, shown: 0, peers: [] };
      case 'stats':
        return serverStatsJson(server.stats(), { io: Object.assign({}, ...sockets.map((s) => prefixed(`${formatIpv4(s.local.addr)}:${s.local.port}`, s.socket.counters()))) });
      default:
        throw new Error(`unknown command '${cmd}' (state, peers, stats)`);
    }
  };
  const replaceCore = async (next: DaemonConfig): Promise<void> => {
    if (next.role !== 'server') return;
    core = { ...next.core, primary, secondary, rateLimitKey };
    server = new TeredoServer(core);
    driver.replaceEndpoint(server);
    fastPath = fast(server);
  };
  return { driver, handler, replaceCore, localAddr: primary };
}

function formatServerName(config: ClientDaemonConfig): string {
  const h = config.server.value;
  return h.kind === 'ipv4' ? formatIpv4(h.addr) : h.name;
}

function prefixed(prefix: string, o: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) out[`${prefix}.${k}`] = v;
  return out;
}
