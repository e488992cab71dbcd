/**
 * The shape every protocol core has (DESIGN.md "handle and poll"): inputs carry the time, outputs are actions
 * drained with poll(), and pollTimeout() names the one deadline the driver must re-arm.
 */
import type { Millis } from './time.js';
import type { Ipv4Port } from '../wire/ip.js';

export type Action =
  /** Send a UDP datagram. `local` picks the local address/socket (a server has two); absent means the only one. */
  | { kind: 'udp-send'; local?: Ipv4Port; remote: Ipv4Port; data: Uint8Array }
  /** Open, or close, another local UDP port (RFC 6081 random ports): datagrams to it reach handleDatagram too. */
  | { kind: 'udp-open'; local: Ipv4Port }
  | { kind: 'udp-close'; local: Ipv4Port }
  /** Hand an IPv6 packet up to the local stack (the TUN device). */
  | { kind: 'ipv6-deliver'; packet: Uint8Array }
  /** Send an IPv6 packet out natively (server raw socket, relay's IPv6 side). */
  | { kind: 'ipv6-forward'; packet: Uint8Array }
  /** Configure the tunnel interface: addresses, MTU, routes. Carried out by a privileged adapter. */
  | { kind: 'iface-up'; addresses: { address: Uint8Array; prefixLength: number }[]; mtu: number; routes: { prefix: Uint8Array; prefixLength: number; metric?: number }[] }
  | { kind: 'iface-down'; reason: string }
  /** The core's externally visible state changed (qualified, offline, address change ...). */
  | { kind: 'state-changed'; state: string; reason: string; detail?: Record<string, unknown> };

export interface Endpoint {
  /** A UDP datagram arrived from `from` on the local endpoint `to`. The bytes are borrowed. */
  handleDatagram(now: Millis, from: Ipv4Port, to: Ipv4Port, data: Uint8Array): void;
  /** An IPv6 packet arrived from the tunnel (or native side). The bytes are borrowed. */
  handleIpv6(now: Millis, packet: Uint8Array): void;
  handleTimeout(now: Millis): void;
  /** The earliest deadline, or undefined when nothing is pending. */
  pollTimeout(): Millis | undefined;
  poll(): Action | undefined;
}

/** A FIFO with an O(1) poll: the cores' action queues. */
export class FifoQueue<T> {
  private items: T[] = [];
  private head = 0;

  push(a: T): void {
    this.items.push(a);
  }

  poll(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const a = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return a;
  }

  get length(): number {
    return this.items.length - this.head;
  }
}

/** The Teredo cores' queue of actions. */
export class ActionQueue extends FifoQueue<Action> {}
