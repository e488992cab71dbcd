/**
 * A tiny UDP probe for checking NAT behaviour inside the lab (the method of the report's natcheck, §5). Run as a
 * program inside a namespace: `ip netns exec NS node udp-probe.js <mode> …`. Only node:dgram, no dependencies.
 *
 *   reflect ADDR:PORT…    For each endpoint, bind PORT and PORT+1 on ADDR. A datagram to PORT is answered from PORT
 *                         with the source it was seen from; if it asks {"alt":true}, a second answer goes from PORT+1
 *                         (a port the client never sent to). Prints {"event":"ready"} once bound, then one
 *                         {"event":"rx"} line per datagram. Runs until SIGTERM.
 *   client --to A:P[,B:Q…] [--bind ADDR:PORT] [--alt] [--wait MS] [--tries N]
 *                         One socket sends {"id":i,"alt":…} to each target (re-sent every 200 ms while unanswered,
 *                         at most N times), collects every datagram for MS milliseconds, prints one JSON result:
 *                         {"local":"addr:port","replies":[{"from","id","seen","alt"}],"other":[{"from","text"}]}.
 */
import { createSocket, type Socket } from 'node:dgram';

interface Endpoint {
  addr: string;
  port: number;
}

function parseEndpoint(s: string): Endpoint {
  const i = s.lastIndexOf(':');
  const addr = s.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad endpoint '${s}' (want ADDR:PORT)`);
  return { addr, port };
}

const fmt = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

function bind(addr: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4', reuseAddr: false });
    s.once('error', reject);
    s.bind(port, addr, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

function out(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function reflect(args: string[]): Promise<void> {
  if (args.length === 0) throw new Error('reflect: give at least one ADDR:PORT');
  const sockets: Socket[] = [];
  for (const a of args) {
    const ep = parseEndpoint(a);
    const main = await bind(ep.addr, ep.port);
    const alt = await bind(ep.addr, main.address().port + 1);
    const by = fmt(ep.addr, main.address().port);
    main.on('message', (msg, rinfo) => {
      let req: { id?: unknown; alt?: unknown } = {};
      try {
        req = JSON.parse(msg.toString('utf8')) as typeof req;
      } catch {
        // not ours: still answered, so that any sender learns its mapping
      }
      const seen = fmt(rinfo.address, rinfo.port);
      out({ event: 'rx', by, from: seen, id: req.id ?? null });
      main.send(JSON.stringify({ id: req.id ?? null, seen, by, alt: false }), rinfo.port, rinfo.address);
      if (req.alt === true) alt.send(JSON.stringify({ id: req.id ?? null, seen, by, alt: true }), rinfo.port, rinfo.address);
    });
    sockets.push(main, alt);
  }
  out({ event: 'ready', endpoints: args });
  const stop = (): void => {
    for (const s of sockets) s.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

interface Reply {
  from: string;
  id: number | null;
  seen: string;
  by: string;
  alt: boolean;
}

async function client(args: string[]): Promise<void> {
  let to: Endpoint[] = [];
  let bindEp: Endpoint = { addr: '0.0.0.0', port: 0 };
  let alt = false;
  let waitMs = 500;
  let tries = 5;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const val = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`client: ${a} needs a value`);
      return v;
    };
    if (a === '--to') to = val().split(',').map(parseEndpoint);
    else if (a === '--bind') bindEp = parseEndpoint(val());
    else if (a === '--alt') alt = true;
    else if (a === '--wait') waitMs = Number(val());
    else if (a === '--tries') tries = Number(val());
    else throw new Error(`client: unknown option '${a}'`);
  }
  if (to.length === 0) throw new Error('client: --to A:P[,B:Q…] is required');
  const sock = await bind(bindEp.addr, bindEp.port);
  const local = sock.address();
  const replies: Reply[] = [];
  const other: { from: string; text: string }[] = [];
  const answered = new Set<number>();
  sock.on('message', (msg, rinfo) => {
    const from = fmt(rinfo.address, rinfo.port);
    const text = msg.toString('utf8');
    try {
      const r = JSON.parse(text) as Omit<Reply, 'from'>;
      if (typeof r.seen === 'string') {
        replies.push({ from, id: r.id, seen: r.seen, by: r.by, alt: r.alt === true });
        if (typeof r.id === 'number' && !r.alt) answered.add(r.id);
        return;
      }
    } catch {
      // falls through to 'other'
    }
    other.push({ from, text });
  });
  const sendAll = (): void => {
    to.forEach((t, id) => {
      if (!answered.has(id)) sock.send(JSON.stringify({ id, alt }), t.port, t.addr);
    });
  };
  sendAll();
  let sent = 1;
  const timer = setInterval(() => {
    if (sent >= tries || answered.size === to.length) return;
    sent++;
    sendAll();
  }, 200);
  await new Promise((r) => setTimeout(r, waitMs));
  clearInterval(timer);
  sock.close();
  out({ local: fmt(local.address, local.port), replies, other });
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  if (mode === 'reflect') await reflect(rest);
  else if (mode === 'client') await client(rest);
  else throw new Error(`usage: udp-probe reflect ADDR:PORT… | client --to A:P[,B:Q…] [--bind ADDR:PORT] [--alt] [--wait MS] [--tries N]`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`udp-probe: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
