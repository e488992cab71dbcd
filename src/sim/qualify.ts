/**
 * The qualification scenario: a Teredo server with two addresses on the public side, a client behind one NAT
 * of a chosen kind (or none), run on the virtual clock. `transit6 sim qualify` and the scenario tests share it.
 */
import { SeededRng } from '../core/rng.js';
import type { Millis } from '../core/time.js';
import { TeredoClient, type ClientStatus, type TeredoClientConfig } from '../teredo/client.js';
import { describeTeredoDatagram } from '../teredo/describe.js';
import { TeredoServer } from '../teredo/server.js';
import { formatIpv4Port, formatIpv6, parseIpv4, type Ipv4, type Ipv4Port } from '../wire/ip.js';
import { natPreset, type NatModel } from './nat.js';
import { SimNetwork } from './network.js';
import type { TraceUdp } from './trace.js';

export type NatKind = 'full-cone' | 'restricted' | 'port-restricted' | 'symmetric' | 'none';
export const NAT_KINDS: readonly NatKind[] = ['full-cone', 'restricted', 'port-restricted', 'symmetric', 'none'];

function ip(text: string): Ipv4 {
  return parseIpv4(text)!;
}

/** The lab's addresses (documentation ranges only, as in the Miredo study's lab). */
export const QUALIFY_ADDRESSES = {
  serverPrimary: ip('198.51.100.1'),
  serverSecondary: ip('198.51.100.2'),
  natPublic: ip('203.0.113.1'),
  clientPrivate: ip('192.168.1.10'),
  clientPublic: ip('203.0.113.49'),
  clientPort: 50000,
  probePort: 3546,
};

export interface QualifyOptions {
  nat: NatKind;
  seed?: number;
  /** The NAT's UDP mapping timeout. */
  udpTimeoutMs?: number;
  /** What the client assumes about it (defaults to 30 s, RFC 4380 §2.15). */
  clientAssumedTimeoutMs?: number;
  /** How long to stay idle after qualification, counting address changes. */
  idleMs?: number;
  /** The server is unreachable for this long from the start. */
  serverDownMs?: number;
  /** Turn off the server's probe-port extension (as with a miredo-server). */
  plainServer?: boolean;
  client?: Partial<TeredoClientConfig>;
}

export interface QualifyPacket {
  at: Millis;
  segment: string;
  src: string;
  dst: string;
  label: string;
  fate: string;
  reason?: string;
}

export interface QualifyResult {
  status: ClientStatus;
  /** When the client first became qualified, and when NAT detection ended (virtual ms). */
  qualifiedAt: Millis | undefined;
  detectionDoneAt: Millis | undefined;
  /** The NAT's own record of the client's mapping towards the primary server. */
  natMapping: Ipv4Port | undefined;
  packets: QualifyPacket[];
  endedAt: Millis;
  net: SimNetwork;
  client: TeredoClient;
  server: TeredoServer;
}

export function buildQualifyNetwork(opts: QualifyOptions): { net: SimNetwork; client: TeredoClient; server: TeredoServer; nat?: NatModel; clientLocal: Ipv4Port } {
  const A = QUALIFY_ADDRESSES;
  const seed = opts.seed ?? 4380;
  const net = new SimNetwork(seed);
  const server = new TeredoServer({
    primary: A.serverPrimary,
    secondary: A.serverSecondary,
    ...(opts.plainServer ? {} : { probePort: A.probePort }),
  });
  net.addHost('server', { addrs: [A.serverPrimary, A.serverSecondary], endpoint: server, port: 3544, localPorts: opts.plainServer ? [] : [A.probePort] });
  const behind = opts.nat !== 'none';
  const clientLocal = { addr: behind ? A.clientPrivate : A.clientPublic, port: A.clientPort };
  const client = new TeredoClient(
    {
      server: A.serverPrimary,
      server2: A.serverSecondary,
      probePort: A.probePort,
      local: clientLocal,
      natUdpTimeoutMs: opts.clientAssumedTimeoutMs ?? 30_000,
      ...opts.client,
    },
    new SeededRng(seed ^ 0x7e7ed0),
  );
  let nat: NatModel | undefined;
  if (behind) {
    nat = natPreset(opts.nat as Exclude<NatKind, 'none'>, A.natPublic, { udpTimeoutMs: opts.udpTimeoutMs ?? 30_000, rng: net.forkRng() });
    net.addNat('nat', nat);
  }
  net.addHost('client', { addr: clientLocal.addr, port: clientLocal.port, endpoint: client, ...(behind ? { behind: 'nat' } : {}) });
  return { net, client, server, ...(nat ? { nat } : {}), clientLocal };
}

/** Runs qualification and NAT detection, then the idle period, and reports what happened. */
export function runQualify(opts: QualifyOptions): QualifyResult {
  const A = QUALIFY_ADDRESSES;
  const { net, client, server, nat, clientLocal } = buildQualifyNetwork(opts);
  let unblock: (() => void) | undefined;
  if (opts.serverDownMs) {
    const id = net.block((hop) => hop.kind === 'udp' && hop.segment === 'inet' && (hop.dst.addr === A.serverPrimary || hop.dst.addr === A.serverSecondary));
    unblock = () => net.unblock(id);
  }
  let qualifiedAt: Millis | undefined;
  let detectionDoneAt: Millis | undefined;
  const watch = (): boolean => {
    const s = client.status();
    if (qualifiedAt === undefined && s.state === 'qualified') qualifiedAt = net.now;
    if (detectionDoneAt === undefined && s.state === 'qualified' && s.natDetection === 'done') detectionDoneAt = net.now;
    return detectionDoneAt !== undefined;
  };
  if (unblock) {
    net.runUntil(() => (watch(), false), opts.serverDownMs!);
    unblock();
  }
  net.runUntil(() => watch(), 120_000);
  if (opts.idleMs) net.runUntil(() => (watch(), false), opts.idleMs);
  const status = client.status();
  let natMapping: Ipv4Port | undefined;
  if (nat) {
    const m = nat.mappings(net.now).find((x) => x.private.addr === clientLocal.addr && x.private.port === clientLocal.port && x.destinations.some((d) => d.addr === A.serverPrimary));
    natMapping = m?.public;
  } else {
    natMapping = clientLocal;
  }
  const ctx = { serverPrimary: A.serverPrimary, serverSecondary: A.serverSecondary };
  const packets: QualifyPacket[] = net.trace
    .filter((e): e is TraceUdp => e.kind === 'udp')
    .map((e) => {
      const p: QualifyPacket = {
        at: e.at,
        segment: e.segment,
        src: formatIpv4Port(e.src),
        dst: formatIpv4Port(e.dst),
        label: describeTeredoDatagram(e.src, e.dst, e.data, ctx).text,
        fate: e.fate,
      };
      if (e.reason) p.reason = e.reason;
      return p;
    });
  return { status, qualifiedAt, detectionDoneAt, natMapping, packets, endedAt: net.now, net, client, server };
}

/** The JSON `transit6 sim qualify --json` prints. */
export function qualifyJson(r: QualifyResult): Record<string, unknown> {
  const s = r.status;
  return {
    state: s.state,
    reason: s.reason,
    natType: s.natType,
    portFilteringKnown: s.portFilteringKnown,
    localMapping: s.localMapping ? formatIpv4Port(s.localMapping) : null,
    externalMapping: s.externalMapping ? formatIpv4Port(s.externalMapping) : null,
    natMapping: r.natMapping ? formatIpv4Port(r.natMapping) : null,
    teredoAddress: s.teredoAddress ? formatIpv6(s.teredoAddress) : null,
    addressChanges: s.addressChanges,
    qualifiedAtMs: r.qualifiedAt ?? null,
    detectionDoneAtMs: r.detectionDoneAt ?? null,
    endedAtMs: r.endedAt,
    packets: r.packets,
  };
}
