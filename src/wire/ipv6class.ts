/** IPv6 address classes the cores test on every packet (RFC 4291 §2.4). */

/** ff02::1, all nodes on the link. */
export const ALL_NODES = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
/** ff02::2, all routers on the link: where a Router Solicitation goes. */
export const ALL_ROUTERS = Uint8Array.of(0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);

export function isLinkLocal(a: Uint8Array): boolean {
  return a[0] === 0xfe && (a[1]! & 0xc0) === 0x80;
}

export function isMulticast(a: Uint8Array): boolean {
  return a[0] === 0xff;
}

export function isAllRouters(a: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== ALL_ROUTERS[i]) return false;
  return true;
}

export function isAllNodes(a: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== ALL_NODES[i]) return false;
  return true;
}

/**
 * Global unicast in the sense Teredo servers and relays forward to: 2000::/3 (RFC 4291 §2.4). Unique local,
 * link-local, site-local, multicast, loopback, unspecified and IPv4-mapped addresses are not.
 */
export function isGlobalUnicastIpv6(a: Uint8Array): boolean {
  return (a[0]! & 0xe0) === 0x20;
}
