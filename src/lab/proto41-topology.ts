/**
 * The protocol-41 labs: ISATAP on an IPv4 intranet with a native IPv6 segment, and 6to4 across an IPv4 "Internet"
 * with a relay in front of a native IPv6 host.
 *
 * ISATAP:
 *
 *     isa-h1 eth0 10.20.0.11/24 ─┐
 *     isa-h2 eth0 10.20.0.12/24 ─┤ bridge br0 in isa-lan (IPv4 only: the intranet)
 *     isa-rtr eth0 10.20.0.1/24 ─┘
 *     isa-rtr eth1 2001:db8:60::1/64 ── isa-v6 eth0 2001:db8:60::10/64 (IPv6 only, default via isa-rtr)
 *
 *   The ISATAP router advertises 2001:db8:5e:1::/64 (ISATAP_PREFIX); its hosts get 2001:db8:5e:1::5efe:10.20.0.x.
 *
 * 6to4:
 *
 *     s4-rtr  wan0 198.51.100.2/28 ─┐                 ┌─ s4-host eth0 203.0.113.2/28
 *             lan0 2002:c633:6402:1::1/64             │
 *               └── s4-lan eth0 (SLAAC from radvd)    │
 *                                  s4-inet (IPv4 router: .1/.17 of 198.51.100.0/28 and /28 up, 203.0.113.1/28)
 *     s4-relay wan0 198.51.100.18/28 ┘
 *              eth1 2001:db8:70::1/64 ── s4-v6 eth0 2001:db8:70::10/64 (IPv6 only, default via s4-relay)
 *
 * Only documentation ranges are "public" (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32); the intranet is 10.20/16.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ManagedProcess } from './exec.js';
import { Lab, type LabOptions } from './netns.js';

/** bin/transit6.js of this checkout (from dist/src/lab/). */
export const TRANSIT6 = fileURLToPath(new URL('../../../bin/transit6.js', import.meta.url));

export const ISATAP_PREFIX = '2001:db8:5e:1::';
export const ISATAP_NATIVE_PREFIX = '2001:db8:60::';

export interface IsatapLab {
  lab: Lab;
  router: { ns: string; ipv4: string; lanIface: string; native: string };
  hosts: { ns: string; ipv4: string }[];
  v6host: { ns: string; ipv6: string };
}

/** Builds the ISATAP lab (namespaces isa-*). The caller destroys `lab`, also when this throws. */
export async function buildIsatapLab(lab: Lab): Promise<IsatapLab> {
  const ns = async (n: string): Promise<string> => lab.addNamespace(n);
  const lan = await ns('isa-lan');
  const rtr = await ns('isa-rtr');
  const h1 = await ns('isa-h1');
  const h2 = await ns('isa-h2');
  const v6 = await ns('isa-v6');
  await lab.link(rtr, 'eth0', lan, 'p-rtr');
  await lab.link(h1, 'eth0', lan, 'p-h1');
  await lab.link(h2, 'eth0', lan, 'p-h2');
  await lab.addBridge(lan, 'br0', ['p-rtr', 'p-h1', 'p-h2']);
  await lab.addAddress(rtr, 'eth0', '10.20.0.1/24');
  await lab.addAddress(h1, 'eth0', '10.20.0.11/24');
  await lab.addAddress(h2, 'eth0', '10.20.0.12/24');
  await lab.link(rtr, 'eth1', v6, 'eth0');
  await lab.addAddress(rtr, 'eth1', '2001:db8:60::1/64');
  await lab.addAddress(v6, 'eth0', '2001:db8:60::10/64');
  await lab.addRoute(v6, 'default', '2001:db8:60::1', { family: 6 });
  await lab.setForwarding(rtr, { ipv6: true });
  return {
    lab,
    router: { ns: rtr, ipv4: '10.20.0.1', lanIface: 'eth0', native: '2001:db8:60::1' },
    hosts: [
      { ns: h1, ipv4: '10.20.0.11' },
      { ns: h2, ipv4: '10.20.0.12' },
    ],
    v6host: { ns: v6, ipv6: '2001:db8:60::10' },
  };
}

export interface SixToFourLab {
  lab: Lab;
  inet: string;
  router: { ns: string; ipv4: string; lanIface: string; prefix48: string };
  lanHost: { ns: string };
  host: { ns: string; ipv4: string; address: string };
  relay: { ns: string; ipv4: string; native: string };
  v6host: { ns: string; ipv6: string };
}

/** Builds the 6to4 lab (namespaces s4-*). The caller destroys `lab`, also when this throws. */
export async function buildSixToFourLab(lab: Lab): Promise<SixToFourLab> {
  const ns = async (n: string): Promise<string> => lab.addNamespace(n);
  const inet = await ns('s4-inet');
  const rtr = await ns('s4-rtr');
  const lanHost = await ns('s4-lan');
  const host = await ns('s4-host');
  const relay = await ns('s4-relay');
  const v6 = await ns('s4-v6');
  await lab.link(inet, 'i-rtr', rtr, 'wan0');
  await lab.link(inet, 'i-relay', relay, 'wan0');
  await lab.link(inet, 'i-host', host, 'eth0');
  await lab.addAddress(inet, 'i-rtr', '198.51.100.1/28');
  await lab.addAddress(rtr, 'wan0', '198.51.100.2/28');
  await lab.addRoute(rtr, 'default', '198.51.100.1');
  await lab.addAddress(inet, 'i-relay', '198.51.100.17/28');
  await lab.addAddress(relay, 'wan0', '198.51.100.18/28');
  await lab.addRoute(relay, 'default', '198.51.100.17');
  await lab.addAddress(inet, 'i-host', '203.0.113.1/28');
  await lab.addAddress(host, 'eth0', '203.0.113.2/28');
  await lab.addRoute(host, 'default', '203.0.113.1');
  await lab.setForwarding(inet, { ipv4: true });
  await lab.link(rtr, 'lan0', lanHost, 'eth0');
  await lab.link(relay, 'eth1', v6, 'eth0');
  await lab.addAddress(relay, 'eth1', '2001:db8:70::1/64');
  await lab.addAddress(v6, 'eth0', '2001:db8:70::10/64');
  await lab.addRoute(v6, 'default', '2001:db8:70::1', { family: 6 });
  // The LAN host autoconfigures from the router's advertisements (the lab turns RA processing off by default).
  await lab.sysctl(lanHost, { 'net.ipv6.conf.eth0.accept_ra': '2', 'net.ipv6.conf.eth0.autoconf': '1' });
  return {
    lab,
    inet,
    router: { ns: rtr, ipv4: '198.51.100.2', lanIface: 'lan0', prefix48: '2002:c633:6402::' },
    lanHost: { ns: lanHost },
    host: { ns: host, ipv4: '203.0.113.2', address: '2002:cb00:7102::cb00:7102' },
    relay: { ns: relay, ipv4: '198.51.100.18', native: '2001:db8:70::1' },
    v6host: { ns: v6, ipv6: '2001:db8:70::10' },
  };
}

export type { LabOptions };

// ---------------------------------------------------------------------------------------------------------------
// Helpers the lab tests share

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts `transit6 ARGS` in `ns` (stopped by lab.destroy()). */
export function startTransit6(lab: Lab, ns: string, name: string, args: string[], env: Record<string, string> = {}): ManagedProcess {
  return lab.spawn(ns, name, process.execPath, [TRANSIT6, ...args], { env: { ...process.env, TRANSIT6_LOG_LEVEL: 'debug', ...env } });
}

/** `transit6 <family> show state|stats --json` in `ns`; undefined while no daemon answers. */
export async function tunnelShow(lab: Lab, ns: string, family: 'isatap' | '6to4', what: 'state' | 'stats', extra: string[] = []): Promise<Record<string, unknown> | undefined> {
  const r = await lab.exec(ns, process.execPath, [TRANSIT6, family, 'show', what, '--json', ...extra], { allowFailure: true });
  if (r.exitCode !== 0) return undefined;
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** Polls `fn` until it returns a value; on timeout throws with `what` and the logs of `procs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, procs: ManagedProcess[] = []): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) {
      const logs = procs.map((p) => `--- ${p.name} (${p.running ? 'running' : `exited ${JSON.stringify(p.exitInfo)}`}):\n${p.log().slice(-3000)}`).join('\n');
      throw new Error(`timed out waiting for ${what}\n${logs}`);
    }
    await sleep(200);
  }
}

/** A packet capture in `ns` on `iface` (classic pcap), stopped with stop(). */
export async function startCapture(lab: Lab, ns: string, iface: string, label: string): Promise<{ path: string; stop(): Promise<void> }> {
  const path = join(lab.runDir, `capture-${label}.pcap`);
  const proc = lab.spawn(ns, `dumpcap-${label}`, 'dumpcap', ['-q', '-P', '-i', iface, '-w', path]);
  await proc.waitForLog(/Capturing on/, 10_000);
  await sleep(200);
  return {
    path,
    stop: async () => {
      await sleep(300);
      await proc.stop(5000).catch(() => undefined);
    },
  };
}

export function haveCommand(cmd: string, args: string[] = ['--version']): boolean {
  // Present when it runs at all (radvd -v exits 1).
  return spawnSync(cmd, args, { encoding: 'utf8' }).error === undefined;
}

/** The bulk transfer's random bytes (tcpTransfer, port 7010) are data: without this, tshark's heuristic
 *  dissectors take some segment for Thrift or the like and report it malformed. */
export const TRANSFER_PORT = 7010;
const DECODE_AS = ['-d', `tcp.port==${TRANSFER_PORT},data`];

function tshark(args: string[]): { status: number | null; stdout: string; stderr: string } {
  if (args[0] === '-r') args = [...args.slice(0, 2), ...DECODE_AS, ...args.slice(2)];
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Problems tshark reports in a capture: malformed frames, expert errors, bad ICMPv6 checksums. */
export function decodeProblems(path: string): string[] {
  const problems: string[] = [];
  const bad = tshark(['-r', path, '-Y', '_ws.malformed || _ws.expert.severity >= "error" || icmpv6.checksum.status == 0 || ip.checksum.status == 0', '-T', 'fields', '-e', 'frame.number', '-e', 'frame.protocols', '-e', '_ws.expert.message']);
  if (bad.status !== 0) return [`tshark -r ${path}: ${bad.stderr}`];
  for (const l of bad.stdout.split('\n').filter(Boolean)) problems.push(`frame ${l}`);
  const expert = tshark(['-r', path, '-q', '-z', 'expert,error']);
  if (expert.status !== 0) return [...problems, `tshark -z expert: ${expert.stderr}`];
  if (/Errors \(/.test(expert.stdout)) problems.push(expert.stdout.trim());
  return problems;
}

/** How many frames of a capture match a display filter. */
export function countFrames(path: string, filter: string): number {
  const r = tshark(['-r', path, '-Y', filter, '-T', 'fields', '-e', 'frame.number']);
  if (r.status !== 0) throw new Error(`tshark -Y '${filter}': ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).length;
}

/** frame.protocols of every frame, e.g. "eth:ethertype:ip:ipv6:icmpv6". */
export function frameProtocols(path: string): string[] {
  const r = tshark(['-r', path, '-T', 'fields', '-e', 'frame.protocols']);
  if (r.status !== 0) throw new Error(`tshark -r ${path}: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

/**
 * Sends `megabytes` of random data over TCP from `fromNs` to `toAddr`:`port` (socat listening in `toNs`) and checks
 * it arrived intact (SHA-256). Returns the throughput in Mbit/s, for the test's diagnostics (never asserted on).
 */
export async function tcpTransfer(lab: Lab, fromNs: string, toNs: string, toAddr: string, port: number, megabytes: number): Promise<{ mbitPerS: number; ms: number; intact: boolean }> {
  const src = join(lab.runDir, `send-${port}.bin`);
  const dst = join(lab.runDir, `recv-${port}.bin`);
  const data = randomBytes(megabytes * 1024 * 1024);
  writeFileSync(src, data);
  const server = lab.spawn(toNs, `sink-${port}`, 'socat', ['-u', `TCP6-LISTEN:${port},reuseaddr`, `OPEN:${dst},creat,trunc`]);
  await sleep(300);
  const t0 = process.hrtime.bigint();
  await lab.exec(fromNs, 'socat', ['-u', `OPEN:${src}`, `TCP6:[${toAddr}]:${port}`]);
  await server.exited;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const got = readFileSync(dst);
  const hash = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
  return { mbitPerS: (data.length * 8) / 1e6 / (ms / 1000), ms, intact: got.length === data.length && hash(got) === hash(data) };
}
