/** Loopback helpers for the PortProxy tests and benchmark: free ports, backends, clients. */
import { createServer, connect, type Server, type Socket, type AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

/** A port nobody listens on right now (bound and released; the kernel does not hand it out again at once). */
export async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ host, port: 0, ipv6Only: host.includes(':') }, () => resolve());
  });
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Backend {
  server: Server;
  port: number;
  /** Remote addresses of the connections it accepted, in order. */
  peers: string[];
  close(): Promise<void>;
}

/** Starts a TCP server on host:0 whose connections are handed to `onConn`. allowHalfOpen, so that tests see FINs. */
export async function backend(host: string, onConn: (s: Socket) => void): Promise<Backend> {
  const peers: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    peers.push(s.remoteAddress ?? '');
    onConn(s);
  });
  await new Promise<void>((resolve) => server.listen({ host, port: 0, ipv6Only: host.includes(':') }, () => resolve()));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    peers,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Echoes everything and ends its side once the client has ended its own (the half-close test). */
export const echo = (s: Socket): void => {
  s.pipe(s);
};

/** Connects, resolves once connected. */
export function dial(host: string, port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, allowHalfOpen: opts.allowHalfOpen ?? true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** Reads a socket to its end, then ends our side: all bytes, and whether it ended with a FIN ('end') or an error. */
export function readAll(s: Socket): Promise<{ data: Buffer; ended: boolean; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    let error: string | undefined;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => {
      ended = true;
      // Nothing more to read: our side is done too (the socket closes once both sides have ended).
      s.end();
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    s.once('close', () => resolve({ data: Buffer.concat(chunks), ended, ...(error ? { error } : {}) }));
  });
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export function payload(n: number): Buffer {
  return randomBytes(n);
}

/** Waits until `cond()` holds (polling), or throws after `ms` naming `what`. */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Connects and reads to the end; a reset during or after the handshake shows as error 'ECONNRESET'. */
export async function dialAndRead(host: string, port: number): Promise<{ data: Buffer; ended: boolean; error?: string }> {
  let s: Socket;
  try {
    s = await dial(host, port);
  } catch (e) {
    return { data: Buffer.alloc(0), ended: false, error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
  return readAll(s);
}
