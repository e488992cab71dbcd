/**
 * Hostile traffic for the hardening lab tests (test/lab/hostile.test.ts, faults.test.ts). Run as a program inside
 * a lab namespace: `ip netns exec NS node hostile.js '<job json>'`; prints one JSON line with what it did.
 *
 * Jobs:
 *   {"kind":"spoof4", "to":"A:P", "count":N, "srcNet":"203.0.113.128", "srcCount":128, "payload":"rs"|"hex…", "pps"?}
 *       N IPv4/UDP datagrams through a raw socket (IP_HDRINCL), each from a pseudo-random source address in
 *       srcNet..srcNet+srcCount-1 and a random port (or srcPort). payload "rs" makes Router Solicitations: half with the cone bit,
 *       half with an auth header and a random nonce.
 *   {"kind":"spoof6", "count":N, "srcPrefix":"2001:db8", "dstServer":"198.51.100.1", "mappedNet":"203.0.113.128", "pps"?}
 *       N IPv6 echo requests through a raw IPv6 socket, each from a distinct source (2001:db8:XXXX:XXXX::1, a new
 *       /64 each time) to a distinct Teredo address whose mapped address is in mappedNet/25: a relay sees N new
 *       peers from N sources.
 *   {"kind":"udp", "to":"A:P", "payloads":["hex",…], "repeat":R, "bind"?:"A"}
 *       Each payload R times from one ordinary socket (the kernel fragments oversized ones).
 *   {"kind":"qualify", "to":"A:P", "count":N, "tries":3, "timeoutMs":1000, "noAuth":K}
 *       N qualifications as a Teredo client does them (RFC 4380 §5.2.1): an RS with a fresh random nonce, answered
 *       by an RA carrying that nonce and the origin indication, up to `tries` RSs each. Then K RSs without an auth
 *       header, whose RAs must carry none (Miredo leaks another client's nonce there, report §10.2).
 *
 * Seeded (job.seed), so a run can be repeated.
 */
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { SeededRng } from '../core/rng.js';
import { buildIcmpv6Packet } from '../wire/icmpv6.js';
import { parseIpv4, parseIpv4Port, parseIpv6 as parseIpv6Text, formatIpv4Port } from '../wire/ip.js';
import { ALL_ROUTERS } from '../wire/ipv6class.js';
import { encodeTeredoAddress, encodeTeredoPacket, parseTeredoPacket } from '../wire/teredo.js';
import { buildIpv4Udp } from '../wire/udp.js';
import { loadNative } from '../io/native.js';

interface Job {
  kind: 'spoof4' | 'spoof6' | 'udp' | 'qualify';
  to?: string;
  count?: number;
  srcNet?: string;
  srcCount?: number;
  srcPort?: number;
  payload?: string;
  payloads?: string[];
  repeat?: number;
  bind?: string;
  srcPrefix?: string;
  dstServer?: string;
  mappedNet?: string;
  pps?: number;
  tries?: number;
  timeoutMs?: number;
  noAuth?: number;
  seed?: number;
}

const RS_LL = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const RS_LL_CONE = Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

function rs(opts: { cone?: boolean; nonce?: Uint8Array }): Uint8Array {
  const p = buildIcmpv6Packet(opts.cone ? RS_LL_CONE : RS_LL, ALL_ROUTERS, { type: 'router-solicitation', options: [] }, 255);
  return encodeTeredoPacket(opts.nonce ? { auth: { clientId: new Uint8Array(0), authValue: new Uint8Array(0), nonce: opts.nonce, confirmation: 0 }, ipv6: p } : { ipv6: p });
}

/** A payload: hex, or `zeros:N` (N zero bytes: an oversized datagram would not fit a command line as hex). */
function payloadBytes(text: string): Uint8Array {
  const z = /^zeros:(\d+)$/.exec(text);
  return z ? new Uint8Array(Number(z[1])) : Uint8Array.from(Buffer.from(text, 'hex'));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends `count` packets made by `make(i)` through `send`, paced to `pps` (or as fast as the socket takes them). */
async function pump(count: number, pps: number | undefined, make: (i: number) => Uint8Array, send: (b: Uint8Array) => number): Promise<{ sent: number; errors: Record<string, number>; ms: number }> {
  const t0 = Date.now();
  const errors: Record<string, number> = {};
  let sent = 0;
  const batch = 256;
  for (let i = 0; i < count; ) {
    const end = Math.min(count, i + batch);
    for (; i < end; i++) {
      const b = make(i);
      for (let spins = 0; ; spins++) {
        const r = send(b);
        if (r >= 0) {
          sent++;
          break;
        }
        if (r === -11 && spins < 1000) {
          // EAGAIN: the socket buffer is full; let it drain.
          await sleep(1);
          continue;
        }
        errors[String(-r)] = (errors[String(-r)] ?? 0) + 1;
        break;
      }
    }
    if (pps) {
      const due = t0 + (i / pps) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    } else await new Promise((r) => setImmediate(r));
  }
  return { sent, errors, ms: Date.now() - t0 };
}

async function spoof4(job: Job): Promise<unknown> {
  const native = loadNative();
  const fd = native.rawOpen(4, 255);
  const to = parseIpv4Port(job.to!)!;
  const net = parseIpv4(job.srcNet!)!;
  const n = job.srcCount ?? 128;
  const rng = new SeededRng(job.seed ?? 4380);
  const fixed = job.payload && job.payload !== 'rs' ? payloadBytes(job.payload) : undefined;
  const sources = new Set<string>();
  try {
    const r = await pump(
      job.count!,
      job.pps,
      (i) => {
        const src = (net + (rng.u32() % n)) >>> 0;
        const port = job.srcPort ?? 1024 + (rng.u32() % 64000);
        if (sources.size < 2_000_000) sources.add(`${src}:${port}`);
        const nonce = new Uint8Array(8);
        rng.fill(nonce);
        const payload = fixed ?? rs(i % 2 === 0 ? { cone: true } : { nonce });
        return buildIpv4Udp(src, port, to.addr, to.port, payload);
      },
      (b) => native.rawSend(fd, b, 0, b.length, to.addr),
    );
    return { ...r, distinctSources: sources.size };
  } finally {
    native.close(fd);
  }
}

async function spoof6(job: Job): Promise<unknown> {
  const native = loadNative();
  const fd = native.rawOpen(6, 255);
  const server = parseIpv4(job.dstServer!)!;
  const mapped = parseIpv4(job.mappedNet!)!;
  const prefix = parseIpv6Text(`${job.srcPrefix ?? '2001:db8'}::`)!;
  const rng = new SeededRng(job.seed ?? 4380);
  try {
    return await pump(
      job.count!,
      job.pps,
      (i) => {
        const src = prefix.slice();
        // A different /64 for every packet: bits 32-63 count up.
        src[4] = (i >>> 24) & 0xff;
        src[5] = (i >>> 16) & 0xff;
        src[6] = (i >>> 8) & 0xff;
        src[7] = i & 0xff;
        src[15] = 1;
        const dst = encodeTeredoAddress({ server, flags: 0, mappedAddr: (mapped + (rng.u32() % 128)) >>> 0, mappedPort: 1024 + (rng.u32() % 64000) });
        return buildIcmpv6Packet(src, dst, { type: 'echo-request', identifier: i & 0xffff, sequence: 1, data: new Uint8Array(8) });
      },
      (b) => native.rawSend(fd, b, 0, b.length, null),
    );
  } finally {
    native.close(fd);
  }
}

async function plainUdp(job: Job): Promise<unknown> {
  const to = parseIpv4Port(job.to!)!;
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, job.bind, () => r()));
  const errors: string[] = [];
  let sent = 0;
  const host = formatIpv4Port(to).split(':')[0]!;
  for (let k = 0; k < (job.repeat ?? 1); k++) {
    for (const h of job.payloads ?? []) {
      const b = payloadBytes(h);
      await new Promise<void>((r) =>
        s.send(b, to.port, host, (e) => {
          if (e) errors.push(e.message);
          else sent++;
          r();
        }),
      );
    }
  }
  s.close();
  return { sent, errors };
}

async function qualify(job: Job): Promise<unknown> {
  const to = parseIpv4Port(job.to!)!;
  const host = formatIpv4Port(to).split(':')[0]!;
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, () => r()));
  const waiting = new Map<string, (origin: string) => void>();
  let raNoAuth = 0;
  let raWithNonceForNoAuth = 0;
  let foreignNonces = 0;
  let noAuthPending = 0;
  s.on('message', (msg) => {
    const t = parseTeredoPacket(new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
    if (!t.ok) return;
    const origin = t.value.origin ? formatIpv4Port(t.value.origin) : '';
    if (!t.value.auth) {
      raNoAuth++;
      return;
    }
    const key = Buffer.from(t.value.auth.nonce).toString('hex');
    const w = waiting.get(key);
    if (w) w(origin);
    else if (noAuthPending > 0) raWithNonceForNoAuth++;
    else foreignNonces++;
  });
  const send = (b: Uint8Array): Promise<void> => new Promise((r) => s.send(b, to.port, host, () => r()));
  let succeeded = 0;
  let rsSent = 0;
  const origins = new Set<string>();
  const count = job.count ?? 100;
  for (let i = 0; i < count; i++) {
    const nonce = randomBytes(8);
    const key = nonce.toString('hex');
    let ok = false;
    for (let t = 0; t < (job.tries ?? 3) && !ok; t++) {
      const answered = new Promise<string | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), job.timeoutMs ?? 1000);
        waiting.set(key, (origin) => {
          clearTimeout(timer);
          resolve(origin);
        });
      });
      rsSent++;
      await send(rs({ nonce: Uint8Array.from(nonce) }));
      const origin = await answered;
      if (origin !== undefined) {
        ok = true;
        origins.add(origin);
      }
    }
    waiting.delete(key);
    if (ok) succeeded++;
  }
  // RSs without an auth header: their RAs must carry no nonce at all.
  // Paced under the server's per-source limit (10/s by default), after a pause that lets its bucket refill: these
  // must be answered, so that their RAs can be checked.
  noAuthPending = job.noAuth ?? 0;
  await sleep(2000);
  for (let i = 0; i < (job.noAuth ?? 0); i++) {
    await send(rs({}));
    await sleep(200);
  }
  await sleep(job.timeoutMs ?? 1000);
  s.close();
  return { count, succeeded, rsSent, origins: [...origins], raNoAuth, raWithNonceForNoAuth, foreignNonces };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '{}') as Job;
  const run = { spoof4, spoof6, udp: plainUdp, qualify }[job.kind];
  if (!run) {
    console.error(`hostile: unknown job kind '${String(job.kind)}' (spoof4, spoof6, udp, qualify)`);
    process.exit(2);
  }
  console.log(JSON.stringify(await run(job)));
}

main().catch((e: unknown) => {
  console.error(`hostile: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
