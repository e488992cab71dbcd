/**
 * `show state` in the shape of `netsh interface teredo show state`, from a client's status, and the other
 * `transit6 teredo show` blocks (relay and server state, peers, stats) from the control socket's JSON answers.
 */
import type { ClientStatus } from '../teredo/client.js';
import { clientStateJson, type ClientStateJson, type PeersJson, type RelayStateJson, type ServerStateJson, type StatsJson } from '../io/control.js';

export interface ShowStateExtras {
  type?: string;
  serverName?: string;
  clientPort?: string;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1);
}

export function formatClientState(s: ClientStatus, extras: ShowStateExtras = {}): string {
  return formatClientStateJson(clientStateJson(s), extras);
}

/** The netsh block from the control socket's 'state' answer; daemon facts (interface, uptime...) follow it. */
export function formatClientStateJson(j: ClientStateJson, extras: ShowStateExtras = {}): string {
  const serverName =
    j.serverName === null || j.serverName === j.server ? `${j.server} (secondary ${j.server2})` : `${j.serverName} (${j.server}, secondary ${j.server2})`;
  const rows: [string, string][] = [
    ['Type', extras.type ?? 'client'],
    ['Server Name', extras.serverName ?? serverName],
    ['Client Refresh Interval', `${seconds(j.refreshIntervalMs[0])}-${seconds(j.refreshIntervalMs[1])} seconds (randomized, below the NAT's UDP timeout)`],
    ['Client Port', extras.clientPort ?? (j.clientPort !== null ? String(j.clientPort) : 'unspecified')],
    ['State', j.state === 'offline' || j.state === 'dormant' ? `${j.state} (${j.reason})` : j.state],
    ['Client Type', 'teredo client'],
    ['Network', 'unmanaged'],
    ['NAT', natText(j)],
    ['NAT Special Behaviour', `UPNP: No, PortPreserving: ${j.portPreserving === null ? 'unknown' : j.portPreserving ? 'Yes' : 'No'}`],
    ['Local Mapping', j.localMapping ?? 'unknown'],
    ['External Mapping', j.externalMapping ?? 'unknown'],
    ['Teredo Address', j.teredoAddress ?? 'none'],
    ['MTU', String(j.mtu)],
    ['Address Changes', String(j.addressChanges)],
  ];
  if (j.lastServerContactAgoMs !== null) rows.push(['Last Server Contact', `${ago(j.lastServerContactAgoMs)} ago`]);
  if (j.interfaceStatus !== null && j.interfaceStatus !== undefined) rows.push(['Interface Address', j.interfaceStatus]);
  rows.push(...daemonRows(j));
  return block(rows);
}

function natText(j: ClientStateJson): string {
  if (j.natDetection === 'running') return 'detecting...';
  if (j.natType === 'restricted' && !j.portFilteringKnown) return 'restricted (address or port restricted: the server offers no probe port)';
  return j.natType;
}

function daemonRows(j: { interfaceName: string | null; pid: number | null; uptimeMs: number | null; dataPath?: string | null }): [string, string][] {
  const rows: [string, string][] = [];
  if (j.interfaceName !== null) rows.push(['Interface', j.interfaceName]);
  if (j.dataPath !== null && j.dataPath !== undefined) rows.push(['Data Path', j.dataPath]);
  if (j.pid !== null) rows.push(['Process', `${j.pid}${j.uptimeMs !== null ? `, up ${ago(j.uptimeMs)}` : ''}`]);
  return rows;
}

function block(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return ['Teredo Parameters', '-'.repeat(45), ...rows.map(([k, v]) => `${k.padEnd(width)} : ${v}`)].join('\n');
}

export function formatRelayStateJson(j: RelayStateJson): string {
  const bubbles = j.directBubbles ? 'direct and indirect bubbles' : 'indirect bubbles only';
  const rows: [string, string][] = [
    ['Type', j.mode === 'host' ? 'host-specific relay' : 'relay'],
    ['Relay Type', `${j.relayType} (${bubbles})`],
    ['State', j.state],
    ['Local Endpoint', j.localEndpoint ?? 'unknown'],
    ['Prefix', j.prefix],
    ['MTU', String(j.mtu)],
  ];
  if (j.mode === 'host') rows.push(['Host Addresses', j.hostAddresses.join(', ') || 'none']);
  rows.push(['Peers', `${j.peers} (${j.trustedPeers} trusted)`], ['Queued', `${j.queuedBytes} bytes`], ...daemonRows(j));
  return block(rows);
}

export function formatServerStateJson(j: ServerStateJson): string {
  const rows: [string, string][] = [
    ['Type', 'server'],
    ['State', j.state],
    ['Primary Address', `${j.primary}:${j.port}`],
    ['Secondary Address', `${j.secondary}:${j.port}`],
    ['NAT Probe Port', j.probePort === null ? 'none (plain server, as Miredo)' : `${j.secondary}:${j.probePort}`],
    ['Client Prefix', j.clientPrefix],
    ['Advertised MTU', String(j.mtu)],
    ['Native Forwarding', j.forwardNative ? 'echo requests (connectivity tests)' : 'off'],
    ['Router Solicitations', String(j.routerSolicitations)],
    ['Router Advertisements', String(j.routerAdvertisements)],
    ...daemonRows(j),
  ];
  return block(rows);
}

/** "850 ms", "12.3 s", "4 min 05 s", "2 h 07 min", "3 d 04 h". */
export function ago(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  const whole = Math.floor(s);
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${pad(whole % 60)} s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)} h ${pad(Math.floor((whole % 3600) / 60))} min`;
  return `${Math.floor(whole / 86400)} d ${pad(Math.floor((whole % 86400) / 3600))} h`;
}

function table(header: string[], rows: string[][], rightAligned: number[] = []): string[] {
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => (rightAligned.includes(i) ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd());
}

export function formatPeersJson(j: PeersJson): string {
  if (j.total === 0) return `no peers (${j.role})`;
  const rows = j.peers.map((p) => [
    p.address,
    p.trusted ? 'yes' : 'no',
    p.endpoint ?? '-',
    p.local ?? '-',
    ago(p.lastRxAgoMs),
    ago(p.lastTxAgoMs),
    String(p.queued),
  ]);
  const lines = table(['Address', 'Trusted', 'Endpoint', 'Local', 'Last Rx', 'Last Tx', 'Queued'], rows, [4, 5, 6]);
  const trusted = j.peers.filter((p) => p.trusted).length;
  lines.push('', j.truncated ? `${j.peers.length} most recently active of ${j.total} peers shown (${trusted} of them trusted); --limit 0 shows all` : `${j.total} peer(s), ${trusted} trusted`);
  return lines.join('\n');
}

/** Events in a reading order (router discovery, bubbles, traffic each way), then anything else by name. */
const EVENT_ORDER = [
  'router-solicitations', 'router-advertisements', 'qualifications', 'address-changes', 'server-lost', 'cone-probes', 'port-probes',
  'direct-bubbles-sent', 'indirect-bubbles-sent', 'discovery-bubbles-sent', 'bubbles-received', 'bubbles-forwarded', 'connectivity-tests',
  'echo-replies', 'peers-trusted', 'unreachable-errors',
  'packets-from-tunnel', 'bytes-from-tunnel', 'packets-to-tunnel', 'bytes-to-tunnel', 'packets-sent', 'packets-received',
  'to-clients-packets', 'to-clients-bytes', 'from-clients-packets', 'from-clients-bytes',
  'datagrams-received', 'icmpv6-forwarded', 'native-forwarded',
];

function counterLines(counts: Record<string, number>, order: (keys: string[]) => string[]): string[] {
  const keys = order(Object.keys(counts));
  if (keys.length === 0) return ['  (none)'];
  const w = Math.max(...keys.map((k) => k.length));
  const nw = Math.max(...keys.map((k) => String(counts[k]).length));
  return keys.map((k) => `  ${k.padEnd(w)}  ${String(counts[k]).padStart(nw)}`);
}

export function formatStatsJson(j: StatsJson): string {
  const total = Object.values(j.drops).reduce((a, b) => a + b, 0);
  const lines = [`Teredo ${j.role} statistics`, '', 'Events'];
  lines.push(
    ...counterLines(j.events, (keys) => [
      ...EVENT_ORDER.filter((k) => keys.includes(k)),
      ...keys.filter((k) => !EVENT_ORDER.includes(k)).sort(),
    ]),
  );
  lines.push('', `Drops by reason (${total} in all)`);
  // Most frequent first: the reason to look at comes first.
  lines.push(...counterLines(j.drops, (keys) => keys.sort((a, b) => j.drops[b]! - j.drops[a]! || (a < b ? -1 : 1))));
  if (j.peers !== null) lines.push('', `Peers: ${j.peers}, ${j.queuedBytes ?? 0} bytes queued`);
  if (Object.keys(j.io).length > 0) {
    lines.push('', 'Sockets and tunnel');
    lines.push(...counterLines(j.io, (keys) => keys.sort()));
  }
  return lines.join('\n');
}
