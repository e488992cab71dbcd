/**
 * `transit6 addr`: decode any IPv6 address into its parts with the arithmetic shown (Teredo, 6to4, ISATAP,
 * multicast...), and build Teredo, 6to4 and ISATAP addresses from their parts. Bad input throws a UsageError with
 * one sentence; the dispatcher prints it and exits 2.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';
import { formatIpv6, parseIpv4, parseIpv4Port, parseIpv6, parseIpv6Prefix, type Ipv4 } from '../wire/ip.js';
import { isatapAddress, isPrivateIpv4 } from '../wire/isatap.js';
import { sixToFourAddress, sixToFourRefusal } from '../wire/sixtofour.js';
import { decodeTeredoAddress, encodeTeredoAddress, makeFlags } from '../wire/teredo.js';
import { explainIpv4, explainIpv6, explainSixToFourPrefix, KIND_TITLES, type AddressKind } from './explain.js';
import { EXIT_OK, type CliIo } from './io.js';

const ADDR_HELP = `usage: transit6 addr <decode|encode> ...

  decode ADDR [--json]                       explain an IPv6 address (or an IPv4 one) step by step
  encode teredo --server A.B.C.D --mapped A.B.C.D:PORT [--cone] [--random HEX] [--legacy-prefix] [--json]
  encode 6to4 IPV4 [--subnet N] [--host] [--json]
  encode isatap PREFIX/64 IPV4 [--json]

examples:
  transit6 addr decode 2001:0:1117:34fa:1027:374b:e1fc:f635
  transit6 addr decode ff02::1:ff00:254 --json
  transit6 addr encode teredo --server 65.54.227.120 --mapped 192.0.2.45:40000 --cone
  transit6 addr encode 6to4 157.60.0.1 --subnet 1
  transit6 addr encode isatap fe80::/64 192.168.41.30

Run 'transit6 addr decode --help' or 'transit6 addr encode --help' for more.`;

const DECODE_HELP = `usage: transit6 addr decode ADDR [--json]

Explains what an IPv6 address is and decodes what it carries, showing the arithmetic: the Teredo server,
flags, mapped port and address (XOR ffff); the IPv4 address inside a 6to4, ISATAP, NAT64 or IPv4-mapped address;
multicast flags, scope and well-known groups; link-local EUI-64 MAC addresses; unique local global IDs.
ADDR may carry a %zone or a /length (both ignored). An IPv4 address gets its 6to4 prefix and ISATAP identifiers.

options:
  --json   print one JSON object: {"kind": ..., "address": ..., <fields of that kind>, "steps": [...]}

examples:
  transit6 addr decode 2001:0:1117:34fa:1027:374b:e1fc:f635     Teredo: server 17.23.52.250, 30.3.9.202:51380
  transit6 addr decode 2002:836b:1::836b:1                      6to4 host form for 131.107.0.1
  transit6 addr decode fe80::5efe:192.168.41.30                 link-local ISATAP address
  transit6 addr decode ff02::1:ff00:254                          solicited-node multicast group
  transit6 addr decode 192.0.2.1                                 IPv4: its 6to4 prefix and ISATAP identifier`;

const ENCODE_HELP = `usage: transit6 addr encode <teredo|6to4|isatap> ...

  teredo --server A.B.C.D --mapped A.B.C.D:PORT [--cone] [--random HEX] [--flags HEX] [--legacy-prefix]
  6to4 IPV4 [--subnet N] [--host]
  isatap PREFIX/64 IPV4

Each takes --json and --help. Run 'transit6 addr encode teredo --help' (or 6to4, isatap) for details.

examples:
  transit6 addr encode teredo --server 65.54.227.120 --mapped 192.0.2.45:40000 --cone
  transit6 addr encode 6to4 131.107.0.1 --host
  transit6 addr encode isatap 2001:db8:0:7::/64 192.168.47.99`;

const TEREDO_HELP = `usage: transit6 addr encode teredo --server A.B.C.D --mapped A.B.C.D:PORT [options]

Builds the Teredo address 2001:0:<server>:<flags>:<port XOR ffff>:<address XOR ffffffff> (RFC 4380 §4).

options:
  --server A.B.C.D       the Teredo server's IPv4 address
  --mapped A.B.C.D:PORT  the NAT's external (mapped) address and port
  --cone                 set the cone flag (C, 0x8000)
  --random HEX           the 12 random flag bits of RFC 5991 §4 (0-fff); default 0, so the output is reproducible
  --flags HEX            the whole 16-bit flags field instead of --cone/--random (e.g. a captured address's)
  --legacy-prefix        use the pre-RFC 4380 prefix 3ffe:831f::/32 instead of 2001::/32
  --json                 print one JSON object

examples:
  transit6 addr encode teredo --server 65.54.227.120 --mapped 192.0.2.45:40000 --cone
      2001:0:4136:e378:8000:63bf:3fff:fdd2 (RFC 4380 §4)
  transit6 addr encode teredo --server 206.73.118.1 --mapped 131.107.0.1:8192 --flags 2cad
      2001:0:ce49:7601:2cad:dfff:7c94:fffe (white paper, client B)`;

const SIXTOFOUR_HELP = `usage: transit6 addr encode 6to4 IPV4 [--subnet N] [--host] [--json]

Builds the 6to4 site prefix 2002:WWXX:YYZZ::/48 for a public IPv4 address w.x.y.z (RFC 3056 §2) and the /64 of
one subnet. Private, loopback, link-local and multicast IPv4 addresses are refused.

options:
  --subnet N   the 16-bit subnet (SLA ID), decimal or 0xHEX, 0-65535 (default 0)
  --host       print the address 2002:WWXX:YYZZ:SSSS::WWXX:YYZZ, the form Windows 6to4 host/routers use
  --json       print one JSON object

examples:
  transit6 addr encode 6to4 157.60.0.1 --subnet 1      2002:9d3c:1::/48 and 2002:9d3c:1:1::/64
  transit6 addr encode 6to4 131.107.0.1 --host         2002:836b:1::836b:1`;

const ISATAP_HELP = `usage: transit6 addr encode isatap PREFIX/64 IPV4 [--json]

Builds the ISATAP address PREFIX + 0000:5efe:w.x.y.z (private IPv4) or 0200:5efe:w.x.y.z (public IPv4),
RFC 5214 §6.1. The u-bit (0200) follows from the IPv4 address. PREFIX must be a /64: fe80::/64 gives the
link-local ISATAP address.

examples:
  transit6 addr encode isatap fe80::/64 192.168.41.30            fe80::5efe:c0a8:291e = fe80::5efe:192.168.41.30
  transit6 addr encode isatap 2001:db8:0:7::/64 131.107.71.209   2001:db8:0:7:200:5efe:836b:47d1`;

type OptionSpec = Record<string, { type: 'boolean' | 'string'; short?: string }>;

/** parseArgs, with its errors turned into one-sentence UsageErrors that point at --help. */
function parse(args: string[], options: OptionSpec, helpFor: string): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
      const first = e.message.split(/\.\s/)[0]!.replace(/\.$/, '');
      throw new UsageError(`${first.charAt(0).toLowerCase()}${first.slice(1)} (try 'transit6 addr ${helpFor} --help')`);
    }
    throw e;
  }
}

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function requireIpv4(text: string): Ipv4 {
  const v = parseIpv4(text);
  if (v === undefined) throw new UsageError(`'${text}' is not an IPv4 address`);
  return v;
}

function formatValue(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${k}=${typeof x === 'boolean' ? (x ? 1 : 0) : String(x)}`)
      .join(' ');
  }
  return String(v);
}

/** A title line, aligned "field: value" lines (every key but `skip` and steps), then the numbered steps. */
function renderText(title: string, value: { steps: string[] }, skip: string[]): string {
  const lines = [title];
  const fields = Object.entries(value).filter(([k, v]) => k !== 'steps' && !skip.includes(k) && v !== undefined);
  const width = Math.max(...fields.map(([k]) => k.length)) + 2;
  for (const [k, v] of fields) lines.push(`  ${`${k}:`.padEnd(width)} ${formatValue(v)}`);
  lines.push('', 'how:');
  value.steps.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${s}`));
  return lines.join('\n');
}

/** The text form of an explanation: "<address> is <what>", its fields, its steps. */
export function renderExplanation(e: { kind: string; address: string; steps: string[] }): string {
  const title = KIND_TITLES[e.kind as AddressKind] ?? e.kind;
  return renderText(`${e.address} is ${title}`, e, ['address']);
}

function emit(io: CliIo, json: boolean, value: { kind: string; address: string; steps: string[] }, header: string[] = []): void {
  if (json) {
    io.out(JSON.stringify(value, null, 2));
    return;
  }
  io.out([...header, ...(header.length ? [''] : []), renderExplanation(value)].join('\n'));
}

function decode(args: string[], io: CliIo): number {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, 'decode');
  if (values.help) {
    io.out(DECODE_HELP);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageError("decode wants an address, e.g. 'transit6 addr decode 2001:0:1117:34fa:1027:374b:e1fc:f635'");
  if (positionals.length > 1) throw new UsageError(`decode takes one address, got ${positionals.length}: ${positionals.join(' ')}`);
  const input = positionals[0]!.trim();
  const json = values.json === true;
  let text = input;
  let ignoredLength: string | undefined;
  const slash = input.indexOf('/');
  if (slash >= 0) {
    const prefix = parseIpv6Prefix(input);
    if (!prefix) throw new UsageError(`'${input}' is not an IPv6 address or prefix`);
    text = input.slice(0, slash);
    ignoredLength = input.slice(slash);
  }
  if (/^[0-9.]+$/.test(text)) {
    const v4 = requireIpv4(text);
    emit(io, json, explainIpv4(v4));
    return EXIT_OK;
  }
  const addr = parseIpv6(text);
  if (!addr) throw new UsageError(`'${input}' is not an IPv6 address`);
  const e = explainIpv6(addr);
  if (ignoredLength) e.steps.unshift(`(${ignoredLength} given: the prefix length plays no part in decoding the address)`);
  emit(io, json, e);
  return EXIT_OK;
}

function parseHex(text: string, max: number, option: string, what: string): number {
  const m = /^(?:0x)?([0-9a-f]{1,8})$/i.exec(text);
  const v = m ? parseInt(m[1]!, 16) : NaN;
  if (!m || v > max) throw new UsageError(`${option} wants ${what}, got '${text}'`);
  return v;
}

function encodeTeredo(args: string[], io: CliIo): number {
  const { values, positionals } = parse(
    args,
    {
      server: { type: 'string' },
      mapped: { type: 'string' },
      cone: { type: 'boolean' },
      random: { type: 'string' },
      flags: { type: 'string' },
      'legacy-prefix': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    'encode teredo',
  );
  if (values.help) {
    io.out(TEREDO_HELP);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError(`encode teredo takes only options, not '${positionals[0]}' (try --server and --mapped)`);
  const serverText = str(values.server);
  if (serverText === undefined) throw new UsageError("encode teredo needs --server A.B.C.D, the Teredo server's IPv4 address");
  const mappedText = str(values.mapped);
  if (mappedText === undefined) throw new UsageError("encode teredo needs --mapped A.B.C.D:PORT, the NAT's external address and port");
  const server = parseIpv4(serverText);
  if (server === undefined) throw new UsageError(`--server wants an IPv4 address A.B.C.D, got '${serverText}'`);
  const mapped = parseIpv4Port(mappedText);
  if (!mapped) throw new UsageError(`--mapped wants A.B.C.D:PORT, got '${mappedText}'`);
  const flagsText = str(values.flags);
  const randomText = str(values.random);
  let flags: number;
  if (flagsText !== undefined) {
    if (values.cone || randomText !== undefined) throw new UsageError('--flags gives the whole flags field, so it cannot be combined with --cone or --random');
    flags = parseHex(flagsText, 0xffff, '--flags', 'a 16-bit hex value 0-ffff');
  } else {
    const random = randomText === undefined ? 0 : parseHex(randomText, 0xfff, '--random', 'a 12-bit hex value 0-fff');
    flags = makeFlags(values.cone === true, random);
  }
  const addr = encodeTeredoAddress({
    prefix: values['legacy-prefix'] ? 'legacy' : 'rfc4380',
    server,
    flags,
    mappedPort: mapped.port,
    mappedAddr: mapped.addr,
  });
  // Decoding what was just built keeps encode and decode honest with each other.
  const back = decodeTeredoAddress(addr);
  if (!back || back.server !== server || back.mappedPort !== mapped.port || back.mappedAddr !== mapped.addr) {
    throw new Error('internal error: the Teredo address does not decode to its parts');
  }
  emit(io, values.json === true, explainIpv6(addr), [formatIpv6(addr)]);
  return EXIT_OK;
}

function parseSubnet(text: string): number {
  let v = NaN;
  if (/^\d{1,5}$/.test(text)) v = Number(text);
  else if (/^0x[0-9a-f]{1,4}$/i.test(text)) v = parseInt(text.slice(2), 16);
  if (!(v >= 0 && v <= 0xffff)) throw new UsageError(`--subnet wants a number 0-65535 (decimal or 0xHEX), got '${text}'`);
  return v;
}

function encodeSixToFour(args: string[], io: CliIo): number {
  const { values, positionals } = parse(args, { subnet: { type: 'string' }, host: { type: 'boolean' }, json: { type: 'boolean' } }, 'encode 6to4');
  if (values.help) {
    io.out(SIXTOFOUR_HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "encode 6to4 wants an IPv4 address, e.g. 'transit6 addr encode 6to4 157.60.0.1'"
        : `encode 6to4 takes one IPv4 address, got ${positionals.length}: ${positionals.join(' ')}`,
    );
  }
  const ipv4 = requireIpv4(positionals[0]!);
  const refusal = sixToFourRefusal(ipv4);
  if (refusal !== undefined) throw new UsageError(refusal);
  const subnetText = str(values.subnet);
  const subnet = subnetText === undefined ? 0 : parseSubnet(subnetText);
  const json = values.json === true;
  if (values.host) {
    const addr = sixToFourAddress(ipv4, subnet, 'ipv4');
    emit(io, json, explainIpv6(addr), [formatIpv6(addr)]);
    return EXIT_OK;
  }
  const e = explainSixToFourPrefix(ipv4, subnet);
  if (json) {
    io.out(JSON.stringify(e, null, 2));
    return EXIT_OK;
  }
  const title = `${e.prefix} is the 6to4 site prefix of ${e.ipv4} (RFC 3056)`;
  const lines = [e.prefix, e.subnetPrefix, '', renderText(title, e, [])];
  io.out(lines.join('\n'));
  return EXIT_OK;
}

function encodeIsatap(args: string[], io: CliIo): number {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, 'encode isatap');
  if (values.help) {
    io.out(ISATAP_HELP);
    return EXIT_OK;
  }
  if (positionals.length !== 2) {
    throw new UsageError(`encode isatap wants PREFIX/64 IPV4, e.g. 'transit6 addr encode isatap 2001:db8:0:7::/64 192.168.47.99'`);
  }
  const [prefixText, ipv4Text] = positionals as [string, string];
  const parsed = parseIpv6Prefix(prefixText);
  if (!parsed) {
    if (parseIpv6(prefixText)) throw new UsageError(`encode isatap wants a /64 prefix like 2001:db8:1:2::/64, got '${prefixText}' (add /64)`);
    throw new UsageError(`'${prefixText}' is not an IPv6 prefix like 2001:db8:1:2::/64`);
  }
  if (parsed.length !== 64) {
    throw new UsageError(`ISATAP needs a /64 prefix (its interface identifier fills the low 64 bits), got /${parsed.length}`);
  }
  for (let i = 8; i < 16; i++) {
    if (parsed.prefix[i] !== 0) throw new UsageError(`'${prefixText}' has bits set past /64`);
  }
  if (parsed.prefix[0] === 0xff) throw new UsageError(`'${prefixText}' is a multicast prefix; ISATAP needs a unicast one`);
  if (parsed.prefix[0] === 0x20 && parsed.prefix[1] === 0x01 && parsed.prefix[2] === 0 && parsed.prefix[3] === 0) {
    throw new UsageError(`'${prefixText}' is inside the Teredo prefix 2001::/32, whose low 64 bits belong to Teredo`);
  }
  const ipv4 = requireIpv4(ipv4Text);
  const addr = isatapAddress(parsed.prefix, ipv4, !isPrivateIpv4(ipv4));
  const e = explainIpv6(addr);
  const header = [formatIpv6(addr)];
  if ('mixedNotation' in e) header.push(e.mixedNotation);
  emit(io, values.json === true, e, header);
  return EXIT_OK;
}

function encode(args: string[], io: CliIo): number {
  const [what, ...rest] = args;
  switch (what) {
    case 'teredo':
      return encodeTeredo(rest, io);
    case '6to4':
      return encodeSixToFour(rest, io);
    case 'isatap':
      return encodeIsatap(rest, io);
    case '--help':
    case '-h':
    case 'help':
      io.out(ENCODE_HELP);
      return EXIT_OK;
    case undefined:
      throw new UsageError("encode wants teredo, 6to4 or isatap (try 'transit6 addr encode --help')");
    default:
      throw new UsageError(`cannot encode '${what}': choose teredo, 6to4 or isatap`);
  }
}

/** `transit6 addr ...`; returns the exit code, throws UsageError on bad input. */
export function addrCommand(argv: string[], io: CliIo): number {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'decode':
      return decode(rest, io);
    case 'encode':
      return encode(rest, io);
    case '--help':
    case '-h':
    case 'help':
      io.out(ADDR_HELP);
      return EXIT_OK;
    case undefined:
      throw new UsageError("addr wants decode or encode (try 'transit6 addr --help')");
    default:
      throw new UsageError(`unknown subcommand '${sub}': use decode or encode (try 'transit6 addr --help')`);
  }
}
