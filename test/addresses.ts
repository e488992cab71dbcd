/** Address text to the forms the cores use, for tests: a typo in a test address fails loudly. */
import { parseIpv4, parseIpv6, type Ipv4 } from '../src/wire/ip.js';

export function v4(text: string): Ipv4 {
  const a = parseIpv4(text);
  if (a === undefined) throw new Error(`bad IPv4 in test: ${text}`);
  return a;
}

export function v6(text: string): Uint8Array {
  const a = parseIpv6(text);
  if (!a) throw new Error(`bad IPv6 in test: ${text}`);
  return a;
}
