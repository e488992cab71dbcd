/**
 * One log line per state change of a core (the `state-changed` actions the driver hands to onState), saying
 * what changed and why in words an operator searches for: "qualified", "address change", "NAT type",
 * "server lost". The line's fields carry the machine-readable part (event, state, reason, mapping, address,
 * natType), so the JSON and journal forms can be filtered on them.
 */
import type { StateAction } from './driver.js';
import { formatIpv6 } from '../wire/ip.js';
import type { Level, Logger } from './log.js';

export type StateEvent = 'qualifying' | 'qualified' | 'address-change' | 'nat-type' | 'server-lost' | 'offline' | 'waking' | 'dormant' | 'state';

export interface StateLogLine {
  level: Level;
  msg: string;
  fields: Record<string, unknown>;
}

const NAT_WORDS: Record<string, string> = {
  none: 'no NAT',
  cone: 'cone NAT',
  restricted: 'restricted NAT',
  'port-restricted': 'port-restricted NAT',
  symmetric: 'symmetric NAT',
  unknown: 'unknown',
};

function text(v: unknown): string | undefined {
  if (v instanceof Uint8Array && v.length === 16) return formatIpv6(v);
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * The line for one state change. `address` is the Teredo address after it (the daemon reads it from the core's
 * status), for qualifications and address changes.
 */
export function stateChangeLine(a: StateAction, ctx: { address?: Uint8Array; server?: string } = {}): StateLogLine {
  const d = a.detail ?? {};
  const fields: Record<string, unknown> = { state: a.state, reason: a.reason };
  for (const [k, v] of Object.entries(d)) {
    const t = text(v);
    if (t !== undefined) fields[k] = t;
  }
  const address = ctx.address ? formatIpv6(ctx.address) : undefined;
  if (address && a.state === 'qualified' && a.reason !== 'nat-type') fields.address = address;
  const line = (event: StateEvent, level: Level, msg: string): StateLogLine => ({ level, msg, fields: { event, ...fields } });
  const mapping = typeof d.mapping === 'string' ? d.mapping : undefined;
  if (a.reason === 'nat-type') {
    const nat = String(d.natType ?? 'unknown');
    // 'done' only says detection ended; other notes say why it ended early.
    const note = typeof d.note === 'string' && d.note !== '' && d.note !== 'done' ? ` (${d.note})` : '';
    return line('nat-type', 'info', `NAT type: ${NAT_WORDS[nat] ?? nat}${note}`);
  }
  switch (a.state) {
    case 'qualified':
      if (a.reason === 'mapping changed') {
        const prev = text(d.previous);
        return line('address-change', 'warn', `address change: the NAT mapping changed to ${mapping ?? '?'}, new address ${address ?? '?'}${prev ? ` (was ${prev})` : ''}`);
      }
      return line('qualified', 'info', `qualified: address ${address ?? '?'}, mapping ${mapping ?? '?'}`);
    case 'offline':
      if (a.reason === 'server-lost') return line('server-lost', 'warn', `server lost: no answer to the refresh${ctx.server ? ` from ${ctx.server}` : ''}; offline, soliciting again`);
      return line('offline', 'warn', `offline: ${a.reason === 'server-unreachable' ? `the server${ctx.server ? ` ${ctx.server}` : ''} does not answer` : a.reason}`);
    case 'probe':
      if (a.reason === 'traffic') return line('waking', 'info', 'waking up: IPv6 traffic to send, qualifying');
      return line('qualifying', 'info', `qualifying${ctx.server ? ` with ${ctx.server}` : ''}`);
    case 'dormant':
      return line('dormant', 'info', `dormant: no traffic (${a.reason})`);
    default:
      return line('state', 'info', `${a.state}: ${a.reason}`);
  }
}

export function logStateChange(log: Logger, a: StateAction, ctx: { address?: Uint8Array; server?: string } = {}): void {
  const l = stateChangeLine(a, ctx);
  log[l.level](l.msg, l.fields);
}
