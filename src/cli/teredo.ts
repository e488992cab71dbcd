/**
 * `transit6 teredo client|relay|server`: the daemons, taking Miredo's configuration files unchanged (-c), with
 * our own settings as flags on top; and `transit6 teredo show ...` for a running one.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';
import { MIREDO_DEFAULT_CONFIG } from '../config/daemon.js';
import { controlRequest } from '../io/control.js';
import { startDaemon, type DaemonHandle } from '../io/daemon.js';
import { createLogger } from '../io/log.js';
import { createNotifier } from '../io/sdnotify.js';
import { resolveDaemonConfig } from '../config/daemon.js';
import { teredoShowCommand } from './teredo-show.js';
import { EXIT_FAILURE, EXIT_OK, type CliIo } from './io.js';

const HELP = `usage: transit6 teredo client|relay|server [-c FILE] [-f] [-p PIDFILE] [options]
       transit6 teredo show state|peers|stats [--json] [--role ROLE] [--control PATH]

Runs a Teredo daemon. -c takes Miredo's files unchanged (miredo.conf for client and relay: RelayType,
ServerAddress, ServerAddress2, BindAddress, BindPort, InterfaceName, InterfaceMTU, SyslogFacility;
miredo-server.conf for the server: ServerBindAddress, ServerBindAddress2, InterfaceMTU). Options on the command
line override the file:

  -c, --config FILE        configuration file (without it: none; Miredo's default path is ${MIREDO_DEFAULT_CONFIG.client})
  -f, --foreground         stay in the foreground (without it the daemon detaches once it runs)
  -p, --pidfile FILE       write the process id here
  --server ADDR            client: the Teredo server (ServerAddress); --server2 ADDR its second address
  --server-bind-address A  server: its primary address; --server-bind-address2 A the second one
  --bind-address A --bind-port N   the UDP socket (client and relay)
  --interface NAME         the tunnel's name (InterfaceName)
  --relay-type TYPE        relay: relay | cone | restricted
  --host-address ADDR,...  relay: be a host-specific relay for these native IPv6 addresses
  --nat-udp-timeout S      client: the NAT's UDP timeout; refreshes are fitted below it (default 30)
  --probe-port N|no        the server's NAT-probe port (default 3546)
  --rs-rate-limit R[/B]    server: RSs answered per source IPv4 address (default 10/20; no: unlimited); also
                           --rs-global-rate-limit (20000/20000), --forward-rate-limit (1000/2000)
  --new-peer-rate-limit R[/B]  relay: new peers per native source /64 (default 100/200); also
                           --new-peer-global-rate-limit (1000/2000), --icmp-error-rate-limit (100/200)
  --max-peers N            client and relay: peer table size (default 65536); see SECURITY.md
  --user NAME              switch to this user once the tunnel and sockets are open (default nobody; root keeps root)
  --control PATH           control socket (default: one per network namespace under /run/transit6)
  --metrics HOST:PORT      Prometheus metrics at http://HOST:PORT/metrics (Metrics; e.g. 127.0.0.1:9544)
  --pcap FILE              capture to FILE-udp.pcap (Teredo datagrams) and FILE-tun.pcap (tunnel side) (Pcap)
  --log-level LEVEL        debug | info | warn | error (LogLevel; default info)
  --offload [yes|no]       client and relay: GRO into the tunnel, UDP GSO and GRO (Offload; default yes)
  Every directive has a flag: --server-port, --detect-nat, --local-discovery, --on-demand, --idle-timeout,
  --forward-native, ... (docs/transit6.md lists them all).

  Logs go to stderr: readable on a terminal, one JSON object a line otherwise, syslog-priority lines under
  systemd (JOURNAL_STREAM). Under systemd (Type=notify) the daemon reports READY=1, STATUS=, RELOADING=1, STOPPING=1.
  SIGHUP reloads the configuration, SIGTERM and SIGINT stop cleanly (addresses and routes removed).

examples:
  transit6 teredo client -f --server 198.51.100.1 --interface teredo
  transit6 teredo client -c /etc/miredo/miredo.conf
  transit6 teredo relay -f --relay-type relay --bind-port 3545 --interface teredo
  transit6 teredo server -f --server-bind-address 198.51.100.1
  transit6 teredo client -f --server 198.51.100.1 --metrics 127.0.0.1:9544 --pcap /tmp/teredo --log-level debug
  transit6 teredo show state`;

const SHORT: Record<string, string> = { '-c': 'config', '-f': 'foreground', '-p': 'pidfile', '-h': 'help' };
const BOOLEAN = new Set(['foreground', 'help']);
const OPTIONAL_VALUE = new Set(['offload']);

/** `--name value`, `--name=value`, and the short forms Miredo uses. */
function parseDaemonArgs(argv: string[]): { config?: string; foreground: boolean; flags: Record<string, string | boolean> } {
  const flags: Record<string, string | boolean> = {};
  let config: string | undefined;
  let foreground = false;
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let value: string | undefined;
    if (SHORT[arg]) arg = `--${SHORT[arg]}`;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}' (options start with --)`);
    const eq = arg.indexOf('=');
    let name = arg.slice(2);
    if (eq > 0) {
      name = arg.slice(2, eq);
      value = arg.slice(eq + 1);
    }
    if (BOOLEAN.has(name)) {
      if (name === 'foreground') foreground = true;
      else flags.help = true;
      continue;
    }
    // A yes/no directive's flag alone means yes (--offload); --offload no and --offload=no turn it off.
    if (value === undefined && OPTIONAL_VALUE.has(name) && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('-'))) value = 'yes';
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`--${name} wants a value`);
    }
    if (name === 'config') config = value;
    else flags[name] = value;
  }
  return { ...(config !== undefined ? { config } : {}), foreground, flags };
}

export async function teredoCommand(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.out(HELP);
    return sub === undefined ? 2 : EXIT_OK;
  }
  if (sub === 'show') return teredoShowCommand(rest, io);
  if (sub !== 'client' && sub !== 'relay' && sub !== 'server') throw new UsageError(`unknown role '${sub}': client, relay, server or show`);
  const role = sub;
  const { config, foreground, flags } = parseDaemonArgs(rest);
  if (flags.help) {
    io.out(HELP);
    return EXIT_OK;
  }
  // Validate everything before going anywhere (errors with file and line, exit 2).
  const resolved = resolveDaemonConfig(role, config, flags);
  if (!foreground) return detach(role, argv, resolved.controlSocket, io);
  const log = createLogger(`teredo-${role}`);
  // systemd (Type=notify): READY=1 once running, STATUS= at each state change, RELOADING=1, STOPPING=1.
  const notify = createNotifier({ onError: (m) => log.warn(m) });
  const startOpts = { onStatus: (s: string) => notify.status(s) };
  let handle: DaemonHandle;
  try {
    handle = await startDaemon(role, config, flags, log, startOpts);
  } catch (e) {
    io.err(`transit6 teredo ${role}: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  notify.ready(`running (${role})`);
  return new Promise<number>((resolve) => {
    let current = handle;
    const finish = (sig: string) => {
      notify.stopping(`stopping (${sig})`);
      void current.stop(sig).then(() => resolve(EXIT_OK));
    };
    // A daemon that lost its tunnel says so and exits (status 1) after cleaning up.
    const watch = (h: DaemonHandle): void => {
      void h.failed.then((reason) => {
        if (h !== current) return;
        log.error(`${reason}: exiting`);
        void h.stop(reason).then(() => resolve(EXIT_FAILURE));
      });
    };
    watch(handle);
    process.once('SIGTERM', () => finish('SIGTERM'));
    process.once('SIGINT', () => finish('SIGINT'));
    process.on('SIGHUP', () => {
      log.info('reloading the configuration (SIGHUP)');
      notify.reloading();
      if (process.getuid?.() !== 0) {
        // Unprivileged: a new core takes over the open tunnel and sockets.
        current.reloadInPlace(flags, config).then(
          () => {
            log.info('reloaded in place');
            notify.ready('reloaded');
          },
          (e: unknown) => {
            log.error(`reload refused, the running configuration stays: ${(e as Error).message}`);
            notify.ready(`reload refused: ${(e as Error).message}`);
          },
        );
        return;
      }
      void (async () => {
        try {
          resolveDaemonConfig(role, config, flags);
        } catch (e) {
          log.error(`reload refused, the running configuration stays: ${(e as Error).message}`);
          notify.ready(`reload refused: ${(e as Error).message}`);
          return;
        }
        await current.stop('reload');
        try {
          current = await startDaemon(role, config, flags, log, startOpts);
          watch(current);
          notify.ready('reloaded');
        } catch (e) {
          log.error(`reload failed: ${(e as Error).message}`);
          resolve(EXIT_FAILURE);
        }
      })();
    });
  });
}

/** Without -f: the same command in the foreground, detached; we return once its control socket answers. */
async function detach(role: string, argv: string[], control: string, io: CliIo): Promise<number> {
  const bin = fileURLToPath(new URL('../../../bin/transit6.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'teredo', ...argv, '-f'], { detached: true, stdio: 'ignore' });
  child.unref();
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (child.exitCode !== null) {
      io.err(`transit6 teredo ${role}: the daemon exited at start (run with -f to see why)`);
      return EXIT_FAILURE;
    }
    try {
      await controlRequest(control, 'state', undefined, 500);
      io.out(`transit6 teredo ${role} running (pid ${child.pid})`);
      return EXIT_OK;
    } catch {
      // not up yet
    }
  }
  io.err(`transit6 teredo ${role}: no answer from the daemon on ${control} after 10 s`);
  return EXIT_FAILURE;
}
