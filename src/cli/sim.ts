/** `transit6 sim ...`: Teredo exchanges in the deterministic simulator, with the virtual clock. */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { NAT_KINDS, qualifyJson, runQualify, type NatKind, type QualifyResult } from '../sim/qualify.js';
import { pcapFromTrace } from '../sim/pcap.js';
import { formatIpv4Port, formatIpv6 } from '../wire/ip.js';
import { expectedReachable, formatMatrix, runReachMatrix, REACH_NODES } from '../sim/reach.js';
import { runTraceScenario, TRACE_DESCRIPTIONS, TRACE_SCENARIOS, type TraceScenario } from '../sim/traces.js';
import { renderLadderText } from '../trace/ladder.js';
import { renderLadderSvg } from '../trace/svg.js';
import { formatClientState } from './show.js';
import { EXIT_OK, type CliIo } from './io.js';

const QUALIFY_HELP = `usage: transit6 sim qualify --nat KIND [options]

Runs a Teredo server (198.51.100.1 and .2) and a client behind a NAT in the simulator, prints the
client's state as 'show state' does, then every packet of the exchange in time order, on the LAN side and
on the Internet side of the NAT.

  --nat KIND          full-cone | restricted | port-restricted | symmetric | none | all
  --udp-timeout S     the NAT's UDP mapping timeout in seconds (default 30)
  --idle S            stay idle S seconds after qualifying, refreshing, counting address changes
  --server-down S     the server is unreachable for the first S seconds
  --plain-server      a server without the probe-port extension (like miredo-server)
  --seed N            simulator seed (default 4380)
  --pcap FILE         write the exchange as a pcap (tshark --enable-heuristic teredo_udp -r FILE)
  --json              one JSON object (an array with --nat all)

examples:
  transit6 sim qualify --nat port-restricted
  transit6 sim qualify --nat symmetric --json
  transit6 sim qualify --nat port-restricted --udp-timeout 30 --idle 600
  transit6 sim qualify --nat all`;

const SIM_HELP = `usage: transit6 sim <scenario> [options]

scenarios:
  qualify    qualification and NAT-type detection behind one NAT
  reach      the reachability matrix between clients behind every kind of NAT and a native IPv6 host
  trace      a ladder diagram of one exchange (qualify, holepunch, relay, inbound, symmetric, local)

Run 'transit6 sim <scenario> --help' for its options.

examples:
  transit6 sim qualify --nat symmetric
  transit6 sim reach
  transit6 sim trace holepunch --svg holepunch.svg`;

const REACH_HELP = `usage: transit6 sim reach [--json] [--seed N]

Builds the seeds' topology in the simulator: a Teredo server (198.51.100.1 and .2), a relay for 2001::/32
(198.51.100.17), the native host v6host (2001:db8:1::10), and clients fc (full cone NAT), rc (address-restricted),
prc and prc2 (port-restricted), sym (symmetric, random ports), pub (no NAT), lan1 and lan2 (two behind one
port-restricted NAT). For every ordered pair, on a fresh network, the first pings the second (5 echo requests a
second apart) and the matrix shows whether it connected, the path the traffic took (direct, relay, local) and
how long the first echo request took to be answered (it waits in a queue while the path is set up; it is never
dropped).

  --json     {"pairs": [{"from", "to", "ok", "path", "firstPacketMs", ...}]}
  --seed N   simulator seed (default 4380)

examples:
  transit6 sim reach
  transit6 sim reach --json | jq '.pairs[] | select(.ok | not)'`;

const TRACE_HELP = `usage: transit6 sim trace <exchange> [--svg FILE] [--width N] [--seed N]

Runs one exchange in the simulator and draws it as a ladder diagram: one lane per host and NAT, one arrow per
packet hop, labelled as the seeds label packets.

exchanges:
${TRACE_SCENARIOS.map((n) => `  ${n.padEnd(10)} ${TRACE_DESCRIPTIONS[n]}`).join('\n')}

  --svg FILE   also write the diagram as SVG
  --width N    text width (default 120)
  --seed N     simulator seed (default 4380)

examples:
  transit6 sim trace qualify
  transit6 sim trace relay --svg relay.svg --width 160
  (transit6 trace FILE.pcap and transit6 trace --live draw real traffic the same way)`;

function positiveSeconds(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} wants a number of seconds, not '${v}'`);
  return Math.round(n * 1000);
}

export function simCommand(argv: string[], io: CliIo): number {
  const [scenario, ...rest] = argv;
  if (scenario === undefined || scenario === '--help' || scenario === '-h') {
    io.out(SIM_HELP);
    return scenario === undefined ? 2 : EXIT_OK;
  }
  if (scenario === 'reach') return reachCommand(rest, io);
  if (scenario === 'trace') return traceCommand(rest, io);
  if (scenario !== 'qualify') throw new UsageError(`unknown scenario '${scenario}' (try 'transit6 sim --help')`);
  const { values } = parseArgs({
    args: rest,
    options: {
      nat: { type: 'string' },
      'udp-timeout': { type: 'string' },
      idle: { type: 'string' },
      'server-down': { type: 'string' },
      'plain-server': { type: 'boolean' },
      seed: { type: 'string' },
      pcap: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    io.out(QUALIFY_HELP);
    return EXIT_OK;
  }
  if (!values.nat) throw new UsageError(`--nat is required: one of ${NAT_KINDS.join(', ')}, all`);
  const kinds: NatKind[] = values.nat === 'all' ? [...NAT_KINDS] : [values.nat as NatKind];
  if (!NAT_KINDS.includes(kinds[0]!)) throw new UsageError(`--nat '${values.nat}' is not one of ${NAT_KINDS.join(', ')}, all`);
  const udpTimeoutMs = positiveSeconds('--udp-timeout', values['udp-timeout']);
  if (udpTimeoutMs !== undefined && udpTimeoutMs < 5000) throw new UsageError('--udp-timeout must be at least 5 seconds');
  const idleMs = positiveSeconds('--idle', values.idle);
  const serverDownMs = positiveSeconds('--server-down', values['server-down']);
  const seed = parseSeed(values.seed);
  if (values.pcap && kinds.length > 1) throw new UsageError('--pcap needs a single --nat kind');
  const results = kinds.map((nat) =>
    runQualify({
      nat,
      ...(seed !== undefined ? { seed } : {}),
      ...(udpTimeoutMs !== undefined ? { udpTimeoutMs } : {}),
      ...(idleMs !== undefined ? { idleMs } : {}),
      ...(serverDownMs !== undefined ? { serverDownMs } : {}),
      ...(values['plain-server'] ? { plainServer: true } : {}),
    }),
  );
  if (values.pcap) writeFileSync(values.pcap, pcapFromTrace(results[0]!.net.trace));
  if (values.json) {
    const objs = results.map((r, i) => ({ nat: kinds[i], ...qualifyJson(r) }));
    io.out(JSON.stringify(kinds.length === 1 ? objs[0] : objs, null, 2));
    return EXIT_OK;
  }
  if (kinds.length > 1) {
    io.out(summaryTable(kinds, results));
    return EXIT_OK;
  }
  io.out(formatQualify(kinds[0]!, results[0]!));
  if (values.pcap) io.out(`\npcap written to ${values.pcap} (decode: tshark --enable-heuristic teredo_udp -d udp.port==3546,teredo -r ${values.pcap})`);
  return EXIT_OK;
}

function ms(t: number | undefined): string {
  return t === undefined ? '-' : `${(t / 1000).toFixed(3)} s`;
}

export function formatQualify(nat: NatKind, r: QualifyResult): string {
  const lines: string[] = [];
  lines.push(`# simulated: Teredo server 198.51.100.1 + 198.51.100.2, client behind ${nat === 'none' ? 'no NAT' : `a ${nat} NAT`}`);
  lines.push('');
  lines.push(formatClientState(r.status));
  lines.push('');
  const nm = r.natMapping ? formatIpv4Port(r.natMapping) : 'none';
  const em = r.status.externalMapping ? formatIpv4Port(r.status.externalMapping) : 'none';
  lines.push(`NAT's own mapping towards the server: ${nm} (${nm === em ? 'matches' : 'DIFFERS FROM'} the external mapping)`);
  lines.push(`qualified at ${ms(r.qualifiedAt)}, NAT type known at ${ms(r.detectionDoneAt)}, simulation ended at ${ms(r.endedAt)} (virtual time)`);
  lines.push('');
  lines.push('Packets (virtual time, the segment they crossed: the LAN behind the NAT or the Internet):');
  const rows = r.packets.map((p) => [`${(p.at / 1000).toFixed(3)}`, p.segment, `${p.src} > ${p.dst}`, p.label + (p.fate === 'dropped' ? `  [dropped: ${p.reason}]` : '')]);
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i]!.length), 0));
  for (const row of rows) lines.push(`  ${row[0]!.padStart(w[0]!)}  ${row[1]!.padEnd(w[1]!)}  ${row[2]!.padEnd(w[2]!)}  ${row[3]}`);
  return lines.join('\n');
}

function summaryTable(kinds: NatKind[], results: QualifyResult[]): string {
  const header = ['NAT', 'state', 'detected', 'external mapping', "NAT's mapping", 'Teredo address', 'qualified', 'type known'];
  const rows = results.map((r, i) => [
    kinds[i]!,
    r.status.state,
    r.status.natType,
    r.status.externalMapping ? formatIpv4Port(r.status.externalMapping) : '-',
    r.natMapping ? formatIpv4Port(r.natMapping) : '-',
    r.status.teredoAddress ? formatIpv6(r.status.teredoAddress) : '-',
    ms(r.qualifiedAt),
    ms(r.detectionDoneAt),
  ]);
  const all = [header, ...rows];
  const w = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  return [
    '# simulated: one Teredo server (198.51.100.1 + .2) and a client behind each kind of NAT',
    '',
    ...all.map((row) => row.map((c, i) => c.padEnd(w[i]!)).join('  ')),
  ].join('\n');
}

function parseSeed(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const seed = Number(v);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed wants a whole number, not '${v}'`);
  return seed;
}

function reachCommand(argv: string[], io: CliIo): number {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  if (values.help) {
    io.out(REACH_HELP);
    return EXIT_OK;
  }
  const seed = parseSeed(values.seed);
  const m = runReachMatrix(seed !== undefined ? { seed } : {});
  if (values.json) {
    io.out(JSON.stringify({ pairs: m.pairs.map((p) => ({ ...p, expected: expectedReachable(p.from, p.to) })) }, null, 2));
    return EXIT_OK;
  }
  const ok = m.pairs.filter((p) => p.ok).length;
  const expected = m.pairs.filter((p) => expectedReachable(p.from, p.to)).length;
  const unexpected = m.pairs.filter((p) => p.ok !== expectedReachable(p.from, p.to));
  const lost = m.pairs.filter((p) => p.ok && !p.firstAnswered).length;
  io.out(
    [
      "# simulated: the seeds' topology; each row pings each column on a fresh network (started by the row)",
      '# cell: path the traffic took, and when the first echo request was answered (it waits while the path is set up)',
      '',
      formatMatrix(m),
      '',
      `${ok} of ${m.pairs.length} pairs connected; RFC 4380 with RFC 6081 connects ${expected} (port-restricted and symmetric NATs cannot meet).`,
      `first echo request lost in ${lost} pair(s); ${unexpected.length === 0 ? 'every pair as the RFCs predict' : `differs from the RFCs: ${unexpected.map((p) => `${p.from}->${p.to}`).join(', ')}`}.`,
      `Miredo 1.2.6 in the same topology (reference study §7): prc<->sym never, and nothing the symmetric client starts.`,
      `nodes: ${REACH_NODES.join(', ')}`,
    ].join('\n'),
  );
  return EXIT_OK;
}

function traceCommand(argv: string[], io: CliIo): number {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { svg: { type: 'string' }, width: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: true,
  });
  if (values.help || positionals.length === 0) {
    io.out(TRACE_HELP);
    return values.help ? EXIT_OK : 2;
  }
  const name = positionals[0] as TraceScenario;
  if (positionals.length > 1 || !TRACE_SCENARIOS.includes(name)) throw new UsageError(`unknown exchange '${positionals.join(' ')}': one of ${TRACE_SCENARIOS.join(', ')}`);
  let width = 120;
  if (values.width !== undefined) {
    width = Number(values.width);
    if (!Number.isInteger(width) || width < 40 || width > 1000) throw new UsageError(`--width wants a whole number from 40 to 1000, not '${values.width}'`);
  }
  const seed = parseSeed(values.seed);
  const r = runTraceScenario(name, seed);
  io.out(`# ${name}: ${r.title}\n`);
  io.out(renderLadderText(r.lanes, r.messages, { width }));
  if (values.svg) {
    writeFileSync(values.svg, renderLadderSvg(r.lanes, r.messages, { title: `${name}: ${r.title}` }));
    io.out(`\nSVG written to ${values.svg}`);
  }
  return EXIT_OK;
}
