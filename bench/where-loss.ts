/**
 * Where 64-byte UDP packets are lost on the benchmark's path (cli-prc -> NAT -> relay -> v6host) with transit6's
 * daemons: runs `iperf3 -u -l 64` at each rate and prints, per probe, iperf3's loss next to the kernel's drop
 * counters on every hop (the client's tunnel queue, UDP receive-buffer errors in the relay and in v6host, the
 * relay's tunnel), the daemons' own counters, and how long each daemon ran and waited runnable for a core
 * (/proc/PID/schedstat, ms). A diagnostic for bench/PROFILE.md, not a benchmark.
 *
 *   sudo node dist/bench/where-loss.js [--rates 80000,100000,120000] [--duration 4] [--offload yes|no] [--txqueuelen N]
 *                                      [--udp-window SIZE|default]   (iperf3 -w, 4M as in bench/teredo.ts)
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { installCleanupHandlers } from '../src/lab/netns.js';
import { startTeredoLab, showJson, waitForClients, LAB_TEREDO_IFACE } from '../src/lab/teredo-lab.js';

installCleanupHandlers();
const { values } = parseArgs({ options: { rates: { type: 'string', default: '80000,100000,120000' }, duration: { type: 'string', default: '4' }, offload: { type: 'string', default: 'yes' }, txqueuelen: { type: 'string' }, 'udp-window': { type: 'string', default: '4M' } } });
const window = values['udp-window'] === 'default' ? [] : ['-w', values['udp-window']!];
const rates = values.rates!.split(',').map(Number);
const off = ['--offload', values.offload!];

const l = await startTeredoLab({ clients: ['cli-prc'], relayExtra: ['--new-peer-rate-limit', 'no', ...off], startClients: [] });
try {
  const { startLabClient } = await import('../src/lab/teredo-lab.js');
  startLabClient(l, 'cli-prc', off);
  await waitForClients(l, ['cli-prc'], { natDetection: false });
  const t = l.topology;
  const cli = t.clients.find((c) => c.name === 'cli-prc')!;
  const lab = l.lab;
  if (values.txqueuelen) await lab.exec(cli.ns, 'ip', ['link', 'set', LAB_TEREDO_IFACE, 'txqueuelen', values.txqueuelen]);
  await lab.exec(cli.ns, 'ping', ['-6', '-c', '3', '-i', '0.2', t.v6host.ipv6], { allowFailure: true });
  const snmp = async (ns: string): Promise<Record<string, number>> => {
    const r = await lab.exec(ns, 'nstat', ['-az', '--json'], { allowFailure: true });
    const j = JSON.parse(r.stdout || '{}') as { kernel?: Record<string, number> };
    return j.kernel ?? {};
  };
  const link = async (ns: string, dev: string): Promise<Record<string, number>> => {
    const r = await lab.exec(ns, 'ip', ['-s', '-j', 'link', 'show', dev]);
    const j = JSON.parse(r.stdout) as { stats64: { rx: Record<string, number>; tx: Record<string, number> } }[];
    return { rxDropped: j[0]!.stats64.rx.dropped!, txDropped: j[0]!.stats64.tx.dropped!, txPackets: j[0]!.stats64.tx.packets!, rxPackets: j[0]!.stats64.rx.packets! };
  };
  const pick = (k: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(k).filter(([n]) => /RcvbufErrors|SndbufErrors|InErrors|NoPorts|MemErrors/.test(n) && /^Udp/.test(n)));
  // Nanoseconds on a CPU and waiting on a run queue (the first two fields of /proc/PID/schedstat), in ms.
  const sched = (pid: number | undefined): Record<string, number> => {
    const [run, wait] = readFileSync(`/proc/${pid ?? 0}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return { runMs: Math.round(run! / 1e6), waitMs: Math.round(wait! / 1e6) };
  };
  const snap = async (): Promise<Record<string, unknown>> => ({
    clientSched: sched(l.daemons.clients['cli-prc']?.pid), relaySched: sched(l.daemons.relay?.pid),
    cliTun: await link(cli.ns, LAB_TEREDO_IFACE), relayTun: await link(t.relay.ns, LAB_TEREDO_IFACE),
    cli: pick(await snmp(cli.ns)), relay: pick(await snmp(t.relay.ns)), v6host: pick(await snmp(t.v6host.ns)),
    relayIo: (await showJson<{ io: Record<string, number> }>(t.relay.ns, 'stats', 'relay')).io,
    clientIo: (await showJson<{ io: Record<string, number> }>(cli.ns, 'stats', 'client')).io,
  });
  const diff = (a: unknown, b: unknown): unknown => {
    if (typeof a === 'number' && typeof b === 'number') return b - a;
    if (a && b && typeof a === 'object') {
      const o: Record<string, unknown> = {};
      for (const k of Object.keys(b as object)) {
        const d = diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
        if (d !== 0 && d !== undefined && !(typeof d === 'object' && Object.keys(d as object).length === 0)) o[k] = d;
      }
      return o;
    }
    return undefined;
  };
  for (const pps of rates) {
    const srv = lab.spawn(t.v6host.ns, `iperf3-${pps}`, 'iperf3', ['-s', '-1', '-B', t.v6host.ipv6, '-p', '5299']);
    await new Promise((r) => setTimeout(r, 500));
    const a = await snap();
    const r = await lab.exec(cli.ns, 'iperf3', ['-c', t.v6host.ipv6, '-p', '5299', '-6', '-u', '-l', '64', '-b', String(pps * 512), '-t', values.duration!, '-J', ...window], { allowFailure: true, timeoutMs: 60_000 });
    const b = await snap();
    await srv.stop();
    const j = JSON.parse(r.stdout) as { end?: { sum?: { packets?: number; lost_packets?: number; lost_percent?: number } } };
    console.log(JSON.stringify({ pps, iperf: j.end?.sum, delta: diff(a, b) }));
  }
} finally {
  await l.lab.destroy();
}
