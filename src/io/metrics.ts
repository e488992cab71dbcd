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
 */
import { createServer, type Server } from 'node:http';
import type { StateJson, StatsJson } from './control.js';
import type { TapDir } from './tap.js';

export interface MetricsInput {
  role: 'client' | 'relay' | 'server';
  version: string;
  state: StateJson;
  stats: StatsJson;
  /** Packets and bytes by direction, from the tap. */
  traffic: Record<TapDir, { packets: number; bytes: number }>;
}

export const CLIENT_STATES = ['probe', 'qualified', 'offline', 'dormant'] as const;
export const NAT_TYPES = ['unknown', 'none', 'cone', 'restricted', 'port-restricted', 'symmetric'] as const;

type Labels = Record<string, string>;
type Sample = { labels?: Labels; value: number };
type Family = { name: string; type: 'gauge' | 'counter'; help: string; samples: Sample[] };

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
  const F = (name: string, type: Family['type'], help: string, samples: Sample[]): Family => ({ name: `transit6_${name}`, type, help, samples });
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
  return renderFamilies(families);
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The HTTP endpoint: GET /metrics (and HEAD); / says where to look; anything else 404. */
export class MetricsServer {
  private server: Server | undefined;

  constructor(private readonly render: () => string) {}

  listen(host: string, port: number): Promise<{ address: string; port: number }> {
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
