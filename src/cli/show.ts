/** `show state` in the shape of `netsh interface teredo show state`, from a client's status. */
import type { ClientStatus } from '../teredo/client.js';
import { formatIpv4, formatIpv4Port, formatIpv6 } from '../wire/ip.js';

export interface ShowStateExtras {
  type?: string;
  serverName?: string;
  clientPort?: string;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1);
}

export function formatClientState(s: ClientStatus, extras: ShowStateExtras = {}): string {
  const rows: [string, string][] = [
    ['Type', extras.type ?? 'client'],
    ['Server Name', extras.serverName ?? `${formatIpv4(s.server)} (secondary ${formatIpv4(s.server2)})`],
    ['Client Refresh Interval', `${seconds(s.refreshIntervalMs[0])}-${seconds(s.refreshIntervalMs[1])} seconds (randomized, below the NAT's UDP timeout)`],
    ['Client Port', extras.clientPort ?? (s.localMapping ? String(s.localMapping.port) : 'unspecified')],
    ['State', s.state === 'offline' || s.state === 'dormant' ? `${s.state} (${s.reason})` : s.state],
    ['Client Type', 'teredo client'],
    ['Network', 'unmanaged'],
    ['NAT', natText(s)],
    ['NAT Special Behaviour', `UPNP: No, PortPreserving: ${s.portPreserving === undefined ? 'unknown' : s.portPreserving ? 'Yes' : 'No'}`],
    ['Local Mapping', s.localMapping ? formatIpv4Port(s.localMapping) : 'unknown'],
    ['External Mapping', s.externalMapping ? formatIpv4Port(s.externalMapping) : 'unknown'],
    ['Teredo Address', s.teredoAddress ? formatIpv6(s.teredoAddress) : 'none'],
    ['MTU', String(s.mtu)],
    ['Address Changes', String(s.addressChanges)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return ['Teredo Parameters', '-'.repeat(45), ...rows.map(([k, v]) => `${k.padEnd(width)} : ${v}`)].join('\n');
}

function natText(s: ClientStatus): string {
  if (s.natDetection === 'running') return 'detecting...';
  if (s.natType === 'restricted' && !s.portFilteringKnown) return 'restricted (address or port restricted: the server offers no probe port)';
  return s.natType;
}
