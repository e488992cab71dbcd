/** `transit6 sim ...`: Teredo exchanges in the deterministic simulator, with the virtual clock. */
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { NAT_KINDS, qualifyJson, runQualify, type NatKind, type QualifyResult } from '../sim/qualify.js';
import { pcapFromTrace } from '../sim/pcap.js';
import { formatIpv4Port, formatIpv6 } from '../wire/ip.js';
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

Run 'transit6 sim qualify --help' for its options.`;

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
  let seed: number | undefined;
  if (values.seed !== undefined) {
    seed = Number(values.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed wants a whole number, not '${values.seed}'`);
  }
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
