import { createSocket } from 'node:dgram';
import { formatIpv4, parseIpv4, type Ipv4 } from '../wire/ip.js';

/** Which local IPv4 address the kernel would use towards `to` (a connected UDP socket's source; nothing is sent). */
export function sourceAddressTowards(to: Ipv4): Promise<Ipv4> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.on('error', (e) => {
      s.close();
      reject(e);
    });
    s.connect(9, formatIpv4(to), () => {
      const a = parseIpv4(s.address().address);
      s.close();
      if (a === undefined) reject(new Error(`no local IPv4 address towards ${formatIpv4(to)}`));
      else resolve(a);
    });
  });
}
