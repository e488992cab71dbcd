/**
 * `--metrics HOST:PORT`: the daemon's state and counters at http://HOST:PORT/metrics in the Prometheus text
 * exposition format 0.0.4 (one "# HELP" and "# TYPE" line per family, then its samples; label values escaped
 * as the format says: backslash, double quote and newline). Everything comes from what `teredo show state` and
 * `teredo show stats` already return (the cores' own counters, the sockets' and the tap's counts), read when
 * Prometheus scrapes; nothing is counted twice on the packet path.
 *
 * Families (all prefixed transit6_):
 *   info{role,version} 1; uptime_seconds; state{state} 1 for the current state, 0 for the others;
 *   nat_type{type} likewise (client); qualified (client, 0/1); peers; peers_trusted (relay); queue_bytes;
 *   drops_total{reason}; bubbles_total{kind}; router_solicitations_total; router_advertisements_total;
 *   qualifications_total, address_changes_total, server_lost_total (client); events_total{event} (the rest of the
 *   core's events); packets_total{side,direction} and bytes_total{side,direction} (side udp|tun, direction in|out);
 *   io_total{counter} (socket and tunnel statistics and errors by errno).
 *
 * The protocol-41 daemons (`transit6 isatap host|router`, `transit6 6to4 host|router|relay`), from their
 * `show state` and `show stats`: info, uptime_seconds, state{state}, interface_status{status}; isatap-host
 * routers (PRL entries), prefixes and default_router; isatap-router prefixes and solicitors;
 * router_solicitations_total and router_advertisements_total (ISATAP), drops_total{reason},
 * events_total{event}, packets_total{side,direction} and bytes_total{side,direction} (side ipv4: the protocol-41
 * packets, IPv4 header included; tun: the IPv6 packets), io_total{counter}.
 *
 * `transit6 portproxy run`: info, uptime_seconds, portproxy_rules, and per rule (labels mode, listen, target)
 * portproxy_listening, portproxy_connections_accepted_total, portproxy_connections_refused_total{reason},
 * portproxy_connections_active, portproxy_bytes_total{direction}, portproxy_buffered_bytes,
 * portproxy_errors_total{reason} and portproxy_idle_timeouts_total.
 */
import type { Server } from 'node:http';
import type { StateJson, StatsJson } from './control.js';
import type { Logger } from './log.js';
import type { ListenerStats } from './portproxy/proxy.js';
import type { TapDir } from './tap.js';

/** What a scrape renders: a Teredo daemon's, a protocol-41 daemon's or the port proxy's state and counters. */
export type MetricsInput = TeredoMetricsInput | TunnelMetricsInput | PortProxyMetricsInput;

export interface TeredoMetricsInput {
  role: 'client' | 'relay' | 'server';
  version: string;
  state: StateJson;
  stats: StatsJson;
  /** Packets and bytes by direction, from the tap. */
  traffic: Record<TapDir, { packets: number; bytes: number }>;
}

export const CLIENT_STATES = ['probe', 'qualified', 'offline', 'dormant'] as const;
export const NAT_TYPES = ['unknown', 'none', 'cone', 'restricted', 'port-restricted', 'symmetric'] as const;

export type TunnelDir = 'ipv4-in' | 'ipv4-out' | 'tun-in' | 'tun-out';

export interface TunnelMetricsInput {
  role: 'isatap-host' | 'isatap-router' | '6to4-host' | '6to4-router' | '6to4-relay';
  version: string;
  /** The daemon's `show state` answer. */
  state: Record<string, unknown>;
  /** Its `show stats` answer. */
  stats: { events: Record<string, number>; drops: Record<string, number>; io: Record<string, number> };
  /** Packets and bytes by direction: ipv4 (protocol-41 packets, IPv4 header included) and tun (IPv6 packets). */
  traffic: Record<TunnelDir, { packets: number; bytes: number }>;
}

export interface PortProxyMetricsInput {
  role: 'portproxy';
  version: string;
  uptimeMs: number;
  /** The daemon's `show --live` answer. */
  listeners: ListenerStats[];
}

type Labels = Record<string, string>;
type Sample = { labels?: Labels; value: number };
export type Family = { name: string; type: 'gauge' | 'counter'; help: string; samples: Sample[] };

const F = (name: string, type: Family['type'], help: string, samples: Sample[]): Family => ({ name: `transit6_${name}`, type, help, samples });

/** 1 for `current`, 0 for the other `known` values (and `current` added if it is new). */
const oneHot = (label: string, known: readonly string[], current: string): Sample[] =>
  [...new Set([...known, current])].map((v) => ({ labels: { [label]: v }, value: v === current ? 1 : 0 }));

/** Label values: backslash, double quote and line feed escaped (exposition format 0.0.4). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: backslash and line feed escaped. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export function renderFamilies(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = s.labels && Object.keys(s.labels).length > 0
        ? `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`
        : '';
      out.push(`${f.name}${labels} ${formatValue(s.value)}`);
    }
  }
  return `${out.join('\n')}\n`;
}

const BUBBLE_EVENTS: Record<string, string> = {
  'direct-bubbles-sent': 'direct-sent',
  'indirect-bubbles-sent': 'indirect-sent',
  'discovery-bubbles-sent': 'discovery-sent',
  'bubbles-received': 'received',
  'bubbles-forwarded': 'forwarded',
};
const DEDICATED = new Set(['router-solicitations', 'router-advertisements', 'qualifications', 'address-changes', 'server-lost', ...Object.keys(BUBBLE_EVENTS)]);

export function metricsText(m: MetricsInput): string {
  switch (m.role) {
    case 'portproxy':
      return renderFamilies(portProxyFamilies(m));
    case 'client':
    case 'relay':
    case 'server':
      return renderFamilies(teredoFamilies(m));
    default:
      return renderFamilies(tunnelFamilies(m));
  }
}

function teredoFamilies(m: TeredoMetricsInput): Family[] {
  const ev = m.stats.events;
  const families: Family[] = [
    F('info', 'gauge', 'The daemon: its role and version.', [{ labels: { role: m.role, version: m.version }, value: 1 }]),
  ];
  if (m.state.uptimeMs !== null) families.push(F('uptime_seconds', 'gauge', 'Seconds since the daemon started.', [{ value: m.state.uptimeMs / 1000 }]));
  const states: readonly string[] = m.role === 'client' ? CLIENT_STATES : ['online'];
  const current = m.state.state;
  families.push(F('state', 'gauge', 'The Teredo state: 1 for the current one.', [...new Set([...states, current])].map((s) => ({ labels: { state: s }, value: s === current ? 1 : 0 }))));
  if (m.state.role === 'client') {
    const nat = m.state.natType;
    families.push(
      F('qualified', 'gauge', 'Whether the client is qualified (has a Teredo address).', [{ value: current === 'qualified' ? 1 : 0 }]),
      F('nat_type', 'gauge', 'The NAT type the client detected: 1 for the current one.', [...new Set([...NAT_TYPES, nat])].map((t) => ({ labels: { type: t }, value: t === nat ? 1 : 0 }))),
      F('qualifications_total', 'counter', 'Times the client became qualified.', [{ value: ev.qualifications ?? 0 }]),
      F('address_changes_total', 'counter', 'Teredo address changes (the NAT mapping changed).', [{ value: ev['address-changes'] ?? 0 }]),
      F('server_lost_total', 'counter', 'Times the server stopped answering refreshes.', [{ value: ev['server-lost'] ?? 0 }]),
    );
    if (m.state.lastServerContactAgoMs !== null) {
      families.push(F('last_server_contact_seconds', 'gauge', 'Seconds since the last router advertisement from the server.', [{ value: m.state.lastServerContactAgoMs / 1000 }]));
    }
  }
  if (m.state.role === 'relay') families.push(F('peers_trusted', 'gauge', 'Peers the relay trusts (they answered a bubble).', [{ value: m.state.trustedPeers }]));
  if (m.stats.peers !== null) families.push(F('peers', 'gauge', 'Entries in the peer table.', [{ value: m.stats.peers }]));
  if (m.stats.queuedBytes !== null) families.push(F('queue_bytes', 'gauge', 'Bytes of packets queued for peers not yet reachable.', [{ value: m.stats.queuedBytes }]));
  families.push(
    F('drops_total', 'counter', 'Packets the core dropped, by reason.', Object.entries(m.stats.drops).map(([reason, value]) => ({ labels: { reason }, value }))),
    F('bubbles_total', 'counter', 'Teredo bubbles, by kind (sent directly, indirectly, for local discovery; received; forwarded by a server).', Object.entries(BUBBLE_EVENTS).filter(([e]) => e in ev).map(([e, kind]) => ({ labels: { kind }, value: ev[e]! }))),
  );
  if (m.role !== 'relay') {
    families.push(
      F('router_solicitations_total', 'counter', m.role === 'server' ? 'Router solicitations received.' : 'Router solicitations sent.', [{ value: ev['router-solicitations'] ?? 0 }]),
      F('router_advertisements_total', 'counter', m.role === 'server' ? 'Router advertisements sent.' : 'Router advertisements accepted.', [{ value: ev['router-advertisements'] ?? 0 }]),
    );
  }
  families.push(F('events_total', 'counter', "The core's other events, by name.", Object.entries(ev).filter(([e]) => !DEDICATED.has(e)).map(([event, value]) => ({ labels: { event }, value }))));
  const traffic = (field: 'packets' | 'bytes'): Sample[] =>
    (Object.entries(m.traffic) as [TapDir, { packets: number; bytes: number }][]).map(([dir, c]) => {
      const [side, direction] = dir.split('-') as [string, string];
      return { labels: { side, direction }, value: c[field] };
    });
  families.push(
    F('packets_total', 'counter', 'Packets by side (udp: Teredo datagrams; tun: IPv6 packets to and from the kernel) and direction.', traffic('packets')),
    F('bytes_total', 'counter', 'Bytes (UDP payload or IPv6 packet) by side and direction.', traffic('bytes')),
    F('io_total', 'counter', 'Socket and tunnel statistics and errors by errno.', Object.entries(m.stats.io).map(([counter, value]) => ({ labels: { counter }, value }))),
  );
  return families;
}

/** The states each protocol-41 core can be in (src/isatap/host.ts, router.ts, src/sixtofour/node.ts). */
export const TUNNEL_STATES: Record<TunnelMetricsInput['role'], readonly string[]> = {
  'isatap-host': ['resolving', 'soliciting', 'configured', 'no-router'],
  'isatap-router': ['advertising'],
  '6to4-host': ['up'],
  '6to4-router': ['up'],
  '6to4-relay': ['up'],
};
const INTERFACE_STATUSES = ['up', 'pending', 'down', 'failed'] as const;
const ISATAP_RS_RA: Record<string, [string, string]> = {
  'isatap-host': ['rs-sent', 'ra-received'],
  'isatap-router': ['rs-received', 'ra-sent'],
};

function tunnelFamilies(m: TunnelMetricsInput): Family[] {
  const st = m.state;
  const ev = m.stats.events;
  const count = (v: unknown): number => (Array.isArray(v) ? v.length : 0);
  const families: Family[] = [F('info', 'gauge', 'The daemon: its role and version.', [{ labels: { role: m.role, version: m.version }, value: 1 }])];
  if (typeof st.uptimeMs === 'number') families.push(F('uptime_seconds', 'gauge', 'Seconds since the daemon started.', [{ value: st.uptimeMs / 1000 }]));
  families.push(F('state', 'gauge', "The core's state: 1 for the current one.", oneHot('state', TUNNEL_STATES[m.role], String(st.state))));
  if (typeof st.interfaceStatus === 'string') {
    families.push(F('interface_status', 'gauge', 'The tunnel interface: configured (up), being configured (pending), not yet (down) or the last change failed: 1 for the current one.', oneHot('status', INTERFACE_STATUSES, st.interfaceStatus)));
  }
  if (m.role === 'isatap-host') {
    families.push(
      F('routers', 'gauge', 'ISATAP routers in the potential router list.', [{ value: count(st.prl) }]),
      F('prefixes', 'gauge', 'Prefixes learnt from router advertisements.', [{ value: count(st.prefixes) }]),
      F('default_router', 'gauge', 'Whether the host has a default router (1) or not (0).', [{ value: st.defaultRouter ? 1 : 0 }]),
    );
  } else if (m.role === 'isatap-router') {
    families.push(
      F('prefixes', 'gauge', 'Prefixes the router advertises.', [{ value: count(st.prefixes) }]),
      F('solicitors', 'gauge', 'ISATAP hosts that have solicited the router.', [{ value: count(st.solicitors) }]),
    );
  }
  const rsra = ISATAP_RS_RA[m.role];
  if (rsra) {
    const host = m.role === 'isatap-host';
    families.push(
      F('router_solicitations_total', 'counter', host ? 'Router solicitations sent.' : 'Router solicitations received.', [{ value: ev[rsra[0]] ?? 0 }]),
      F('router_advertisements_total', 'counter', host ? 'Router advertisements received.' : 'Router advertisements sent.', [{ value: ev[rsra[1]] ?? 0 }]),
    );
  }
  const traffic = (field: 'packets' | 'bytes'): Sample[] =>
    (Object.entries(m.traffic) as [TunnelDir, { packets: number; bytes: number }][]).map(([dir, c]) => {
      const [side, direction] = dir.split('-') as [string, string];
      return { labels: { side, direction }, value: c[field] };
    });
  families.push(
    F('drops_total', 'counter', 'Packets the core dropped, by reason.', Object.entries(m.stats.drops).map(([reason, value]) => ({ labels: { reason }, value }))),
    F('events_total', 'counter', "The core's events, by name.", Object.entries(ev).filter(([e]) => !rsra?.includes(e)).map(([event, value]) => ({ labels: { event }, value }))),
    F('packets_total', 'counter', 'Packets by side (ipv4: protocol-41 packets; tun: IPv6 packets to and from the kernel) and direction.', traffic('packets')),
    F('bytes_total', 'counter', 'Bytes (whole IPv4 packet, or IPv6 packet) by side and direction.', traffic('bytes')),
    F('io_total', 'counter', 'Raw socket and tunnel statistics and errors by errno.', Object.entries(m.stats.io).map(([counter, value]) => ({ labels: { counter }, value }))),
  );
  return families;
}

const REFUSALS = { acl: 'rejected-acl', limit: 'rejected-limit' } as const;
const PROXY_ERRORS = ['resolve-failed', 'connect-failed', 'connect-timeout', 'reset'] as const;

function portProxyFamilies(m: PortProxyMetricsInput): Family[] {
  // A changed rule's old listener drains beside the new one: the same labels are one series (summed).
  const byKey = new Map<string, { labels: Labels; l: ListenerStats[] }>();
  for (const l of m.listeners) {
    const labels = { mode: l.mode, listen: l.listen, target: l.target };
    const key = JSON.stringify(labels);
    const e = byKey.get(key);
    if (e) e.l.push(l);
    else byKey.set(key, { labels, l: [l] });
  }
  const rules = [...byKey.values()];
  const per = (f: (l: ListenerStats) => number, extra: Labels = {}): Sample[] =>
    rules.map(({ labels, l }) => ({ labels: { ...labels, ...extra }, value: l.reduce((a, x) => a + f(x), 0) }));
  const c = (name: string) => (l: ListenerStats): number => l.counters[name] ?? 0;
  return [
    F('info', 'gauge', 'The daemon: its role and version.', [{ labels: { role: 'portproxy', version: m.version }, value: 1 }]),
    F('uptime_seconds', 'gauge', 'Seconds since the daemon started.', [{ value: m.uptimeMs / 1000 }]),
    F('portproxy_rules', 'gauge', 'Rules the daemon carries out.', [{ value: m.listeners.filter((l) => l.status !== 'draining').length }]),
    F('portproxy_listening', 'gauge', 'Whether the rule listens (1) or could not bind (0).', per((l) => (l.status === 'listening' ? 1 : 0))),
    F('portproxy_connections_accepted_total', 'counter', 'Client connections accepted.', per(c('accepted'))),
    F('portproxy_connections_refused_total', 'counter', 'Client connections refused (reset), by reason: not in the acl, over the limit.', Object.entries(REFUSALS).flatMap(([reason, k]) => per(c(k), { reason }))),
    F('portproxy_connections_active', 'gauge', 'Connections open now.', per((l) => l.active)),
    F('portproxy_bytes_total', 'counter', 'Bytes carried, by direction: from the clients to the target, from the target to the clients.', [
      ...per((l) => c('bytes-to-target')(l) + l.openBytes.toTarget, { direction: 'to_target' }),
      ...per((l) => c('bytes-to-client')(l) + l.openBytes.toClient, { direction: 'to_client' }),
    ]),
    F('portproxy_buffered_bytes', 'gauge', "Bytes in the proxy's stream buffers, both directions.", per((l) => l.bufferedBytes)),
    F('portproxy_errors_total', 'counter', 'Connections that failed, by reason: the target name did not resolve, the target refused or did not answer, a reset during the connection.', PROXY_ERRORS.flatMap((reason) => per(c(reason), { reason }))),
    F('portproxy_idle_timeouts_total', 'counter', 'Connections closed after their idle time without traffic.', per(c('idle-timeout'))),
  ];
}

/**
 * Starts the endpoint for --metrics (while the daemon is still privileged) and logs where it is. A port in use, a
 * wrong address: an error that names the flag.
 */
export async function serveMetrics(listen: { host: string; port: number }, render: () => string, log: Logger): Promise<MetricsServer> {
  const metrics = new MetricsServer(render);
  let at: { address: string; port: number };
  try {
    at = await metrics.listen(listen.host, listen.port);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EADDRINUSE' ? 'the port is in use' : err.code === 'EADDRNOTAVAIL' ? 'no such local address' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new Error(`--metrics ${listen.host}:${listen.port}: cannot listen: ${why}`);
  }
  log.info(`metrics at http://${at.address.includes(':') ? `[${at.address}]` : at.address}:${at.port}/metrics`, { metrics: `${at.address}:${at.port}` });
  return metrics;
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The HTTP endpoint: GET /metrics (and HEAD); / says where to look; anything else 404. */
export class MetricsServer {
  private server: Server | undefined;

  constructor(private readonly render: () => string) {}

  async listen(host: string, port: number): Promise<{ address: string; port: number }> {
    // Loaded here: a daemon without --metrics does not load the HTTP stack at start.
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      if (path === '/metrics') {
        let body: string;
        try {
          body = this.render();
        } catch (e) {
          res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${(e as Error).message}\n`);
          return;
        }
        res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      if (path === '/') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('transit6: metrics at /metrics\n');
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /metrics\n');
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = 32;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', () => {
          // Accept errors (EMFILE) must not bring the daemon down.
        });
        this.server = server;
        const a = server.address();
        resolve(typeof a === 'object' && a ? { address: a.address, port: a.port } : { address: host, port });
      });
    });
  }

  close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }
}
