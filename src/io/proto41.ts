/**
 * The protocol-41 adapter: runs an IPv6-in-IPv4 core (ISATAP host or router, 6to4 host/router/relay) on real time
 * with a TUN device and raw IPv4 sockets, the way driver.ts runs the Teredo cores. The kernels we run on have no
 * sit driver (CONFIG_IPV6_SIT unset), so the data plane is ours, in user space:
 *
 *   receive  a raw IPv4 socket for protocol 41 (the kernel hands it every protocol-41 packet addressed to this
 *            host, IPv4 header included), drained in batches of up to 64 per native call (recvmmsg);
 *   send     an IPPROTO_RAW socket (header included), so that the outer source is the one the core picks (6to4
 *            with several public addresses; ISATAP hosts whose address must match their interface identifier);
 *   tunnel   the TUN device: packets the kernel routes into it go to the core, the core's deliveries are written to it.
 *
 * Also here: the name resolution ISATAP hosts need (hosts file, then DNS with the search domains), interface setup
 * through `ip`, the control socket, and the local IPv4 address discovery.
 */
import { execFile, spawn } from 'node:child_process';
import { CoreTimer } from './coretimer.js';
import { Resolver } from 'node:dns/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Counters } from '../core/counters.js';
import type { TunnelAction, TunnelCore, TunnelRoute } from '../isatap/tunnel.js';
import { formatIpv4, formatIpv6, parseIpv4, type Ipv4 } from '../wire/ip.js';
import { emitIpv4Header, IPV4_MIN_HEADER, PROTO_IPV6 } from '../wire/ipv4.js';
import { controlDir, ControlServer } from './control.js';
import type { Logger } from './log.js';
import { metricsText, serveMetrics, type TunnelDir, type TunnelMetricsInput } from './metrics.js';
import { errnoName, loadNative, type NativeBinding, type PollHandle } from './native.js';
import { PcapCapture } from './pcapfile.js';
import { TunDevice } from './tun.js';
import { packageVersion } from './version.js';

/** What `show state` says about the data plane. */
export const DATA_PLANE = 'user space (raw protocol 41)';

/** The control socket of a tunnel daemon of this network namespace: isatap-host.sock, isatap-router.sock, 6to4.sock. */
export function tunnelControlPath(name: string): string {
  return join(controlDir(), `${name}.sock`);
}

// ---------------------------------------------------------------------------------------------------------------
// Name resolution: hosts file, then DNS with the search domains (RFC 5214 §8.3.2: the PRL from the name "isatap")

export interface ResolverFiles {
  hostsFile?: string;
  resolvConf?: string;
}

/** IPv4 addresses a hosts file gives `name` (case-insensitive, aliases included), in file order. */
export function hostsLookup(text: string, name: string): Ipv4[] {
  const out: Ipv4[] = [];
  const want = name.toLowerCase().replace(/\.$/, '');
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [addr, ...names] = line.split(/\s+/);
    const a = parseIpv4(addr!);
    if (a === undefined) continue;
    if (names.some((n) => n.toLowerCase().replace(/\.$/, '') === want) && !out.includes(a)) out.push(a);
  }
  return out;
}

/** The search list of resolv.conf (`search` or `domain`; the last one wins, as in glibc), and its name servers
 *  (unlike glibc, a nameserver may carry a port, 127.0.0.1:5353, for test servers). */
export function parseResolvConf(text: string): { search: string[]; nameservers: string[]; ndots: number } {
  let search: string[] = [];
  const nameservers: string[] = [];
  let ndots = 1;
  for (const raw of text.split('\n')) {
    const words = raw.replace(/[#;].*/, '').trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    if (words[0] === 'search' || words[0] === 'domain') search = words.slice(1);
    else if (words[0] === 'nameserver' && words[1]) nameservers.push(words[1]);
    else if (words[0] === 'options') {
      for (const o of words.slice(1)) {
        const m = /^ndots:(\d+)$/.exec(o);
        if (m) ndots = Math.min(15, Number(m[1]));
      }
    }
  }
  return { search, nameservers, ndots };
}

/** The names to try for `name`, in resolver order: as is first if it has ndots dots, then with each search domain. */
export function candidateNames(name: string, search: string[], ndots: number): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)];
  const dots = name.split('.').length - 1;
  const withSearch = search.map((d) => `${name}.${d.replace(/\.$/, '')}`);
  return dots >= ndots ? [name, ...withSearch] : [...withSearch, name];
}

/** hosts file first (the name and the name with each search domain), then DNS A records in resolver order. */
export async function resolveIpv4Name(name: string, files: ResolverFiles = {}): Promise<Ipv4[]> {
  const literal = parseIpv4(name);
  if (literal !== undefined) return [literal];
  let conf = { search: [] as string[], nameservers: [] as string[], ndots: 1 };
  try {
    conf = parseResolvConf(readFileSync(files.resolvConf ?? '/etc/resolv.conf', 'utf8'));
  } catch {
    // No resolv.conf: no search list, the system's default servers.
  }
  const names = candidateNames(name, conf.search, conf.ndots);
  let hosts = '';
  try {
    hosts = readFileSync(files.hostsFile ?? '/etc/hosts', 'utf8');
  } catch {
    // No hosts file.
  }
  for (const n of names) {
    const found = hostsLookup(hosts, n);
    if (found.length > 0) return found;
  }
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (files.resolvConf && conf.nameservers.length > 0) resolver.setServers(conf.nameservers);
  let last: Error | undefined;
  for (const n of names) {
    try {
      const addrs = (await resolver.resolve4(n)).map((a) => parseIpv4(a)).filter((a): a is Ipv4 => a !== undefined);
      if (addrs.length > 0) return addrs;
    } catch (e) {
      last = e as Error;
    }
  }
  throw new Error(`${name}: not in the hosts file, and DNS has no A record for ${names.join(', ')}${last ? ` (${(last as NodeJS.ErrnoException).code ?? last.message})` : ''}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Local IPv4 addresses

export { sourceAddressTowards } from './localaddr.js';

/** Every IPv4 address on this host's interfaces except loopback, in interface order. */
export function localIpv4Addresses(): Ipv4[] {
  const out: Ipv4[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family !== 'IPv4' || a.internal) continue;
      const v = parseIpv4(a.address);
      if (v !== undefined && !out.includes(v)) out.push(v);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Interface set-up

export type IfaceUp = Extract<TunnelAction, { kind: 'iface-up' }>;

const routeText = (r: TunnelRoute): string => `${formatIpv6(r.prefix)}/${r.prefixLength}${r.via ? ` via ${formatIpv6(r.via)}` : ''}`;

function ip(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, out, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(out);
    });
  });
}

/**
 * Brings the tunnel interface to exactly the configuration asked for: link up with the MTU; addresses added
 * (without DAD: there are no neighbours to ask on a point-to-multipoint tunnel) and the global ones no longer asked
 * for removed, so that unchanged addresses are never taken away; our routes (proto static) replaced as a set.
 */
export async function applyTunnelIface(dev: string, a: IfaceUp): Promise<void> {
  await ip(['link', 'set', 'dev', dev, 'up', 'mtu', String(a.mtu)]);
  const want = new Set(a.addresses.map((x) => `${formatIpv6(x.address)}/${x.prefixLength}`));
  const current = JSON.parse((await ip(['-j', '-6', 'addr', 'show', 'dev', dev])) || '[]') as { addr_info?: { local: string; prefixlen: number; scope: string }[] }[];
  for (const info of current[0]?.addr_info ?? []) {
    const text = `${info.local}/${info.prefixlen}`;
    if (info.scope === 'global' && !want.has(text)) await ip(['-6', 'addr', 'del', text, 'dev', dev]);
  }
  for (const x of want) await ip(['-6', 'addr', 'replace', x, 'dev', dev, 'nodad']);
  await ip(['-6', 'route', 'flush', 'dev', dev, 'proto', 'static']).catch(() => undefined);
  for (const r of a.routes) {
    const args = ['-6', 'route', 'replace', `${formatIpv6(r.prefix)}/${r.prefixLength}`];
    if (r.via) args.push('via', formatIpv6(r.via));
    args.push('dev', dev, 'proto', 'static');
    if (r.metric !== undefined) args.push('metric', String(r.metric));
    await ip(args);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The driver

export interface TunnelDriverOptions {
  tun: TunDevice;
  /** Carries out interface changes in order; default: applyTunnelIface on the TUN device. */
  iface?: (a: IfaceUp) => Promise<void>;
  resolver?: ResolverFiles;
  log: Logger;
  /** Every packet in and out, for captures: outer IPv4 packets ('ipv4-in'/'ipv4-out') and tunnel packets. */
  tap?: (dir: TunnelDir, data: Uint8Array) => void;
  /** Each state change, one line ("up: ...", "no router: ..."): systemd's STATUS= (sd_notify). */
  onStatus?: (text: string) => void;
}

export type StartableCore = TunnelCore & { start(now: number): void };

const RX_SLOT = 2048;
const RX_BATCH = 64;
const RX_BATCHES_PER_WAKE = 16;

export class TunnelDriver {
  readonly counters = new Counters();
  private readonly native: NativeBinding;
  private readonly rxFd: number;
  private readonly txFd: number;
  private rxPoll: PollHandle | undefined;
  private readonly arena = new Uint8Array(RX_SLOT * RX_BATCH);
  private readonly lengths = new Uint32Array(RX_BATCH);
  private readonly rxStats = new Uint32Array(1);
  private readonly txBuf = new Uint8Array(IPV4_MIN_HEADER + 65535);
  private readonly timer = new CoreTimer(() => {
    this.core.handleTimeout(this.now());
    this.drain();
  });
  private ifaceChain: Promise<void> = Promise.resolve();
  private ifacePending = 0;
  private ifaceLast: 'up' | 'failed' | undefined;
  private stopped = false;
  private readonly started = performance.now();

  constructor(
    readonly core: StartableCore,
    private readonly opts: TunnelDriverOptions,
  ) {
    this.native = loadNative();
    this.rxFd = this.native.rawOpen(4, PROTO_IPV6);
    try {
      this.txFd = this.native.rawOpen(4, 255);
    } catch (e) {
      this.native.close(this.rxFd);
      throw e;
    }
    opts.tun.onPackets((arena, lengths, count, slotSize) => {
      const now = this.now();
      for (let i = 0; i < count; i++) {
        const packet = arena.subarray(i * slotSize, i * slotSize + lengths[i]!);
        opts.tap?.('tun-in', packet);
        this.core.handleIpv6(now, packet);
      }
      this.drain();
    });
    opts.tun.onError((e) => opts.log.warn(e.message));
  }

  now(): number {
    return performance.now() - this.started;
  }

  start(): void {
    this.rxPoll = this.native.pollStart(this.rxFd, 'r', (status) => this.onReadable(status));
    this.core.start(this.now());
    this.drain();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.timer.clear();
    if (this.rxPoll) this.native.pollStop(this.rxPoll);
    this.rxPoll = undefined;
    this.native.close(this.rxFd);
    this.native.close(this.txFd);
  }

  ifaceStatus(): 'up' | 'pending' | 'down' | 'failed' {
    if (this.ifacePending > 0) return 'pending';
    return this.ifaceLast ?? 'down';
  }

  ifaceIdle(): Promise<void> {
    return this.ifaceChain;
  }

  private onReadable(status: number): void {
    if (this.stopped) return;
    if (status < 0) {
      this.counters.inc(`rx-poll:${errnoName(-status)}`);
      return;
    }
    const { native, rxFd, arena, lengths, rxStats } = this;
    for (let b = 0; b < RX_BATCHES_PER_WAKE; b++) {
      const n = native.rawRecvBatch(rxFd, arena, RX_SLOT, RX_BATCH, lengths, null, rxStats);
      if (rxStats[0] !== 0) {
        this.counters.inc('rx-truncated', rxStats[0]!);
        rxStats[0] = 0;
      }
      if (n <= 0) {
        if (n < 0 && n !== -11) this.counters.inc(`rx:${errnoName(-n)}`);
        break;
      }
      this.counters.inc('rx-packets', n);
      this.counters.inc('rx-batches');
      const now = this.now();
      for (let i = 0; i < n; i++) {
        const packet = arena.subarray(i * RX_SLOT, i * RX_SLOT + lengths[i]!);
        this.opts.tap?.('ipv4-in', packet);
        this.core.handleIpv4(now, packet);
      }
      // Deliveries borrow the arena: carry them out before the next batch overwrites it.
      this.drain();
      if (n < RX_BATCH) break;
    }
  }

  /** Carries out every action, then re-arms the one timer the core asks for. */
  private drain(): void {
    if (this.stopped) return;
    for (let a = this.core.poll(); a; a = this.core.poll()) this.perform(a);
    this.timer.set(this.core.pollTimeout(), this.now());
  }

  private perform(a: TunnelAction): void {
    switch (a.kind) {
      case 'ipv4-send': {
        const len = a.packet.length;
        if (len > 65535 - IPV4_MIN_HEADER) {
          this.counters.inc('tx-too-long');
          return;
        }
        // RFC 4213 §3.2/§3.3: a static 1280-byte tunnel MTU, DF clear; TTL 64.
        emitIpv4Header({ src: a.src, dst: a.dst, protocol: PROTO_IPV6, payloadLength: len, ttl: 64 }, this.txBuf, 0);
        this.txBuf.set(a.packet, IPV4_MIN_HEADER);
        const total = IPV4_MIN_HEADER + len;
        this.opts.tap?.('ipv4-out', this.txBuf.subarray(0, total));
        const r = this.native.rawSend(this.txFd, this.txBuf, 0, total, a.dst);
        if (r < 0) this.counters.inc(`tx:${errnoName(-r)}`);
        else this.counters.inc('tx-packets');
        return;
      }
      case 'ipv6-deliver':
        this.opts.tap?.('tun-out', a.packet);
        this.opts.tun.write(a.packet);
        return;
      case 'iface-up': {
        const run = this.opts.iface ?? ((x: IfaceUp) => applyTunnelIface(this.opts.tun.name, x));
        this.ifacePending++;
        this.ifaceChain = this.ifaceChain.then(() =>
          run(a).then(
            () => {
              this.ifacePending--;
              this.ifaceLast = 'up';
              this.opts.log.info('interface configured', { interface: this.opts.tun.name, addresses: a.addresses.map((x) => `${formatIpv6(x.address)}/${x.prefixLength}`), routes: a.routes.map(routeText) });
            },
            (e: unknown) => {
              this.ifacePending--;
              this.ifaceLast = 'failed';
              this.counters.inc('iface-errors');
              this.opts.log.warn((e as Error).message);
            },
          ),
        );
        return;
      }
      case 'resolve': {
        const name = a.name;
        resolveIpv4Name(name, this.opts.resolver).then(
          (addrs) => {
            if (this.stopped) return;
            this.opts.log.info(`${name} resolved`, { addresses: addrs.map(formatIpv4) });
            this.core.handleResolved(this.now(), name, addrs);
            this.drain();
          },
          (e: unknown) => {
            if (this.stopped) return;
            this.opts.log.warn(`cannot resolve ${name}: ${(e as Error).message}`);
            this.core.handleResolved(this.now(), name, undefined, (e as Error).message);
            this.drain();
          },
        );
        return;
      }
      case 'state-changed':
        this.opts.log.info(`${a.state}: ${a.reason}`, { state: a.state, reason: a.reason, ...(a.detail ? { detail: a.detail } : {}) });
        this.opts.onStatus?.(`${a.state}: ${a.reason}`);
        return;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The daemon around it

export interface TunnelDaemonOptions {
  /** Control socket name (isatap-host, isatap-router, 6to4) unless `controlPath` says otherwise. */
  name: string;
  controlPath?: string;
  interfaceName?: string;
  core: StartableCore;
  log: Logger;
  resolver?: ResolverFiles;
  /** Turn IPv6 forwarding on (routers and relays). */
  forwarding?: boolean;
  /** Runs once the interface exists (LAN set-up, an advertisement daemon); returns its cleanup. */
  afterStart?: (ifname: string) => Promise<(() => Promise<void> | void) | undefined>;
  /** Extra fields for `show state`. */
  extraState?: () => Record<string, unknown>;
  /** --metrics: the Prometheus endpoint. */
  metrics?: { host: string; port: number };
  /** --pcap: BASE-ipv4.pcap (the protocol-41 packets) and BASE-tun.pcap (the IPv6 packets). */
  pcap?: string;
  /** Each state change of the core, one line (for systemd's STATUS=). */
  onStatus?: (text: string) => void;
}

const TUNNEL_DIRS: readonly TunnelDir[] = ['ipv4-in', 'ipv4-out', 'tun-in', 'tun-out'];

/** Packets and bytes each way for the metrics, and the --pcap files when asked: the TunnelDriver's tap. */
class TunnelTap {
  private readonly packets = [0, 0, 0, 0];
  private readonly bytes = [0, 0, 0, 0];
  capture: PcapCapture | undefined;
  private readonly origin = performance.timeOrigin;

  readonly tap = (dir: TunnelDir, data: Uint8Array): void => {
    const i = dir === 'ipv4-in' ? 0 : dir === 'ipv4-out' ? 1 : dir === 'tun-in' ? 2 : 3;
    this.packets[i]!++;
    this.bytes[i]! += data.length;
    const c = this.capture;
    if (c) (i < 2 ? c.outer : c.tun).add(this.origin + performance.now(), data);
  };

  counts(): Record<TunnelDir, { packets: number; bytes: number }> {
    const out = {} as Record<TunnelDir, { packets: number; bytes: number }>;
    TUNNEL_DIRS.forEach((d, i) => (out[d] = { packets: this.packets[i]!, bytes: this.bytes[i]! }));
    return out;
  }
}

export interface TunnelDaemonHandle {
  driver: TunnelDriver;
  interfaceName: string;
  controlPath: string;
  stop(reason: string): Promise<void>;
}

export async function startTunnelDaemon(o: TunnelDaemonOptions): Promise<TunnelDaemonHandle> {
  const cleanups: (() => void | Promise<void>)[] = [];
  const runCleanups = async (): Promise<void> => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        o.log.warn(`cleanup: ${(e as Error).message}`);
      }
    }
    cleanups.length = 0;
  };
  try {
    const tun = TunDevice.open(o.interfaceName ?? 'tun%d');
    cleanups.push(() => tun.close());
    if (o.forwarding) {
      const sysctl = '/proc/sys/net/ipv6/conf/all/forwarding';
      const before = readFileSync(sysctl, 'utf8').trim();
      if (before !== '1') {
        writeFileSync(sysctl, '1\n');
        o.log.info('IPv6 forwarding on (net.ipv6.conf.all.forwarding=1); set back to 0 at exit');
        cleanups.push(() => writeFileSync(sysctl, `${before}\n`));
      }
    }
    const tap = new TunnelTap();
    if (o.pcap) {
      const capture = new PcapCapture(o.pcap, { outer: 'ipv4', onError: (e) => o.log.warn(e.message) });
      tap.capture = capture;
      cleanups.push(() => {
        tap.capture = undefined;
        capture.close();
      });
      o.log.info(`capturing to ${capture.outer.path} and ${capture.tun.path}`, { pcapIpv4: capture.outer.path, pcapTun: capture.tun.path });
    }
    const driver = new TunnelDriver(o.core, { tun, log: o.log, tap: tap.tap, ...(o.resolver ? { resolver: o.resolver } : {}), ...(o.onStatus ? { onStatus: o.onStatus } : {}) });
    cleanups.push(() => driver.stop());
    const controlPath = o.controlPath ?? tunnelControlPath(o.name);
    const handler = (cmd: string): Record<string, unknown> => {
      const now = driver.now();
      switch (cmd) {
        case 'state':
          return {
            ...o.core.status(now),
            ...(o.extraState?.() ?? {}),
            dataPlane: DATA_PLANE,
            interfaceName: tun.name,
            interfaceStatus: driver.ifaceStatus(),
            pid: process.pid,
            uptimeMs: Math.round(now),
          };
        case 'stats':
          return { events: o.core.events.snapshot(), drops: o.core.drops.snapshot(), io: { ...driver.counters.snapshot(), ...prefixed('tun', tun.counters()) } };
        default:
          throw new Error(`unknown command '${cmd}' (state, stats)`);
      }
    };
    const control = new ControlServer(controlPath, ({ cmd }) => handler(cmd), { daemon: `transit6 ${o.name.replace(/^isatap-/, 'isatap ')}` });
    await control.listen();
    cleanups.push(() => control.close());
    if (o.metrics) {
      const version = packageVersion();
      const metrics = await serveMetrics(o.metrics, () => {
        const state = handler('state');
        return metricsText({ role: state.role as TunnelMetricsInput['role'], version, state, stats: handler('stats') as TunnelMetricsInput['stats'], traffic: tap.counts() });
      }, o.log);
      cleanups.push(() => metrics.close());
    }
    driver.start();
    if (o.afterStart) {
      await driver.ifaceIdle();
      const c = await o.afterStart(tun.name);
      if (c) cleanups.push(c);
    }
    o.log.info(`started ${o.name}`, { interface: tun.name, control: controlPath, dataPlane: DATA_PLANE });
    let stopping: Promise<void> | undefined;
    return {
      driver,
      interfaceName: tun.name,
      controlPath,
      stop: (reason) => {
        stopping ??= (async () => {
          o.log.info(`stopping: ${reason}`);
          await driver.ifaceIdle();
          await runCleanups();
        })();
        return stopping;
      },
    };
  } catch (e) {
    await runCleanups();
    throw e;
  }
}

function prefixed(prefix: string, o: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) out[`${prefix}.${k}`] = v;
  return out;
}

/**
 * Runs radvd with `config` in the foreground (-n, logging to stderr, which goes to our log) until the returned
 * cleanup stops it. The configuration and pid file live beside the control socket: <name>-radvd.conf/.pid.
 */
export function spawnRadvd(config: string, name: string, log: Logger): () => Promise<void> {
  const dir = controlDir();
  const conf = join(dir, `${name}-radvd.conf`);
  writeFileSync(conf, config);
  const child = spawn('radvd', ['-n', '-m', 'stderr', '-C', conf, '-p', join(dir, `${name}-radvd.pid`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.on('error', (e) => log.warn(`radvd: ${e.message}`));
  child.stderr.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (line.trim()) log.info(`radvd: ${line.trim()}`);
  });
  child.on('exit', (code, sig) => log.info(`radvd exited (${sig ?? code})`));
  log.info('radvd started', { pid: child.pid ?? null, config: conf });
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
  };
}
