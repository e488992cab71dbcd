/**
 * Interface setup through iproute2: the addresses, MTU and routes a core asks for. Only the Teredo interface is
 * ever touched, and only with the kinds of address and route a Teredo node needs (checked, so the privileged
 * helper that runs these for an unprivileged daemon cannot be talked into anything else).
 */
import { execFile } from 'node:child_process';
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

function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
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

/** Applies one command with `ip` (as root). */
export async function applyIfaceCommand(c: IfaceCommand): Promise<void> {
  const dev = c.iface;
  if (c.op === 'link') {
    const q = c.txQueueLen !== undefined ? ['txqueuelen', String(c.txQueueLen)] : [];
    await run(['link', 'set', 'dev', dev, 'up', ...(c.mtu ? ['mtu', String(c.mtu)] : []), ...q]);
    for (const a of c.addresses ?? []) await run(['-6', 'addr', 'replace', `${a.address}/${a.prefixLength}`, 'dev', dev]);
    for (const r of c.routes ?? []) await run(['-6', 'route', 'replace', `${r.prefix}/${r.prefixLength}`, 'dev', dev, ...(r.metric !== undefined ? ['metric', String(r.metric)] : [])]);
    return;
  }
  // Whatever was there goes first: an address change must not leave the old address behind.
  await run(['-6', 'route', 'flush', 'dev', dev, 'proto', 'boot']).catch(() => undefined);
  await run(['-6', 'addr', 'flush', 'dev', dev, 'scope', 'global']).catch(() => undefined);
  if (c.op === 'down') return;
  await run(['link', 'set', 'dev', dev, 'up', ...(c.mtu ? ['mtu', String(c.mtu)] : [])]);
  for (const a of c.addresses ?? []) await run(['-6', 'addr', 'replace', `${a.address}/${a.prefixLength}`, 'dev', dev, 'nodad']);
  for (const r of c.routes ?? []) await run(['-6', 'route', 'replace', `${r.prefix}/${r.prefixLength}`, 'dev', dev, ...(r.metric !== undefined ? ['metric', String(r.metric)] : [])]);
}
