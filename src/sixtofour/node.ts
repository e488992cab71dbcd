/**
 * 6to4 (RFC 3056) host/router and relay router, over protocol 41.
 *
 * host / router  every public IPv4 address w.x.y.z gives 2002:WWXX:YYZZ::WWXX:YYZZ (the white paper's host form); a
 *                router also serves 2002:WWXX:YYZZ:<subnet>::/64 on a LAN (the adapter sets that up). 2002::/16 goes
 *                straight to the IPv4 address it embeds; everything else goes to the relay given with --relay
 *                (192.88.99.1, RFC 3068's anycast relay, only when asked for, since RFC 7526 deprecates it).
 * relay          serves 2002::/16 towards native IPv6: decapsulated packets go up to the kernel, which routes them
 *                out natively; native packets the kernel routes into the tunnel go to the embedded IPv4 address.
 *
 * Ingress checks (RFC 3056 §9, RFC 3964 §5.2/§5.3), each drop counted by reason: the outer source must be a
 * public unicast address; an inner 2002:: source must embed a public address, and the outer source unless the
 * packet came from a relay (the configured one; any sender for native sources on a host/router, since return
 * traffic comes from whichever relay is nearest the native sender); inner destinations must be ours (host/router)
 * or native (relay: no 6to4-to-6to4 forwarding and no native-to-native).
 */
import { Counters } from '../core/counters.js';
import type { Millis } from '../core/time.js';
import { formatIpv4, formatIpv6, isGlobalIpv4, type Ipv4 } from '../wire/ip.js';
import { isSixToFourAddress, sixToFourAddress, sixToFourRefusal, SIXTOFOUR_RELAY_ANYCAST } from '../wire/sixtofour.js';
import { checkOutgoing, decapsulate, isMulticastIpv6, usableIpv4Destination, TunnelQueue, type TunnelAction, type TunnelCore, type TunnelRoute } from '../isatap/tunnel.js';

export type SixToFourMode = 'host' | 'router' | 'relay';

export interface SixToFourConfig {
  mode: SixToFourMode;
  /** The public IPv4 addresses this node is reachable at (each checked with sixToFourRefusal). */
  locals: Ipv4[];
  /** host/router: where native (non-2002::/16) destinations go. */
  relay?: Ipv4;
  /**
   * host/router: take native-sourced packets only from `relay` (RFC 3964 §5.3's stricter choice; return traffic
   * through another relay is then lost). Default: from any public sender.
   */
  strictRelay?: boolean;
  /** router: the LAN subnet (SLA ID) of 2002:WWXX:YYZZ:<subnet>::/64, for status output. */
  subnet?: number;
  mtu?: number;
}

export class SixToFour implements TunnelCore {
  readonly events = new Counters();
  readonly drops = new Counters();
  private readonly queue = new TunnelQueue();
  private readonly locals: Set<Ipv4>;
  private started = false;

  constructor(private readonly config: SixToFourConfig) {
    if (config.locals.length === 0) throw new RangeError('6to4 needs at least one public IPv4 address');
    for (const a of config.locals) {
      const why = sixToFourRefusal(a);
      if (why) throw new RangeError(why);
    }
    if (config.relay !== undefined && config.mode === 'relay') throw new RangeError('a relay has no relay of its own');
    this.locals = new Set(config.locals);
  }

  /** The addresses of the tunnel interface: 2002:WWXX:YYZZ::WWXX:YYZZ for each local IPv4. */
  addresses(): Uint8Array[] {
    return this.config.locals.map((a) => sixToFourAddress(a, 0, 'ipv4'));
  }

  start(_now: Millis): void {
    if (this.started) return;
    this.started = true;
    const routes: TunnelRoute[] = [{ prefix: Uint8Array.of(0x20, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), prefixLength: 16 }];
    // The white paper's default route "with the next-hop address of the 6to4 relay": its 6to4 address, in RFC
    // 3068's form 2002:WWXX:YYZZ:: (the core sends to the relay's IPv4 address whatever the route says).
    if (this.config.mode !== 'relay' && this.config.relay !== undefined) routes.push({ prefix: new Uint8Array(16), prefixLength: 0, metric: 1024, via: sixToFourAddress(this.config.relay) });
    this.queue.push({
      kind: 'iface-up',
      // A /16 on the address: the whole of 2002::/16 is reachable through this interface (RFC 3056 §5.1).
      addresses: this.addresses().map((address) => ({ address, prefixLength: 16 })),
      mtu: this.config.mtu ?? 1280,
      routes,
    });
    this.queue.push({ kind: 'state-changed', state: 'up', reason: 'started', detail: { mode: this.config.mode, addresses: this.addresses().map(formatIpv6) } });
  }

  handleIpv4(_now: Millis, packet: Uint8Array): void {
    const d = decapsulate(packet, this.drops);
    if (!d) return;
    if (!this.locals.has(d.dst)) {
      this.drops.inc('wrong-ipv4-destination');
      return;
    }
    // RFC 3964 §5.2: the encapsulating source must be a public unicast address.
    if (!isGlobalIpv4(d.src)) {
      this.drops.inc('outer-source-not-public');
      return;
    }
    const inner = d.inner;
    const src = inner.subarray(8, 24);
    const dst = inner.subarray(24, 40);
    if (isMulticastIpv6(src) || src.every((b) => b === 0) || (src.subarray(0, 15).every((b) => b === 0) && src[15] === 1)) {
      this.drops.inc('inner-source-invalid');
      return;
    }
    const fromRelay = this.config.relay !== undefined && d.src === this.config.relay;
    if (isSixToFourAddress(src)) {
      const embedded = ((src[2]! << 24) | (src[3]! << 16) | (src[4]! << 8) | src[5]!) >>> 0;
      if (sixToFourRefusal(embedded)) {
        // RFC 3964 §5.3: a 6to4 source built from a private, loopback, multicast... IPv4 address.
        this.drops.inc('inner-source-bad-ipv4');
        return;
      }
      // RFC 3056 §9: the outer source must be the IPv4 address embedded in a 6to4 source, unless a relay sent it.
      if (embedded !== d.src && !fromRelay) {
        this.drops.inc('source-ipv4-mismatch');
        return;
      }
    } else if (this.config.mode === 'relay') {
      // A native source arriving encapsulated at a relay: a spoof or a loop (RFC 3964 §5.3).
      this.drops.inc('native-source-to-relay');
      return;
    } else if (this.config.strictRelay && !fromRelay) {
      this.drops.inc('native-source-not-from-relay');
      return;
    } else {
      this.events.inc('rx-native-via-relay');
    }
    if (this.config.mode === 'relay') {
      // Towards native IPv6 only (RFC 3964 §5.3: no 6to4-to-6to4 through a relay).
      if (isSixToFourAddress(dst)) {
        this.drops.inc('relay-6to4-to-6to4');
        return;
      }
    } else if (!this.isOurs(dst)) {
      // Not an open relay: only our own 2002:WWXX:YYZZ::/48 (and link-local/multicast the kernel may want).
      this.drops.inc('not-our-prefix');
      return;
    }
    this.events.inc('rx-packets');
    this.queue.push({ kind: 'ipv6-deliver', packet: inner });
  }

  handleIpv6(_now: Millis, packet: Uint8Array): void {
    if (!checkOutgoing(packet, this.drops)) return;
    const dst = packet.subarray(24, 40);
    if (isMulticastIpv6(dst)) {
      this.drops.inc('multicast');
      return;
    }
    const src = packet.subarray(8, 24);
    const from = this.outerSource(src);
    let to: Ipv4;
    if (isSixToFourAddress(dst)) {
      to = ((dst[2]! << 24) | (dst[3]! << 16) | (dst[4]! << 8) | dst[5]!) >>> 0;
      if (this.locals.has(to)) {
        // Our own /48, routed here: a subnet the LAN does not have; sending it to ourselves would loop.
        this.drops.inc('own-prefix-unrouted');
        return;
      }
      if (sixToFourRefusal(to) || !usableIpv4Destination(to)) {
        this.drops.inc('bad-6to4-destination');
        return;
      }
      this.events.inc('tx-direct');
    } else if (this.config.mode === 'relay') {
      this.drops.inc('relay-native-to-native');
      return;
    } else if (this.config.relay === undefined) {
      this.drops.inc('no-relay');
      return;
    } else {
      to = this.config.relay;
      this.events.inc('tx-via-relay');
    }
    this.queue.push({ kind: 'ipv4-send', src: from, dst: to, packet });
  }

  handleResolved(): void {
    // The relay name is resolved once by the adapter before the core starts.
  }

  handleTimeout(): void {
    // No timers: 6to4 is stateless.
  }

  pollTimeout(): Millis | undefined {
    return undefined;
  }

  poll(): TunnelAction | undefined {
    return this.queue.poll();
  }

  /** The local IPv4 a 6to4 source names, or the first one (native sources, relay replies). */
  private outerSource(src: Uint8Array): Ipv4 {
    if (isSixToFourAddress(src)) {
      const a = ((src[2]! << 24) | (src[3]! << 16) | (src[4]! << 8) | src[5]!) >>> 0;
      if (this.locals.has(a)) return a;
    }
    return this.config.locals[0]!;
  }

  private isOurs(dst: Uint8Array): boolean {
    if (!isSixToFourAddress(dst)) return false;
    const a = ((dst[2]! << 24) | (dst[3]! << 16) | (dst[4]! << 8) | dst[5]!) >>> 0;
    return this.locals.has(a);
  }

  status(_now: Millis): Record<string, unknown> {
    return {
      role: `6to4-${this.config.mode}`,
      state: 'up',
      mode: this.config.mode,
      locals: this.config.locals.map(formatIpv4),
      addresses: this.addresses().map(formatIpv6),
      sitePrefixes: this.config.locals.map((a) => `${formatIpv6(sixToFourAddress(a))}/48`),
      ...(this.config.mode === 'router' && this.config.subnet !== undefined ? { lanPrefix: `${formatIpv6(sixToFourAddress(this.config.locals[0]!, this.config.subnet))}/64` } : {}),
      relay: this.config.relay !== undefined ? formatIpv4(this.config.relay) : null,
      relayIsAnycast: this.config.relay === SIXTOFOUR_RELAY_ANYCAST,
      nativeSourcesFrom: this.config.mode === 'relay' ? null : this.config.strictRelay ? 'the relay only' : 'any public sender',
      mtu: this.config.mtu ?? 1280,
      events: this.events.snapshot(),
      drops: this.drops.snapshot(),
    };
  }
}
