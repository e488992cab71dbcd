/**
 * The programs the PortProxy lab runs inside its namespaces (node dist/test/lab/portproxy-agent.js <role> ...):
 *
 *   echo HOST PORT              echo server (half-close aware); logs "conn <remote address>" per connection
 *   tag HOST PORT TEXT          answers TEXT and closes
 *   bulk HOST PORT MIB          sends MIB MiB of a repeating pattern on each connection, then ends
 *   send HOST PORT BYTES [MS]   sends BYTES random bytes (in 64 KiB pieces every MS ms, default at once), half-closes,
 *                               reads the echo; prints {sent, received, sameHash, ended}
 *   get HOST PORT               reads to the end; prints {received}
 *   slowread HOST PORT MS       connects, reads nothing for MS ms (prints "stalled"), then reads to the end;
 *                               prints {received, patternOk}
 */
import { connect, createServer, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const [role, host, portText, arg, arg2] = process.argv.slice(2);
const port = Number(portText);
const out = (o: unknown): void => void process.stdout.write(`${typeof o === 'string' ? o : JSON.stringify(o)}\n`);

function listen(onConn: (s: Socket) => void): void {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    out(`conn ${s.remoteAddress}`);
    onConn(s);
  });
  server.listen({ host, port, ipv6Only: host!.includes(':') }, () => out(`listening ${host} ${port}`));
}

const PATTERN = Buffer.alloc(1 << 20);
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = i % 251;

function dial(): Socket {
  const s = connect({ host: host!, port, allowHalfOpen: true });
  s.on('error', (e: NodeJS.ErrnoException) => {
    out({ error: e.code ?? e.message });
    process.exit(1);
  });
  return s;
}

switch (role) {
  case 'echo':
    listen((s) => s.pipe(s));
    break;
  case 'tag':
    listen((s) => s.end(arg));
    break;
  case 'bulk': {
    const total = Number(arg) << 20;
    listen((s) => {
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += PATTERN.length;
          if (!s.write(PATTERN)) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
    break;
  }
  case 'send': {
    const total = Number(arg);
    const gapMs = Number(arg2 ?? 0);
    const data = randomBytes(total);
    const s = dial();
    const hin = createHash('sha256');
    let received = 0;
    let ended = false;
    s.on('data', (d: Buffer) => {
      received += d.length;
      hin.update(d);
    });
    s.on('end', () => {
      ended = true;
      s.end();
    });
    s.on('close', () => out({ sent: total, received, sameHash: hin.digest('hex') === createHash('sha256').update(data).digest('hex'), ended }));
    s.once('connect', async () => {
      for (let off = 0; off < total; off += 65536) {
        s.write(data.subarray(off, Math.min(total, off + 65536)));
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
      s.end();
    });
    break;
  }
  case 'get': {
    const s = dial();
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => s.end());
    s.on('close', () => out({ received: Buffer.concat(chunks).toString() }));
    break;
  }
  case 'slowread': {
    const s = dial();
    s.pause();
    let received = 0;
    let patternOk = true;
    s.once('connect', () => {
      setTimeout(() => {
        out('stalled-done');
        s.on('data', (d: Buffer) => {
          for (let i = 0; i < d.length; i += 4093) if (d[i] !== (received + i) % (1 << 20) % 251) patternOk = false;
          received += d.length;
        });
        s.on('end', () => s.end());
        s.on('close', () => out({ received, patternOk }));
        s.resume();
      }, Number(arg));
      out('stalled');
    });
    break;
  }
  default:
    out(`unknown role ${role}`);
    process.exit(2);
}
