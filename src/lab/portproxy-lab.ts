/**
 * The PortProxy part of `transit6 lab up`: an IPv4-only host and an IPv6-only host that cannot reach each other,
 * and our proxy between them (`transit6 portproxy run`, forwarding off: whatever crosses, crosses through the
 * daemon).
 *
 *     pp-v4 eth0 198.51.100.10/24 ── to4 198.51.100.1/24  pp-proxy  to6 2001:db8:6::1/64 ── eth0 2001:db8:6::10/64 pp-v6
 *     (IPv6 disabled)                                                                           (no IPv4 address)
 *
 * Each host runs a one-line TCP service (socat) that answers with the peer address it sees. Rules:
 *   v6tov4 listenport=8004 connectaddress=198.51.100.10 connectport=7007   (the IPv4-only service, for IPv6 clients)
 *   v4tov6 listenport=8006 listenaddress=198.51.100.1 connectaddress=2001:db8:6::10 connectport=7007   (the reverse)
 * Shows: neither host reaches the other's service directly; through the proxy each does, and each service sees
 * the proxy's address in its own family.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedProcess } from './exec.js';
import { Lab } from './netns.js';
import { formatIpv6, parseIpv6 } from '../wire/ip.js';
import { TRANSIT6, waitFor } from './proto41-topology.js';
import { PART_FILE, type NodeAddresses } from './proto41-lab.js';

export const PP_V4HOST = '198.51.100.10';
export const PP_PROXY4 = '198.51.100.1';
export const PP_V6HOST = '2001:db8:6::10';
export const PP_PROXY6 = '2001:db8:6::1';
const SERVICE_PORT = 7007;

export interface PortProxyConnection {
  from: string;
  /** What the client connected to. */
  to: string;
  /** What the proxy connected to ('direct' for the attempt without the proxy). */
  target: string;
  mode: string | null;
  /** The service's one-line answer, '' when the connection failed. */
  reply: string;
  /** The peer address the service saw (IPv6 in the compressed form), null without an answer. */
  seenAs: string | null;
  /** Expected: the direct attempts fail, the proxied ones answer with the proxy's address in the service's family. */
  ok: boolean;
}

export interface PortProxyResult {
  part: 'portproxy';
  prefix: string;
  runDir: string;
  namespaces: string[];
  daemons: { name: string; ns: string; pid: number; log: string }[];
  nodes: NodeAddresses[];
  config: string;
  rules: { mode: string; listen: string; target: string; status: string; accepted: number }[];
  connections: PortProxyConnection[];
}

export interface PortProxyOptions {
  prefix?: string;
  progress?: (msg: string) => void;
  timeoutMs: number;
  /** Run the connections (false: --no-matrix). */
  pings: boolean;
}

interface LiveRule {
  mode: string;
  listen: string;
  target: string;
  status: string;
  counters: Record<string, number>;
}

/** Every address (both families) on `iface` in `ns`: the IPv4-only host must have no IPv6 one, and the reverse. */
async function addressesOn(lab: Lab, ns: string, iface: string): Promise<string[]> {
  const r = await lab.exec(ns, 'ip', ['-o', 'addr', 'show', 'dev', iface]);
  return [...r.stdout.matchAll(/inet6? ([0-9a-f.:]+)\//g)].map((m) => m[1]!);
}

/** The address at the end of a service's answer ('... answers ADDR'; socat writes IPv6 in full, in brackets). */
export function seenAddress(reply: string): string | null {
  const m = /answers \[?([0-9a-fA-F.:]+)\]?$/.exec(reply);
  if (!m) return null;
  if (!m[1]!.includes(':')) return m[1]!;
  const a = parseIpv6(m[1]!);
  return a ? formatIpv6(a) : null;
}

/** One TCP exchange with socat: what the service said, '' if the connection failed. */
async function connect(lab: Lab, ns: string, address: string, port: number): Promise<string> {
  const target = address.includes(':') ? `TCP6:[${address}]:${port}` : `TCP4:${address}:${port}`;
  const r = await lab.exec(ns, 'socat', ['-T', '5', '-', `${target},connect-timeout=3`], { input: '', allowFailure: true, timeoutMs: 15_000 });
  return r.exitCode === 0 ? r.stdout.trim() : '';
}

export async function startPortProxyPart(o: PortProxyOptions): Promise<{ lab: Lab; result: PortProxyResult }> {
  const say = o.progress ?? (() => undefined);
  const lab = new Lab(o.prefix !== undefined ? { prefix: o.prefix } : {});
  try {
    const t0 = Date.now();
    const v4 = await lab.addNamespace('pp-v4');
    const proxy = await lab.addNamespace('pp-proxy');
    const v6 = await lab.addNamespace('pp-v6');
    await lab.link(v4, 'eth0', proxy, 'to4');
    await lab.link(proxy, 'to6', v6, 'eth0');
    await lab.sysctl(v4, { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
    await lab.addAddress(v4, 'eth0', `${PP_V4HOST}/24`);
    await lab.addAddress(proxy, 'to4', `${PP_PROXY4}/24`);
    await lab.addAddress(proxy, 'to6', `${PP_PROXY6}/64`);
    await lab.addAddress(v6, 'eth0', `${PP_V6HOST}/64`);
    await lab.setForwarding(proxy, { ipv4: false, ipv6: false });
    say(`portproxy: built ${lab.namespaces.length} namespaces (prefix ${lab.prefix}) in ${Date.now() - t0} ms`);

    const procs: ManagedProcess[] = [];
    const service = (ns: string, name: string, listen: string, text: string): ManagedProcess =>
      lab.spawn(ns, name, 'socat', [listen, `SYSTEM:echo "${text} answers $SOCAT_PEERADDR"`], { detached: true });
    procs.push(service(v4, 'service4', `TCP4-LISTEN:${SERVICE_PORT},bind=${PP_V4HOST},reuseaddr,fork`, `IPv4-only service ${PP_V4HOST}:${SERVICE_PORT}`));
    procs.push(service(v6, 'service6', `TCP6-LISTEN:${SERVICE_PORT},bind=[${PP_V6HOST}],reuseaddr,fork`, `IPv6-only service [${PP_V6HOST}]:${SERVICE_PORT}`));
    await waitFor('the IPv4-only service', async () => ((await connect(lab, v4, PP_V4HOST, SERVICE_PORT)) ? true : undefined), o.timeoutMs, procs);
    await waitFor('the IPv6-only service', async () => ((await connect(lab, v6, PP_V6HOST, SERVICE_PORT)) ? true : undefined), o.timeoutMs, procs);

    const config = join(lab.runDir, 'portproxy.conf');
    const control = join(lab.runDir, 'portproxy.sock');
    writeFileSync(config, '');
    const daemon = lab.spawn(proxy, 'portproxy', process.execPath, [TRANSIT6, 'portproxy', 'run', '--config', config, '--control', control], { detached: true });
    procs.push(daemon);
    await daemon.waitForLog(/ready/, o.timeoutMs);
    const pp = async (args: string[]): Promise<string> => (await lab.exec(proxy, process.execPath, [TRANSIT6, 'portproxy', ...args, '--config', config])).stdout;
    await pp(['add', 'v6tov4', 'listenport=8004', `connectaddress=${PP_V4HOST}`, `connectport=${SERVICE_PORT}`]);
    await pp(['add', 'v4tov6', 'listenport=8006', `listenaddress=${PP_PROXY4}`, `connectaddress=${PP_V6HOST}`, `connectport=${SERVICE_PORT}`]);
    const live = async (): Promise<LiveRule[]> => (JSON.parse(await pp(['show', '--live', '--json', '--control', control])) as { live: LiveRule[] }).live;
    await waitFor('the proxy listening on both rules', async () => {
      const l = await live();
      return l.length === 2 && l.every((r) => r.status === 'listening') ? l : undefined;
    }, o.timeoutMs, procs);
    say('portproxy: services answer; the proxy listens on both rules');

    const connections: PortProxyConnection[] = [];
    if (o.pings) {
      const direct6 = await connect(lab, v6, PP_V4HOST, SERVICE_PORT);
      connections.push({ from: 'v6host', to: `${PP_V4HOST}:${SERVICE_PORT}`, target: 'direct', mode: null, reply: direct6, seenAs: seenAddress(direct6), ok: direct6 === '' });
      const direct4 = await connect(lab, v4, PP_V6HOST, SERVICE_PORT);
      connections.push({ from: 'v4host', to: `[${PP_V6HOST}]:${SERVICE_PORT}`, target: 'direct', mode: null, reply: direct4, seenAs: seenAddress(direct4), ok: direct4 === '' });
      const via6 = await connect(lab, v6, PP_PROXY6, 8004);
      connections.push({ from: 'v6host', to: `[${PP_PROXY6}]:8004`, target: `${PP_V4HOST}:${SERVICE_PORT}`, mode: 'v6tov4', reply: via6, seenAs: seenAddress(via6), ok: via6.startsWith('IPv4-only service') && seenAddress(via6) === PP_PROXY4 });
      const via4 = await connect(lab, v4, PP_PROXY4, 8006);
      connections.push({ from: 'v4host', to: `${PP_PROXY4}:8006`, target: `[${PP_V6HOST}]:${SERVICE_PORT}`, mode: 'v4tov6', reply: via4, seenAs: seenAddress(via4), ok: via4.startsWith('IPv6-only service') && seenAddress(via4) === PP_PROXY6 });
      const bad = connections.filter((c) => !c.ok);
      if (bad.length > 0) throw new Error(`portproxy: ${bad.map((c) => `${c.from} -> ${c.to}${c.mode ? ` (${c.mode})` : ' (direct, should fail)'}: ${c.reply ? `'${c.reply}'` : 'no answer'}`).join('; ')}`);
    }
    const rules = (await live()).map((r) => ({ mode: r.mode, listen: r.listen, target: r.target, status: r.status, accepted: r.counters.accepted ?? 0 }));
    const nodes: NodeAddresses[] = [
      { name: 'v4host', ns: v4, ipv4: PP_V4HOST, role: null, state: null, addresses: [], interface: 'eth0', onInterface: (await addressesOn(lab, v4, 'eth0')).join(' ') === PP_V4HOST },
      { name: 'proxy', ns: proxy, ipv4: PP_PROXY4, role: 'portproxy', state: 'running', addresses: [PP_PROXY6], interface: 'to4, to6', onInterface: (await addressesOn(lab, proxy, 'to4')).includes(PP_PROXY4) && (await addressesOn(lab, proxy, 'to6')).includes(PP_PROXY6) },
      { name: 'v6host', ns: v6, ipv4: null, role: null, state: null, addresses: [PP_V6HOST], interface: 'eth0', onInterface: (await addressesOn(lab, v6, 'eth0')).filter((a) => !a.startsWith('fe80:')).join(' ') === PP_V6HOST },
    ];
    const off = nodes.filter((n) => !n.onInterface);
    if (off.length > 0) throw new Error(`portproxy: unexpected addresses on ${off.map((n) => `${n.name} ${n.interface}`).join(', ')}`);
    writeFileSync(join(lab.runDir, PART_FILE), `${JSON.stringify({ part: 'portproxy', nodes: nodes.map((n) => ({ name: n.name, ns: n.ns, family: null })) }, null, 2)}\n`);
    return {
      lab,
      result: {
        part: 'portproxy',
        prefix: lab.prefix,
        runDir: lab.runDir,
        namespaces: [...lab.namespaces],
        daemons: procs.map((p) => ({ name: p.name, ns: p.ns, pid: p.pid, log: p.logPath })),
        nodes,
        config,
        rules,
        connections,
      },
    };
  } catch (e) {
    await lab.destroy().catch((d: unknown) => {
      if (e instanceof Error) e.message += `\n  (and teardown failed: ${d instanceof Error ? d.message : String(d)})`;
    });
    throw e;
  }
}
