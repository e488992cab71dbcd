/**
 * The PortProxy data path: one node:net server per rule, and for each accepted client a second TCP connection to
 * the rule's target in the target's family (white paper, "PortProxy": "the PortProxy computer establishes a
 * separate TCP connection with the IPv6-only node").
 *
 * - Half-close: both sockets are allowHalfOpen and piped with end propagation, so a FIN from one side becomes a
 *   FIN towards the other while the other direction keeps flowing (what `shutdown(SHUT_WR)` clients expect).
 *   A reset or error on one side resets the other.
 * - Backpressure: stream piping pauses the reading side while the writing side's buffer is above its high-water
 *   mark, so a slow reader makes the proxy stop reading (and TCP flow control then stops the sender): memory per
 *   connection stays bounded by the two streams' buffers.
 * - Live apply: apply(rules) opens listeners for new rules, closes listeners of deleted rules (their connections
 *   finish on their own) and swaps the rule of changed ones in place: established connections keep their
 *   target, new ones get the new one.
 * - Per rule: connection limit (over it a client is reset at once), idle timeout (no bytes either way), source
 *   ACL, PROXY protocol v1/v2 header towards the backend, names resolved in the target's family only.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { lookup as dnsLookup } from 'node:dns/promises';
import { Counters } from '../../core/counters.js';
import type { Logger } from '../log.js';
import {
  Acl,
  bindAddress,
  canonicalAddress,
  connectFamily,
  describeListen,
  diffRules,
  formatRuleLine,
  listenFamily,
  ruleKey,
  type Family,
  type Rule,
} from '../../portproxy/rules.js';
import { proxyV1, proxyV2 } from '../../portproxy/proxyheader.js';

export type Resolver = (host: string, family: Family) => Promise<string>;

export const defaultResolver: Resolver = async (host, family) => (await dnsLookup(host, { family, verbatim: true })).address;

export interface PortProxyOptions {
  log: Logger;
  resolve?: Resolver;
  /** Give up connecting to a target after this long (the client is then reset). Default 10 s. */
  connectTimeoutMs?: number;
  /** Listeners that could not be bound are tried again this often. Default 5 s; 0 = never. */
  retryMs?: number;
}

export type ListenerStatus = 'listening' | 'binding' | 'failed' | 'draining';

export type ProxyCounter =
  | 'accepted'
  | 'rejected-acl'
  | 'rejected-limit'
  | 'resolve-failed'
  | 'connect-failed'
  | 'connect-timeout'
  | 'idle-timeout'
  | 'reset'
  | 'closed'
  | 'bytes-to-target'
  | 'bytes-to-client';

interface Conn {
  client: Socket;
  upstream: Socket | undefined;
  /** The rule as it was when the client was accepted: a later change does not move this connection. */
  rule: Rule;
  open: number;
}

class Listener {
  server: Server | undefined;
  status: ListenerStatus = 'binding';
  error: string | undefined;
  acl: Acl;
  readonly conns = new Set<Conn>();
  readonly counters = new Counters<ProxyCounter>();

  constructor(public rule: Rule) {
    this.acl = new Acl(rule.acl, listenFamily(rule.mode));
  }

  get key(): string {
    return ruleKey(this.rule);
  }

  setRule(r: Rule): void {
    this.rule = r;
    this.acl = new Acl(r.acl, listenFamily(r.mode));
  }
}

export interface ListenerStats {
  rule: string;
  mode: Rule['mode'];
  listen: string;
  target: string;
  status: ListenerStatus;
  error?: string;
  /** Where it actually listens (the bound port; useful with listenport given as a service name). */
  bound?: { address: string; port: number };
  active: number;
  /** Bytes sitting in the proxy's stream buffers for this rule's connections (both directions). */
  bufferedBytes: number;
  /** Bytes the open connections have carried so far (the counters add a connection's bytes when it closes). */
  openBytes: { toTarget: number; toClient: number };
  counters: Record<string, number>;
}

export interface ApplyReport {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: number;
  failed: { rule: string; error: string }[];
}

export class PortProxy {
  private readonly listeners = new Map<string, Listener>();
  /** Listeners of deleted rules whose connections are still open. */
  private readonly draining = new Set<Listener>();
  private readonly resolve: Resolver;
  private readonly connectTimeoutMs: number;
  private readonly log: Logger;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  readonly startedAt = new Date();

  constructor(opts: PortProxyOptions) {
    this.log = opts.log;
    this.resolve = opts.resolve ?? defaultResolver;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const retryMs = opts.retryMs ?? 5000;
    if (retryMs > 0) {
      this.retryTimer = setInterval(() => void this.retryFailed(), retryMs);
      this.retryTimer.unref();
    }
  }

  /** The rules in force. */
  rules(): Rule[] {
    return [...this.listeners.values()].map((l) => l.rule);
  }

  /** Brings the listeners in line with `rules` without touching established connections. */
  async apply(rules: readonly Rule[]): Promise<ApplyReport> {
    if (this.closed) throw new Error('portproxy is closed');
    const d = diffRules(this.rules(), rules);
    const report: ApplyReport = { added: [], removed: [], changed: [], unchanged: d.unchanged.length, failed: [] };
    // Removed first, so that a replacement on the same port can bind.
    for (const r of d.removed) {
      const l = this.listeners.get(ruleKey(r))!;
      this.listeners.delete(l.key);
      this.stopListening(l);
      report.removed.push(formatRuleLine(r));
      this.log.info('rule removed: listener closed, open connections finish on their own', { rule: formatRuleLine(r), open: l.conns.size });
      if (l.conns.size > 0) {
        l.status = 'draining';
        this.draining.add(l);
      }
    }
    for (const { from, to } of d.changed) {
      const l = this.listeners.get(ruleKey(from))!;
      l.setRule(to);
      report.changed.push(formatRuleLine(to));
      this.log.info('rule changed: new connections use it, open ones keep their target', { from: formatRuleLine(from), to: formatRuleLine(to), open: l.conns.size });
    }
    const binds: Promise<void>[] = [];
    for (const r of d.added) {
      const l = new Listener(r);
      this.listeners.set(l.key, l);
      report.added.push(formatRuleLine(r));
      binds.push(this.listen(l));
    }
    // A changed rule whose listener had failed (say its address was missing) gets another try now.
    for (const { to } of d.changed) {
      const l = this.listeners.get(ruleKey(to))!;
      if (l.status === 'failed') binds.push(this.listen(l));
    }
    await Promise.all(binds);
    for (const l of this.listeners.values()) {
      if (l.status === 'failed') report.failed.push({ rule: formatRuleLine(l.rule), error: l.error ?? 'unknown' });
    }
    return report;
  }

  private async listen(l: Listener): Promise<void> {
    l.status = 'binding';
    const fam = listenFamily(l.rule.mode);
    let host = bindAddress(l.rule);
    try {
      if (canonicalAddress(host, fam) === undefined) host = await this.resolve(host, fam);
    } catch (e) {
      this.bindFailed(l, `cannot resolve listenaddress ${l.rule.listenAddress} as IPv${fam}: ${(e as Error).message}`);
      return;
    }
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    server.on('connection', (s) => this.onConnection(l, s));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // ipv6Only: a '*' IPv6 listener takes IPv6 clients only; IPv4 clients belong to v4to* rules.
        server.listen({ host, port: l.rule.listenPort, ipv6Only: fam === 6, backlog: 1024 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      server.close();
      this.bindFailed(l, `cannot listen on ${describeListen(l.rule)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return;
    }
    // The rule may have been removed while we were binding.
    if (this.closed || this.listeners.get(l.key) !== l) {
      server.close();
      return;
    }
    server.on('error', (e) => {
      // Accept errors (EMFILE, ENFILE): logged, the listener stays.
      this.log.warn('accept error', { rule: formatRuleLine(l.rule), error: (e as NodeJS.ErrnoException).code ?? e.message });
    });
    l.server = server;
    l.status = 'listening';
    l.error = undefined;
    this.log.info('listening', { rule: formatRuleLine(l.rule), address: host, port: l.rule.listenPort });
  }

  private bindFailed(l: Listener, error: string): void {
    l.status = 'failed';
    if (l.error !== error) this.log.error(error, { rule: formatRuleLine(l.rule) });
    l.error = error;
  }

  private async retryFailed(): Promise<void> {
    for (const l of this.listeners.values()) if (l.status === 'failed') await this.listen(l);
  }

  private stopListening(l: Listener): void {
    const s = l.server;
    l.server = undefined;
    if (s) s.close();
  }

  private onConnection(l: Listener, client: Socket): void {
    const rule = l.rule;
    client.on('error', () => undefined);
    const from = client.remoteAddress ?? '';
    if (!l.acl.allows(from)) {
      l.counters.inc('rejected-acl');
      this.log.debug('client refused by acl', { rule: formatRuleLine(rule), from });
      client.resetAndDestroy();
      return;
    }
    if (rule.limit > 0 && l.conns.size >= rule.limit) {
      l.counters.inc('rejected-limit');
      this.log.debug('client refused: connection limit reached', { rule: formatRuleLine(rule), from, limit: rule.limit });
      client.resetAndDestroy();
      return;
    }
    l.counters.inc('accepted');
    const conn: Conn = { client, upstream: undefined, rule, open: 1 };
    l.conns.add(conn);
    const done = (): void => {
      if (--conn.open > 0) return;
      l.conns.delete(conn);
      l.counters.inc('closed');
      l.counters.inc('bytes-to-target', client.bytesRead);
      l.counters.inc('bytes-to-client', conn.upstream?.bytesRead ?? 0);
      if (l.status === 'draining' && l.conns.size === 0) this.draining.delete(l);
    };
    client.once('close', () => {
      // Before the target answered: nothing to carry any more.
      if (conn.upstream && conn.upstream.connecting) conn.upstream.destroy();
      done();
    });
    void this.connectTarget(l, conn, from, done);
  }

  private async connectTarget(l: Listener, conn: Conn, from: string, done: () => void): Promise<void> {
    const { client, rule } = conn;
    const fam = connectFamily(rule.mode);
    let host = rule.connectAddress;
    if (canonicalAddress(host, fam) === undefined) {
      try {
        host = await this.resolve(host, fam);
      } catch (e) {
        l.counters.inc('resolve-failed');
        this.log.warn('cannot resolve connectaddress in the rule family', { rule: formatRuleLine(rule), family: fam, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
        client.resetAndDestroy();
        return;
      }
    }
    if (client.destroyed) return;
    const up = connect({ host, port: rule.connectPort, family: fam, allowHalfOpen: true, noDelay: true });
    conn.upstream = up;
    conn.open++;
    up.once('close', done);
    let connected = false;
    up.setTimeout(this.connectTimeoutMs);
    up.on('timeout', () => {
      if (connected) {
        l.counters.inc('idle-timeout');
        this.log.debug('idle timeout', { rule: formatRuleLine(rule), from });
      } else {
        l.counters.inc('connect-timeout');
        this.log.debug('connect timeout', { rule: formatRuleLine(rule), target: host });
      }
      up.destroy();
      client.destroy();
    });
    up.on('error', (e: NodeJS.ErrnoException) => {
      if (!connected) {
        l.counters.inc('connect-failed');
        this.log.debug('cannot connect to target', { rule: formatRuleLine(rule), target: `${host}:${rule.connectPort}`, error: e.code ?? e.message });
      } else {
        l.counters.inc('reset');
      }
      // A refused or reset target shows as a reset to the client, as the target would have.
      if (!client.destroyed) client.resetAndDestroy();
    });
    client.on('error', () => {
      l.counters.inc('reset');
      if (!up.destroyed) up.resetAndDestroy();
    });
    up.once('connect', () => {
      connected = true;
      const idleMs = rule.idleSeconds * 1000;
      up.setTimeout(idleMs);
      if (idleMs > 0) {
        client.setTimeout(idleMs);
        client.on('timeout', () => {
          // Every byte the proxy moves is a read on one socket and a write on the other, and both refresh the
          // timer: a timeout here means no traffic either way.
          l.counters.inc('idle-timeout');
          this.log.debug('idle timeout', { rule: formatRuleLine(rule), from });
          up.destroy();
          client.destroy();
        });
      }
      if (rule.proxyProtocol !== 'none') {
        const c = { sourceAddress: from, sourcePort: client.remotePort ?? 0, destAddress: client.localAddress ?? '', destPort: client.localPort ?? 0 };
        up.write(rule.proxyProtocol === 'v1' ? proxyV1(c) : proxyV2(c));
      }
      client.pipe(up);
      up.pipe(client);
    });
  }

  stats(): ListenerStats[] {
    const one = (l: Listener): ListenerStats => {
      let buffered = 0;
      const openBytes = { toTarget: 0, toClient: 0 };
      for (const c of l.conns) {
        buffered += c.client.writableLength + c.client.readableLength;
        openBytes.toTarget += c.client.bytesRead;
        if (c.upstream) {
          buffered += c.upstream.writableLength + c.upstream.readableLength;
          openBytes.toClient += c.upstream.bytesRead;
        }
      }
      const addr = l.server?.address();
      return {
        rule: formatRuleLine(l.rule),
        mode: l.rule.mode,
        listen: describeListen(l.rule).split(' ')[1]!,
        target: `${connectFamily(l.rule.mode) === 6 && l.rule.connectAddress.includes(':') ? `[${l.rule.connectAddress}]` : l.rule.connectAddress}:${l.rule.connectPort}`,
        status: l.status,
        ...(l.error ? { error: l.error } : {}),
        ...(addr && typeof addr === 'object' ? { bound: { address: addr.address, port: addr.port } } : {}),
        active: l.conns.size,
        bufferedBytes: buffered,
        openBytes,
        counters: l.counters.snapshot(),
      };
    };
    return [...[...this.listeners.values()].map(one), ...[...this.draining].map(one)];
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearInterval(this.retryTimer);
    const all = [...this.listeners.values(), ...this.draining];
    this.listeners.clear();
    this.draining.clear();
    const waits: Promise<void>[] = [];
    for (const l of all) {
      const s = l.server;
      l.server = undefined;
      if (s) waits.push(new Promise((r) => s.close(() => r())));
      for (const c of l.conns) {
        c.client.destroy();
        c.upstream?.destroy();
      }
    }
    await Promise.all(waits);
  }
}
