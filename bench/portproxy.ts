/**
 * PortProxy benchmark: transit6 portproxy, 6tunnel and socat side by side in one run, over loopback (127.0.0.1
 * and ::1 of the namespace it runs in; no root needed), in each mode.
 *
 *   npm run bench:portproxy -- [--runs N] [--duration S] [--concurrency C] [--modes v4tov6,...] [--impls ...] [--json FILE]
 *
 * For every run, implementation (order rotates between runs) and mode:
 *   - throughput: iperf3 -c through the proxy to an `iperf3 -s -1` behind it, one TCP stream for S seconds;
 *     Gbit/s as received by the server (end.sum_received);
 *   - new connections/s: a Node load generator (a child process of this script) runs C loops of connect, send
 *     one byte, read the echo, close, for S seconds, to a Node echo server (another child) behind the proxy.
 * The load generator, the echo server and iperf3 are the same for every proxy, so the ratios compare the proxies.
 * The proxies: `transit6 portproxy run` (one daemon, one rule per mode and test), `6tunnel -d` (one process per
 * rule; -6 listens on IPv6, -4 connects to IPv4, as its man page says) and `socat TCPx-LISTEN:…,fork TCPy:…` (one
 * process per rule, forking per connection, as socat does).
 *
 * Prints a table of medians over the runs with transit6/6tunnel and transit6/socat, and writes every run's
 * numbers as JSON (default bench/results/portproxy-<time>.json). Other work on the machine shares the CPU: say so
 * when quoting numbers.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

type Mode = 'v4tov4' | 'v4tov6' | 'v6tov4' | 'v6tov6';
type Impl = 'transit6' | '6tunnel' | 'socat';
const MODES: Mode[] = ['v4tov4', 'v4tov6', 'v6tov4', 'v6tov6'];
const IMPLS: Impl[] = ['transit6', '6tunnel', 'socat'];
const LOOP = { 4: '127.0.0.1', 6: '::1' } as const;
const lf = (m: Mode): 4 | 6 => (m.startsWith('v4') ? 4 : 6);
const cf = (m: Mode): 4 | 6 => (m.endsWith('v4') ? 4 : 6);

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const MAIN = join(REPO, 'dist', 'src', 'cli', 'main.js');
const SELF = fileURLToPath(import.meta.url);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const say = (s: string): void => void process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------------------------
// Worker modes (child processes): echo server, connection-rate generator

async function echoWorker(host: string): Promise<void> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen({ host, port: 0, ipv6Only: host.includes(':'), backlog: 4096 }, () => r()));
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
}

async function connRateWorker(host: string, port: number, seconds: number, concurrency: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  let failed = 0;
  const one = (): Promise<void> =>
    new Promise((resolveOne) => {
      const s: Socket = connect({ host, port });
      let ok = false;
      s.setNoDelay(true);
      s.once('connect', () => s.write('x'));
      s.once('data', () => {
        ok = true;
        s.end();
      });
      s.on('error', () => undefined);
      s.once('close', () => {
        if (ok) done++;
        else failed++;
        resolveOne();
      });
    });
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const secs = (Date.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ connections: done, failed, seconds: secs, perSecond: done / secs })}\n`);
}

// ---------------------------------------------------------------------------------------------------------------

/** A free port below the ephemeral range (32768-60999 on Linux): the load generator's thousands of short
 *  connections take ephemeral ports, and a listener must not collide with one of them. */
async function freePort(host: string): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen({ host, port, ipv6Only: host.includes(':') }, () => r(true));
    });
    if (ok) {
      await new Promise((r) => s.close(r));
      return port;
    }
  }
}

async function waitListening(host: string, port: number, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port}`);
    await sleep(50);
  }
}

function startChild(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  c.on('error', () => undefined);
  c.stderr!.on('data', () => undefined);
  return c;
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 2000);
  await gone;
  clearTimeout(t);
}

function firstLine(c: ChildProcess): Promise<string> {
  return new Promise((r, j) => {
    let buf = '';
    c.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) r(buf.slice(0, i));
    });
    c.once('exit', (code) => j(new Error(`child exited (${code}) before answering`)));
  });
}

interface Rule {
  mode: Mode;
  listenPort: number;
  targetPort: number;
}

/** Starts `impl` for the given rules; returns the processes to stop. */
async function startProxy(impl: Impl, rules: Rule[], dir: string): Promise<ChildProcess[]> {
  if (impl === 'transit6') {
    const conf = join(dir, 'portproxy.conf');
    writeFileSync(conf, rules.map((r) => `${r.mode} listenport=${r.listenPort} listenaddress=${LOOP[lf(r.mode)]} connectaddress=${LOOP[cf(r.mode)]} connectport=${r.targetPort}\n`).join(''));
    return [startChild(process.execPath, [MAIN, 'portproxy', 'run', '--config', conf, '--control', join(dir, 'control.sock'), '--log-level', 'warn'])];
  }
  return rules.map((r) => {
    if (impl === '6tunnel') {
      const flags = [...(lf(r.mode) === 6 ? ['-6'] : []), ...(cf(r.mode) === 4 ? ['-4'] : [])];
      return startChild('6tunnel', ['-d', ...flags, '-l', LOOP[lf(r.mode)], String(r.listenPort), LOOP[cf(r.mode)], String(r.targetPort)]);
    }
    const listen = `TCP${lf(r.mode)}-LISTEN:${r.listenPort},bind=${lf(r.mode) === 6 ? '[::1]' : '127.0.0.1'},reuseaddr,fork,backlog=1024`;
    const target = `TCP${cf(r.mode)}:${cf(r.mode) === 6 ? '[::1]' : '127.0.0.1'}:${r.targetPort}`;
    return startChild('socat', [listen, target]);
  });
}

async function iperf(mode: Mode, listenPort: number, serverPort: number, seconds: number): Promise<number> {
  const server = startChild('iperf3', ['-s', '-1', '-B', LOOP[cf(mode)], '-p', String(serverPort)]);
  try {
    // Wait until it listens, without connecting (a probe would use up the one test `-1` serves).
    const deadline = Date.now() + 30_000;
    let errText = '';
    server.stderr!.on('data', (d: Buffer) => (errText += d.toString()));
    server.stdout!.on('data', (d: Buffer) => (errText += d.toString()));
    while (spawnSync('ss', ['-Hltn', `sport = :${serverPort}`], { encoding: 'utf8' }).stdout.trim() === '') {
      if (server.exitCode !== null) throw new Error(`iperf3 -s exited: ${errText.trim().split('\n').pop()}`);
      if (Date.now() > deadline) throw new Error('iperf3 -s did not start');
      await sleep(50);
    }
    const r = spawnSync('iperf3', ['-c', LOOP[lf(mode)], '-p', String(listenPort), '-t', String(seconds), '-J'], { encoding: 'utf8', timeout: (seconds + 20) * 1000 });
    const j = JSON.parse(r.stdout) as { end?: { sum_received?: { bits_per_second: number } }; error?: string };
    if (!j.end?.sum_received) throw new Error(`iperf3: ${j.error ?? r.stderr}`);
    return j.end.sum_received.bits_per_second / 1e9;
  } finally {
    await stopChild(server);
  }
}

async function connRate(mode: Mode, listenPort: number, seconds: number, concurrency: number): Promise<{ perSecond: number; failed: number }> {
  const c = spawn(process.execPath, [SELF, '--worker', 'connrate', LOOP[lf(mode)], String(listenPort), String(seconds), String(concurrency)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await firstLine(c);
  await new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)));
  return JSON.parse(line) as { perSecond: number; failed: number };
}

interface Sample {
  run: number;
  impl: Impl;
  mode: Mode;
  gbps?: number;
  connPerSec?: number;
  connFailed?: number;
  error?: string;
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '16' },
      modes: { type: 'string', default: MODES.join(',') },
      impls: { type: 'string', default: IMPLS.join(',') },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npm run bench:portproxy -- [--runs 3] [--duration 3] [--concurrency 16] [--modes v4tov4,...] [--impls transit6,6tunnel,socat] [--json FILE]\n');
    return;
  }
  const runs = Number(values.runs);
  const seconds = Number(values.duration);
  const concurrency = Number(values.concurrency);
  const modes = values.modes.split(',') as Mode[];
  const impls = values.impls.split(',') as Impl[];
  if (!(runs >= 1 && seconds >= 1 && concurrency >= 1) || modes.some((m) => !MODES.includes(m)) || impls.some((i) => !IMPLS.includes(i))) {
    say('bad arguments (try --help)');
    process.exitCode = 2;
    return;
  }
  for (const tool of ['iperf3', ...impls.filter((i) => i !== 'transit6')]) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} not found: run scripts/install-deps.sh (or apt-get install -y ${tool})`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const jsonPath = resolve(values.json ?? join(REPO, 'bench', 'results', `portproxy-${stamp}.json`));
  const dir = mkdtempSync(join(tmpdir(), 't6-portproxy-bench-'));
  const echoes = { 4: startChild(process.execPath, [SELF, '--worker', 'echo', LOOP[4]]), 6: startChild(process.execPath, [SELF, '--worker', 'echo', LOOP[6]]) };
  const samples: Sample[] = [];
  const procs: ChildProcess[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all([...procs, echoes[4], echoes[6]].map(stopChild));
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    const echoPort = { 4: Number(await firstLine(echoes[4])), 6: Number(await firstLine(echoes[6])) };
    for (let run = 0; run < runs; run++) {
      const order = impls.map((_, i) => impls[(i + run) % impls.length]!);
      for (const impl of order) {
        const rules: (Rule & { kind: 'tput' | 'conn' })[] = [];
        for (const mode of modes) {
          rules.push({ mode, kind: 'tput', listenPort: await freePort(LOOP[lf(mode)]), targetPort: await freePort(LOOP[cf(mode)]) });
          rules.push({ mode, kind: 'conn', listenPort: await freePort(LOOP[lf(mode)]), targetPort: echoPort[cf(mode)] });
        }
        procs.splice(0, procs.length, ...(await startProxy(impl, rules, dir)));
        try {
          try {
            for (const r of rules) await waitListening(LOOP[lf(r.mode)], r.listenPort);
          } catch (e) {
            // Recorded, and the run goes on with the next proxy.
            for (const mode of modes) samples.push({ run, impl, mode, error: `start: ${(e as Error).message}` });
            say(`run ${run + 1}/${runs} ${impl}: did not start: ${(e as Error).message}`);
            continue;
          }
          for (const mode of modes) {
            const s: Sample = { run, impl, mode };
            try {
              const t = rules.find((r) => r.mode === mode && r.kind === 'tput')!;
              s.gbps = await iperf(mode, t.listenPort, t.targetPort, seconds);
              const c = rules.find((r) => r.mode === mode && r.kind === 'conn')!;
              const cr = await connRate(mode, c.listenPort, seconds, concurrency);
              s.connPerSec = cr.perSecond;
              s.connFailed = cr.failed;
            } catch (e) {
              s.error = (e as Error).message;
            }
            samples.push(s);
            say(`run ${run + 1}/${runs} ${impl.padEnd(8)} ${mode}: ${s.gbps?.toFixed(2) ?? '-'} Gbit/s, ${s.connPerSec?.toFixed(0) ?? '-'} conn/s${s.error ? ` (${s.error})` : ''}`);
          }
        } finally {
          await Promise.all(procs.map(stopChild));
          procs.length = 0;
        }
      }
    }
  } finally {
    await cleanup();
  }

  const summary = modes.map((mode) => {
    const med = (impl: Impl, k: 'gbps' | 'connPerSec'): number | undefined =>
      median(samples.filter((s) => s.impl === impl && s.mode === mode && s[k] !== undefined).map((s) => s[k]!));
    const row = { mode, gbps: {} as Record<string, number | undefined>, connPerSec: {} as Record<string, number | undefined> };
    for (const impl of impls) {
      row.gbps[impl] = med(impl, 'gbps');
      row.connPerSec[impl] = med(impl, 'connPerSec');
    }
    return row;
  });
  mkdirSync(dirname(jsonPath), { recursive: true });
  const loadavg = spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(jsonPath, `${JSON.stringify({ date: new Date().toISOString(), runs, seconds, concurrency, loadavgAtEnd: loadavg, summary, samples }, null, 2)}\n`);

  const ratio = (a?: number, b?: number): string => (a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(2) : '-');
  const fmt = (x: number | undefined, d: number): string => (x === undefined ? '-' : x.toFixed(d));
  const lines = [
    `PortProxy over loopback, median of ${runs} run(s), ${seconds} s each; conn/s with ${concurrency} concurrent loops`,
    '',
    '| mode | metric | transit6 | 6tunnel | socat | transit6/6tunnel | transit6/socat |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of summary) {
    lines.push(`| ${r.mode} | Gbit/s | ${fmt(r.gbps.transit6, 2)} | ${fmt(r.gbps['6tunnel'], 2)} | ${fmt(r.gbps.socat, 2)} | ${ratio(r.gbps.transit6, r.gbps['6tunnel'])} | ${ratio(r.gbps.transit6, r.gbps.socat)} |`);
    lines.push(`| ${r.mode} | conn/s | ${fmt(r.connPerSec.transit6, 0)} | ${fmt(r.connPerSec['6tunnel'], 0)} | ${fmt(r.connPerSec.socat, 0)} | ${ratio(r.connPerSec.transit6, r.connPerSec['6tunnel'])} | ${ratio(r.connPerSec.transit6, r.connPerSec.socat)} |`);
  }
  lines.push('', `load average at the end: ${loadavg}`, `JSON: ${jsonPath}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

const argv = process.argv.slice(2);
if (argv[0] === '--worker') {
  if (argv[1] === 'echo') void echoWorker(argv[2]!);
  else if (argv[1] === 'connrate') void connRateWorker(argv[2]!, Number(argv[3]), Number(argv[4]), Number(argv[5]));
} else {
  main().catch((e: unknown) => {
    say(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
