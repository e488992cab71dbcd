/** The transit6 command: dispatches to subcommands; bad usage is one line on stderr and exit 2. */
import { UsageError, ConfigError } from '../core/errors.js';
import { EXIT_FAILURE, EXIT_USAGE, processIo, type CliIo } from './io.js';

type Command = (argv: string[], io: CliIo) => number | Promise<number>;

/**
 * Each command's module is loaded when it runs, not before: a daemon's start (and so its time to a Teredo address)
 * does not pay for loading the simulator, the lab, the trace renderer and the other roles.
 */
const commands: Record<string, { run: Command; summary: string }> = {
  addr: { run: async (a, io) => (await import('./addr.js')).addrCommand(a, io), summary: 'decode or encode Teredo, 6to4, ISATAP and other IPv6 addresses' },
  sim: { run: async (a, io) => (await import('./sim.js')).simCommand(a, io), summary: 'run Teredo exchanges in the deterministic NAT simulator' },
  lab: { run: async (a, io) => (await import('./lab.js')).labCommand(a, io), summary: 'bring the namespace labs (Teredo, ISATAP, 6to4, PortProxy) up or down, or show what runs in them' },
  teredo: { run: async (a, io) => (await import('./teredo.js')).teredoCommand(a, io), summary: 'run a Teredo client, relay or server daemon; show a running one' },
  '6to4': { run: async (a, io) => (await import('./sixtofour.js')).sixToFourCommand(a, io), summary: 'run a 6to4 host, router (with a LAN) or relay; show a running one' },
  isatap: { run: async (a, io) => (await import('./isatap.js')).isatapCommand(a, io), summary: 'run an ISATAP host or router (IPv6 in IPv4 protocol 41); show a running one' },
  trace: { run: async (a, io) => (await import('./trace.js')).traceCommand(a, io), summary: 'ladder diagram of a pcap file or of a running daemon (--live)' },
  portproxy: { run: async (a, io) => (await import('./portproxy.js')).portproxyCommand(a, io), summary: 'TCP proxy rules between IPv4 and IPv6 (netsh portproxy) and the proxy daemon' },
};

export function usage(): string {
  const lines = ['usage: transit6 <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', "Run 'transit6 <command> --help' for a command's options and examples.");
  return lines.join('\n');
}

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  // A client daemon that will drop root keeps a privileged helper, a second Node process: started before the
  // daemon's modules load, so that its start-up is not on the way to the Teredo address (io/privclient.ts).
  if (name === 'teredo' && rest[0] === 'client' && process.getuid?.() === 0 && (rest.includes('-f') || rest.includes('--foreground'))) {
    (await import('../io/privclient.js')).PrivilegedHelper.prestart();
  }
  const cmd = commands[name];
  if (!cmd) {
    io.err(`transit6: unknown command '${name}' (try 'transit6 --help')`);
    return EXIT_USAGE;
  }
  try {
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      io.err(`transit6 ${name}: ${e.message}`);
      return EXIT_USAGE;
    }
    if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
      // Node's own messages run to several lines of advice: the first one says what is wrong.
      io.err(`transit6 ${name}: ${e.message.split('\n')[0]!.replace(/\. To specify a positional.*$/, '.')}`);
      return EXIT_USAGE;
    }
    io.err(`transit6 ${name}: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
}

// Run when loaded as the program (bin/transit6.js imports this module).
const invoked = process.argv[1] ?? '';
if (invoked.endsWith('transit6') || invoked.endsWith('transit6.js') || invoked.endsWith('main.js')) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`transit6: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = EXIT_FAILURE;
    },
  );
}
