/** Test doubles for simulator tests: tiny cores standing in for the Teredo ones being written elsewhere. */
import { ActionQueue, type Action, type Endpoint } from '../../src/core/endpoint.js';
import type { Millis } from '../../src/core/time.js';
import { parseIpv4, type Ipv4, type Ipv4Port } from '../../src/wire/ip.js';

export function ip(text: string): Ipv4 {
  const a = parseIpv4(text);
  if (a === undefined) throw new Error(`bad test address ${text}`);
  return a;
}

export function ep(text: string): Ipv4Port {
  const i = text.lastIndexOf(':');
  return { addr: ip(text.slice(0, i)), port: Number(text.slice(i + 1)) };
}

export interface Received {
  at: Millis;
  from: Ipv4Port;
  to: Ipv4Port;
  data: Uint8Array;
}

/** Answers every datagram with the same bytes, from the endpoint it arrived on (a UDP echo server). */
export class EchoCore implements Endpoint {
  readonly received: Received[] = [];
  private readonly actions = new ActionQueue();

  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    this.received.push({ at: now, from, to, data: data.slice() });
    this.actions.push({ kind: 'udp-send', local: to, remote: from, data: data.slice() });
  }
  handleIpv6(): void {}
  handleTimeout(): void {}
  pollTimeout(): Millis | undefined {
    return undefined;
  }
  poll(): Action | undefined {
    return this.actions.poll();
  }
}

/**
 * Sends `payload` to `target` at `startAt` and then every `intervalMs` (if given) until `count` probes are out;
 * records what comes back and reports state 'answered' on the first reply.
 */
export class ProbeCore implements Endpoint {
  readonly received: Received[] = [];
  sent = 0;
  private next: Millis | undefined;
  private readonly actions = new ActionQueue();

  constructor(
    private readonly target: Ipv4Port,
    private readonly opts: { startAt?: Millis; intervalMs?: number; count?: number; payload?: Uint8Array } = {},
  ) {
    this.next = opts.startAt ?? 0;
  }

  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    if (this.received.length === 0) this.actions.push({ kind: 'state-changed', state: 'answered', reason: 'reply' });
    this.received.push({ at: now, from, to, data: data.slice() });
  }
  handleIpv6(): void {}
  handleTimeout(now: Millis): void {
    if (this.next === undefined || now < this.next) return;
    this.sent++;
    this.actions.push({ kind: 'udp-send', remote: this.target, data: this.opts.payload ?? new TextEncoder().encode(`probe ${this.sent}`) });
    const more = this.opts.intervalMs !== undefined && (this.opts.count === undefined || this.sent < this.opts.count);
    this.next = more ? this.next + this.opts.intervalMs! : undefined;
  }
  pollTimeout(): Millis | undefined {
    return this.next;
  }
  poll(): Action | undefined {
    return this.actions.poll();
  }
}

/** Does nothing; for hosts that only receive (tests read `received`) or that tests drive with sendUdp. */
export class SinkCore implements Endpoint {
  readonly received: Received[] = [];
  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void {
    this.received.push({ at: now, from, to, data: data.slice() });
  }
  handleIpv6(): void {}
  handleTimeout(): void {}
  pollTimeout(): Millis | undefined {
    return undefined;
  }
  poll(): Action | undefined {
    return undefined;
  }
}
