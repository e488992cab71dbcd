/**
 * `transit6 trace FILE.pcap...` and `transit6 trace --live`: ladder diagrams of real Teredo traffic, drawn by the
 * same renderer (src/trace/ladder.ts, svg.ts) and with the same labels as `transit6 sim trace`.
 */
import { parseArgs } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { DEFAULT_RUN_DIR, type ControlRole } from '../io/control.js';
import { pickSocket } from './teredo-show.js';
import { openTapStream, type TapMessage } from '../io/tapstream.js';
import { captureToLadder, type CaptureLadderOptions } from '../trace/capture-ladder.js';
import { readCapture, type CapturedPacket } from '../trace/pcap-reader.js';
import { renderLadderText, type LadderLane, type LadderMessage } from '../trace/ladder.js';
import { renderLadderSvg } from '../trace/svg.js';
import { parseIpv4, parseIpv4Port, type Ipv4 } from '../wire/ip.js';
import { EXIT_FAILURE, EXIT_OK, type CliIo } from './io.js';

const HELP = `usage: transit6 trace FILE.pcap [FILE2.pcap ...] [options]
       transit6 trace --live [--role ROLE | --control PATH] [--count N] [--duration S] [--until EVENT] [options]

Draws what happened as a ladder diagram: one lane per host (the Teredo server's two addresses share one), one
arrow per Teredo datagram, labelled as the seeds label packets (RS with cone flag, RA with origin indication,
direct and indirect bubbles, connectivity-test echo...). Tunnel-side IPv6 packets are notes on the capturing
host's lane ("stack sends echo request seq 1").

FILE.pcap: classic pcap (tcpdump -w, tshark -F pcap, a daemon's --pcap files, transit6 sim qualify --pcap) or
pcapng; raw IP, Ethernet, Linux cooked (-i any) and loopback captures. Give a daemon's FILE-udp.pcap and
FILE-tun.pcap together to see both sides.

--live: attaches to a running daemon in this network namespace through its control socket (root, as for
'teredo show') and draws packets as they come, starting with the first packets since the daemon started (its
qualification); state changes (qualified, NAT type, server lost...) appear as notes. Ctrl-C ends it.

options:
  --svg FILE         also write the diagram as SVG (for --live: when it ends)
  --width N          text width (default 120)
  --server A[,B]     the Teredo server's addresses (default: guessed from RS and RA)
  --local ADDR       the capturing host's IPv4 address (default: the address in most datagrams)
  --no-qualification leave RS and RA out, to see another exchange
  --role ROLE        --live: the daemon to attach to (client, relay, server; default: the only one running)
  --control PATH     --live: its control socket
  --count N          --live: stop after N packets
  --duration S       --live: stop after S seconds
  --until EVENT      --live: stop at the next state change of this kind: qualified, nat-type, address-change,
                     server-lost, offline, qualifying (the replayed start does not count, nor for --count)
  --no-replay        --live: only new packets, not those since the daemon started

examples:
  transit6 trace /var/log/transit6/client-udp.pcap /var/log/transit6/client-tun.pcap
  transit6 trace capture.pcap --svg capture.svg
  tcpdump -i eth0 -w wire.pcap udp port 3544 ; transit6 trace wire.pcap --server 198.51.100.1
  transit6 trace --live --until nat-type --svg qualification.svg
  transit6 trace --live --role relay --no-qualification`;

function positive(name: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`${name} wants a number of at least ${min}, not '${v}'`);
  return n;
}

function parseServer(v: string | undefined): CaptureLadderOptions['server'] {
  if (v === undefined) return undefined;
  const parts = v.split(',');
  const addrs = parts.map((p) => parseIpv4(p.trim()));
  if (parts.length > 2 || addrs.some((a) => a === undefined)) throw new UsageError(`--server wants one or two IPv4 addresses (A or A,B), not '${v}'`);
  return addrs.length === 2 ? { primary: addrs[0]!, secondary: addrs[1]! } : { primary: addrs[0]! };
}

export async function traceCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      live: { type: 'boolean' },
      svg: { type: 'string' },
      width: { type: 'string' },
      server: { type: 'string' },
      local: { type: 'string' },
      'no-qualification': { type: 'boolean' },
      role: { type: 'string' },
      control: { type: 'string' },
      count: { type: 'string' },
      duration: { type: 'string' },
      until: { type: 'string' },
      'no-replay': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help) {
    io.out(HELP);
    return EXIT_OK;
  }
  const width = positive('--width', values.width, 40) ?? 120;
  if (!Number.isInteger(width) || width > 1000) throw new UsageError(`--width wants a whole number from 40 to 1000, not '${values.width}'`);
  const server = parseServer(values.server);
  let local: Ipv4 | undefined;
  if (values.local !== undefined) {
    local = parseIpv4(values.local);
    if (local === undefined) throw new UsageError(`--local wants an IPv4 address, not '${values.local}'`);
  }
  const ladderOpts: CaptureLadderOptions = {
    ...(server ? { server } : {}),
    ...(local !== undefined ? { local: { addrs: [local] } } : {}),
    ...(values['no-qualification'] ? { skipQualification: true } : {}),
  };
  if (values.live) {
    if (positionals.length > 0) throw new UsageError('--live reads from a running daemon: give no capture files');
    return live(io, values, width, ladderOpts);
  }
  for (const o of ['role', 'control', 'count', 'duration', 'until', 'no-replay'] as const) {
    if (values[o] !== undefined) throw new UsageError(`--${o} goes with --live`);
  }
  if (positionals.length === 0) {
    io.err(HELP);
    return 2;
  }
  const packets: CapturedPacket[] = [];
  const notes: string[] = [];
  for (const f of positionals) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(f);
    } catch (e) {
      throw new UsageError(`cannot read ${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    let cap;
    try {
      cap = readCapture(bytes);
    } catch (e) {
      throw new UsageError(`${f}: ${(e as Error).message}`);
    }
    if (cap.problem) notes.push(`${f}: ${cap.problem} (read the ${cap.packets.length} packets before it)`);
    if (cap.skipped > 0) notes.push(`${f}: ${cap.skipped} packets neither IPv4 UDP nor IPv6, left out`);
    // A daemon's tunnel file: its packets were written or read by the daemon.
    packets.push(...cap.packets);
  }
  packets.sort((a, b) => a.at - b.at);
  const ladder = captureToLadder(packets, ladderOpts);
  if (ladder.notTeredo > 0) notes.push(`${ladder.notTeredo} UDP datagrams were not Teredo, left out`);
  io.out(`# ${positionals.join(' ')}: ${ladder.messages.length} packets, times in ms from ${new Date(ladder.origin).toISOString()}\n`);
  io.out(renderLadderText(ladder.lanes, ladder.messages, { width }));
  for (const n of notes) io.out(`# ${n}`);
  if (values.svg) {
    writeFileSync(values.svg, renderLadderSvg(ladder.lanes, ladder.messages, { title: positionals.join(' ') }));
    io.out(`\nSVG written to ${values.svg}`);
  }
  return EXIT_OK;
}

async function pickControl(role: string | undefined, control: string | undefined): Promise<string> {
  if (control) return control;
  if (role !== undefined && !['client', 'relay', 'server'].includes(role)) throw new UsageError(`--role wants client, relay or server, not '${role}'`);
  // As 'teredo show' chooses: --role's socket, or the only live daemon here (stale sockets do not count).
  return pickSocket(role as ControlRole | undefined, DEFAULT_RUN_DIR);
}

const UNTIL = ['qualified', 'nat-type', 'address-change', 'server-lost', 'offline', 'qualifying'];

/**
 * Incremental drawing: the diagram is re-rendered with the ladder renderer over a window of messages, and only the
 * rows not printed yet are written. When the layout moves (a new lane, wider labels) or the window is full, the
 * header is printed again and a new window starts.
 */
class LiveLadder {
  private printed: string[] = [];
  private windowStart = 0;
  constructor(
    private readonly io: CliIo,
    private readonly width: number,
  ) {}

  update(lanes: LadderLane[], messages: LadderMessage[]): void {
    if (messages.length - this.windowStart > 200) {
      this.windowStart = messages.length - 1;
      this.printed = [];
    }
    const window = messages.slice(this.windowStart);
    const lines = renderLadderText(lanes, window, { width: this.width, fixed: { timeDecimals: 1, timeWidth: 8 } }).split('\n');
    lines.pop(); // the closing lifeline row
    const same = this.printed.length > 0 && this.printed.every((l, i) => lines[i] === l);
    if (!same) {
      if (this.printed.length > 0) this.io.out('');
      this.io.out(lines.join('\n'));
    } else if (lines.length > this.printed.length) {
      this.io.out(lines.slice(this.printed.length).join('\n'));
    }
    this.printed = lines;
  }
}

async function live(io: CliIo, values: Record<string, string | boolean | undefined>, width: number, ladderOpts: CaptureLadderOptions): Promise<number> {
  const path = await pickControl(values.role as string | undefined, values.control as string | undefined);
  const count = positive('--count', values.count as string | undefined);
  const duration = positive('--duration', values.duration as string | undefined, 0.001);
  const until = values.until as string | undefined;
  if (until !== undefined && !UNTIL.includes(until)) throw new UsageError(`--until wants one of ${UNTIL.join(', ')}, not '${until}'`);
  const packets: CapturedPacket[] = [];
  const events: { at: number; text: string }[] = [];
  let lost = 0;
  let origin: number | undefined;
  let stop: () => void = () => {};
  const drawer = new LiveLadder(io, width);
  let role = 'host';
  let localAddrs: Ipv4[] = [];
  let serverOpt: CaptureLadderOptions['server'];
  const build = () => {
    const opts: CaptureLadderOptions = {
      ...ladderOpts,
      ...(origin !== undefined ? { origin } : {}),
      local: ladderOpts.local ?? { addrs: localAddrs, role },
    };
    const server = ladderOpts.server ?? serverOpt;
    if (server) opts.server = server;
    const l = captureToLadder(packets, opts);
    const localLane = l.lanes[0]?.id ?? 'local';
    if (l.lanes.length === 0) l.lanes.push({ id: localLane, title: role });
    const msgs = [...l.messages, ...events.map((e) => ({ at: Math.round((e.at - (origin ?? e.at)) * 1000) / 1000, from: localLane, to: localLane, label: e.text, style: 'control' as const }))];
    return { lanes: l.lanes, messages: msgs };
  };
  let seen = 0;
  // --until and --count look at what happens from now on, not at the replayed start.
  let live = false;
  const onMessage = (m: TapMessage) => {
    if (m.kind === 'lost') {
      lost += m.count;
      return;
    }
    if (m.kind === 'live') {
      live = true;
      return;
    }
    origin ??= m.at;
    if (m.kind === 'event') {
      const e = m.event;
      events.push({ at: m.at, text: typeof e.msg === 'string' ? e.msg : `${String(e.state)}: ${String(e.reason)}` });
      drawer.update(...(Object.values(build()) as [LadderLane[], LadderMessage[]]));
      if (live && until !== undefined && e.event === until) stop();
      return;
    }
    if (m.dir === 'udp-in' || m.dir === 'udp-out') {
      if (!m.src || !m.dst) return;
      // A daemon bound to 0.0.0.0 reports its sends from 0.0.0.0: the address datagrams arrive at is the real one.
      if (localAddrs.length === 0 && m.dir === 'udp-in' && m.dst.addr !== 0) localAddrs = [m.dst.addr];
      const fix = (e: typeof m.src) => (e.addr === 0 && localAddrs[0] !== undefined ? { addr: localAddrs[0], port: e.port } : e);
      packets.push({ at: m.at, kind: 'udp', src: fix(m.src), dst: fix(m.dst), data: m.data, dir: m.dir === 'udp-in' ? 'in' : 'out' });
    } else {
      packets.push({ at: m.at, kind: 'ipv6', packet: m.data, dir: m.dir === 'tun-in' ? 'in' : 'out' });
    }
    if (live) seen++;
    const b = build();
    drawer.update(b.lanes, b.messages);
    if (count !== undefined && seen >= count) stop();
  };
  const onHeader = (h: unknown) => {
    const header = h as { role?: string; state?: Record<string, unknown> } | null;
    role = header?.role ?? 'host';
    const st = header?.state ?? {};
    for (const k of ['localMapping', 'localEndpoint']) {
      const ep = typeof st[k] === 'string' ? parseIpv4Port(st[k]) : undefined;
      if (ep && ep.addr !== 0) localAddrs = [ep.addr];
    }
    if (role === 'server' && typeof st.primary === 'string') {
      const p = parseIpv4(st.primary);
      const s2 = typeof st.secondary === 'string' ? parseIpv4(st.secondary) : undefined;
      if (p !== undefined) localAddrs = [p, ...(s2 !== undefined ? [s2] : [])];
    }
    if (role === 'client' && typeof st.server === 'string') {
      const p = parseIpv4(st.server);
      const s2 = typeof st.server2 === 'string' ? parseIpv4(st.server2) : undefined;
      if (p !== undefined) serverOpt = s2 !== undefined ? { primary: p, secondary: s2 } : { primary: p };
    }
    io.out(`# live: transit6 teredo ${role} (control socket ${path}); Ctrl-C to stop`);
  };
  let stream;
  try {
    stream = await openTapStream(path, onHeader, onMessage, { replay: values['no-replay'] !== true });
  } catch (e) {
    io.err(`transit6 trace: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  const ended = new Promise<string>((resolve) => {
    stop = () => resolve('stopped');
    void stream.done.then(() => resolve('the daemon closed the stream'));
    if (duration !== undefined) setTimeout(() => resolve('time is up'), duration * 1000).unref();
    process.once('SIGINT', () => resolve('interrupted'));
  });
  const why = await ended;
  stream.close();
  io.out(`\n# ${why}: ${seen} packets${lost > 0 ? `, ${lost} lost (the reader fell behind)` : ''}`);
  if (values.svg) {
    const b = build();
    writeFileSync(values.svg as string, renderLadderSvg(b.lanes, b.messages, { title: `live: transit6 teredo ${role}` }));
    io.out(`SVG written to ${values.svg as string}`);
  }
  return EXIT_OK;
}
