/**
 * Interface setup through iproute2: the addresses, MTU and routes a core asks for. Only the Teredo interface is
 * ever touched, and only with the kinds of address and route a Teredo node needs (checked, so the privileged
 * helper that runs these for an unprivileged daemon cannot be talked into anything else).
 */
import { spawn } from 'node:child_process';
import { formatIpv6 } from '../wire/ip.js';
import type { IfaceAction } from './driver.js';

export interface IfaceCommand {
  op: 'up' | 'down' | 'link';
  iface: string;
  mtu?: number;
  /** op 'link': the device's transmit queue (packets the kernel holds for our reader), `ip link … txqueuelen`. */
  txQueueLen?: number;
  addresses?: { address: string; prefixLength: number }[];
  routes?: { prefix: string; prefixLength: number; metric?: number }[];
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** A name the helper may be bound to and ip's batch parser reads as one word. */
export function validInterfaceName(name: string): boolean {
  return IFNAME.test(name);
}

/** One `ip` command line for batch mode (family -6 is given to ip itself), and whether its failure is harmless. */
interface IpLine {
  line: string;
  mayFail?: boolean;
}

/**
 * Runs the lines with one `ip -6 -force -batch -` (one process, not one per line: a client's address change is six
 * commands, and each spawn cost as much as qualifying). -force goes on after a failed line; ip names each failure
 * as "Command failed -:N", so a failure of a line that may fail is ignored and any other rejects with ip's words.
 */
export function runIpBatch(lines: readonly IpLine[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-6', '-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`ip: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const failed = [...stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1]));
      const real = failed.filter((n) => lines[n - 1]?.mayFail !== true);
      if (code === 1 && failed.length > 0 && real.length === 0) return resolve();
      const what = real.length > 0 ? real.map((n) => `ip -6 ${lines[n - 1]?.line ?? `line ${n}`}`).join('; ') : `ip -6 -batch (${signal ?? `exit ${String(code)}`})`;
      const why = stderr.replace(/Command failed -:\d+\n?/g, '').trim();
      reject(new Error(`${what}: ${why || 'failed'}`));
    });
    child.stdin!.on('error', () => undefined); // ip gone early: its exit status says why
    child.stdin!.end(lines.map((l) => `${l.line}\n`).join(''));
  });
}

/** The ip lines that carry out a command (see applyIfaceCommand). */
export function ifaceLines(c: IfaceCommand): IpLine[] {
  const dev = c.iface;
  const lines: IpLine[] = [];
  const mtu = c.mtu ? ` mtu ${c.mtu}` : '';
  const route = (r: NonNullable<IfaceCommand['routes']>[number]): IpLine => ({ line: `route replace ${r.prefix}/${r.prefixLength} dev ${dev}${r.metric !== undefined ? ` metric ${r.metric}` : ''}` });
  if (c.op === 'link') {
    lines.push({ line: `link set dev ${dev} up${mtu}${c.txQueueLen !== undefined ? ` txqueuelen ${c.txQueueLen}` : ''}` });
    for (const a of c.addresses ?? []) lines.push({ line: `addr replace ${a.address}/${a.prefixLength} dev ${dev}` });
    for (const r of c.routes ?? []) lines.push(route(r));
    return lines;
  }
  // Whatever was there goes first: an address change must not leave the old address behind.
  lines.push({ line: `route flush dev ${dev} proto boot`, mayFail: true }, { line: `addr flush dev ${dev} scope global`, mayFail: true });
  if (c.op === 'down') return lines;
  lines.push({ line: `link set dev ${dev} up${mtu}` });
  for (const a of c.addresses ?? []) lines.push({ line: `addr replace ${a.address}/${a.prefixLength} dev ${dev} nodad` });
  for (const r of c.routes ?? []) lines.push(route(r));
  return lines;
}

/** The action as plain data (for the helper's pipe). */
export function toIfaceCommand(iface: string, a: IfaceAction): IfaceCommand {
  if (a.kind === 'iface-down') return { op: 'down', iface };
  return {
    op: 'up',
    iface,
    mtu: a.mtu,
    addresses: a.addresses.map((x) => ({ address: formatIpv6(x.address), prefixLength: x.prefixLength })),
    routes: a.routes.map((r) => ({ prefix: formatIpv6(r.prefix), prefixLength: r.prefixLength, ...(r.metric !== undefined ? { metric: r.metric } : {}) })),
  };
}

/** Refuses anything a Teredo interface does not need. */
export function validateIfaceCommand(c: IfaceCommand, allowedIface: string): string | undefined {
  if (c.iface !== allowedIface || !IFNAME.test(c.iface)) return `interface ${String(c.iface)} is not ours`;
  if (c.mtu !== undefined && (!Number.isInteger(c.mtu) || c.mtu < 1280 || c.mtu > 65535)) return `bad MTU ${c.mtu}`;
  if (c.txQueueLen !== undefined) return 'the transmit queue is set once, at start';
  for (const a of c.addresses ?? []) {
    const teredo = /^2001:0?:/.test(a.address) && a.prefixLength === 32;
    const linkLocal = /^fe80:/.test(a.address) && a.prefixLength === 64;
    if (!teredo && !linkLocal) return `address ${a.address}/${a.prefixLength} is not a Teredo address`;
  }
  for (const r of c.routes ?? []) {
    const ok = (r.prefix === '::' && r.prefixLength === 0) || (r.prefix === '2001::' && r.prefixLength === 32);
    if (!ok) return `route ${r.prefix}/${r.prefixLength} is not a Teredo route`;
    if (r.metric !== undefined && (!Number.isInteger(r.metric) || r.metric < 0 || r.metric > 0xffffffff)) return `bad metric ${r.metric}`;
  }
  return undefined;
}

/** Applies one command with `ip` (as root), in one batch. */
export function applyIfaceCommand(c: IfaceCommand): Promise<void> {
  // A name is one word to ip's batch parser (the kernel refuses whitespace in names; this keeps it so here too).
  if (!validInterfaceName(c.iface)) return Promise.reject(new Error(`interface name ${JSON.stringify(c.iface)} is not one ip can be given`));
  return runIpBatch(ifaceLines(c));
}
