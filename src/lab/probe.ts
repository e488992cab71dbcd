/**
 * Reachability and NAT-behaviour probes run inside lab namespaces: ping, and the UDP probe (udp-probe.ts) that
 * learns a client's NAT mapping from reflectors and checks which unsolicited datagrams get through.
 */
import { fileURLToPath } from 'node:url';
import type { ManagedProcess } from './exec.js';
import type { Lab } from './netns.js';

/** The compiled probe program (dist/src/lab/udp-probe.js). */
export const UDP_PROBE_SCRIPT = fileURLToPath(new URL('./udp-probe.js', import.meta.url));

export interface ProbeReply {
  /** Where the reply came from, as the client saw it (the reflector, or the full-cone NAT's public endpoint). */
  from: string;
  /** Index of the target in `to`. */
  id: number | null;
  /** The client's source as the reflector saw it: its NAT mapping. */
  seen: string;
  /** The reflector endpoint that handled the request. */
  by: string;
  /** True for the second answer, sent from the reflector's other port (never contacted by the client). */
  alt: boolean;
}

export interface ProbeResult {
  local: string;
  replies: ProbeReply[];
  other: { from: string; text: string }[];
}

export interface UdpProbeOptions {
  /** Reflector endpoints 'addr:port'. */
  to: readonly string[];
  /** Local 'addr:port' to bind; default 0.0.0.0:0. */
  bind?: string;
  /** Ask each reflector for a second answer from its other port. */
  alt?: boolean;
  /** How long to collect datagrams; default 500 ms. */
  waitMs?: number;
  /** Sends per unanswered target; default 5. */
  tries?: number;
}

/** Starts reflectors on `endpoints` (each binds PORT and PORT+1) in `ns` and waits until they are bound. */
export async function startReflector(lab: Lab, ns: string, endpoints: readonly string[], name = 'reflect'): Promise<ManagedProcess> {
  const p = lab.spawn(ns, name, process.execPath, [UDP_PROBE_SCRIPT, 'reflect', ...endpoints]);
  await p.waitForLog(/"event":"ready"/, 5000);
  return p;
}

/** Runs the probe client once in `ns` and returns what it saw. */
export async function udpProbe(lab: Lab, ns: string, o: UdpProbeOptions): Promise<ProbeResult> {
  const args = [UDP_PROBE_SCRIPT, 'client', '--to', o.to.join(',')];
  if (o.bind) args.push('--bind', o.bind);
  if (o.alt) args.push('--alt');
  args.push('--wait', String(o.waitMs ?? 500), '--tries', String(o.tries ?? 5));
  const r = await lab.exec(ns, process.execPath, args, { timeoutMs: (o.waitMs ?? 500) + 10_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ProbeResult;
}

/** One ICMP/ICMPv6 echo exchange from `ns` to `addr`; true if answered. */
export async function ping(lab: Lab, ns: string, addr: string, opts: { count?: number; timeoutS?: number } = {}): Promise<boolean> {
  const args = [addr.includes(':') ? '-6' : '-4', '-n', '-q', '-c', String(opts.count ?? 1), '-W', String(opts.timeoutS ?? 2), addr];
  const r = await lab.exec(ns, 'ping', args, { allowFailure: true });
  return r.exitCode === 0;
}
