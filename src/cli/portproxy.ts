/**
 * transit6 portproxy: netsh-style rules kept in one config file, and the daemon that carries them out.
 */
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UsageError } from '../core/errors.js';
import { controlDir, controlRequest, ControlError, ControlServer } from '../io/control.js';
import { parseListenAddress, type ListenAddress } from '../config/miredo.js';
import { createLogger, type Level } from '../io/log.js';
import { createNotifier } from '../io/sdnotify.js';
import { metricsText, serveMetrics, type MetricsServer } from '../io/metrics.js';
import { packageVersion } from '../io/version.js';
import { PortProxy, type ListenerStats } from '../io/portproxy/proxy.js';
import { DEFAULT_CONFIG, readRules, serviceLookup, writeRules } from '../io/portproxy/store.js';
import { applyEdit, formatRuleLine, formatShow, isMode, parseRuleArgs, sortRules, type Mode, type Rule, type Verb } from '../portproxy/rules.js';
import { EXIT_FAILURE, EXIT_OK, type CliIo } from './io.js';

export const PORTPROXY_HELP = `usage: transit6 portproxy <verb> [arguments] [--config FILE]

TCP proxying between IPv4 and IPv6 (netsh interface portproxy), with the rules kept in one file.

  add    v4tov4|v4tov6|v6tov4|v6tov6 listenport=N [connectaddress=A] [connectport=M] [listenaddress=B] [options]
         create a rule (or replace the one on the same listen address and port)
  set    v4tov4|v4tov6|v6tov4|v6tov6 listenport=N [listenaddress=B] [connectaddress=A] [connectport=M] [options]
         change the named fields of an existing rule
  delete v4tov4|v4tov6|v6tov4|v6tov6 listenport=N [listenaddress=B]
  show   [all|v4tov4|v4tov6|v6tov4|v6tov6] [--json] [--live]
         the rules as a netsh-like table; --live adds the running daemon's connections and counters
  reset  delete every rule
  run    the proxy daemon: listens for every rule, applies changes to the file live (file watch or SIGHUP)
         without dropping open connections; SIGUSR1 logs the counters; SIGTERM/SIGINT stop it

defaults (as netsh): connectport = listenport; connectaddress = this computer (127.0.0.1 or ::1 in the target
family); listenaddress = every address of the listening family (shown as *). Tags may be left out and the values
given in netsh's order: listenport connectaddress connectport listenaddress. Ports may be service names (http).

options (key=value, or as flags: --listen-port N, --listen-address A, --connect-address A, --connect-port N,
--limit N, --idle S, --acl LIST, --proxy-protocol V):
  limit=N          at most N connections at once (more are reset); 0 = no limit
  idle=SECONDS     close a connection after this long without traffic either way (30s, 5m, 2h); 0 = never
  acl=CIDR[,CIDR]  only these client sources (of the listening family); acl=any clears it
  proxy=v1|v2      send a PROXY protocol header to the target first (none to clear)

common flags:
  --config FILE    the rule file (default ${DEFAULT_CONFIG}); written atomically
  --control PATH   (run, show --live) the daemon's control socket (default /run/transit6/netns-<id>/portproxy.sock)
  --log-level L    (run) debug|info|warn|error
  --metrics HOST:PORT  (run) Prometheus metrics at http://HOST:PORT/metrics: per rule, connections accepted,
                   refused and active, bytes each way, errors by reason (e.g. 127.0.0.1:9547; default off)

examples:
  # IPv6 clients reach an IPv4-only web server 192.168.1.10:80 through this host's port 80
  transit6 portproxy add v6tov4 listenport=80 connectaddress=192.168.1.10
  # IPv4 clients reach an IPv6-only service, by name (AAAA records only), on port 8443
  transit6 portproxy add v4tov6 listenport=443 connectaddress=svc.example.net connectport=8443 proxy=v2
  # an IPv6 face for a local IPv4-only service (connectaddress defaults to 127.0.0.1)
  transit6 portproxy add v6tov4 --listen-port 5432 --limit 100 --idle 15m --acl 2001:db8:1::/48
  transit6 portproxy show all
  transit6 portproxy delete v6tov4 listenport=5432
  transit6 portproxy run --config /etc/transit6/portproxy.conf --metrics 127.0.0.1:9547`;

interface Common {
  config: string;
  json: boolean;
  live: boolean;
  control: string | undefined;
  logLevel: Level | undefined;
  metrics: ListenAddress | undefined;
  rest: string[];
}

const FLAG_TAGS: Record<string, string> = {
  'listen-port': 'listenport',
  'listen-address': 'listenaddress',
  'connect-address': 'connectaddress',
  'connect-port': 'connectport',
  protocol: 'protocol',
  limit: 'limit',
  idle: 'idle',
  'idle-timeout': 'idle',
  acl: 'acl',
  proxy: 'proxy',
  'proxy-protocol': 'proxy',
};

/** Splits out --config/--json/... and turns rule flags (--listen-port 80, --listen-port=80) into key=value. */
function parseCommon(argv: readonly string[]): Common {
  const c: Common = { config: DEFAULT_CONFIG, json: false, live: false, control: undefined, logLevel: undefined, metrics: undefined, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      c.rest.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const takeValue = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      return v;
    };
    if (name === 'json' || name === 'live') {
      if (eq > 0) throw new UsageError(`--${name} takes no value`);
      c[name] = true;
    } else if (name === 'config') {
      c.config = takeValue();
      if (c.config === '') throw new UsageError('--config needs a file name');
    } else if (name === 'control') c.control = takeValue();
    else if (name === 'log-level') {
      const v = takeValue();
      if (!['debug', 'info', 'warn', 'error'].includes(v)) throw new UsageError(`bad --log-level '${v}' (debug, info, warn or error)`);
      c.logLevel = v as Level;
    } else if (name === 'metrics') {
      c.metrics = parseListenAddress(takeValue(), { where: '--metrics', name: '--metrics', baseDir: process.cwd(), warn: () => undefined });
    } else if (FLAG_TAGS[name]) c.rest.push(`${FLAG_TAGS[name]}=${takeValue()}`);
    else throw new UsageError(`unknown option '--${name}' (try 'transit6 portproxy --help')`);
  }
  return c;
}

function defaultControlSocket(): string {
  return join(controlDir(), 'portproxy.sock');
}

function needMode(word: string | undefined, verb: string): Mode {
  if (word === undefined) throw new UsageError(`${verb} needs a mode: v4tov4, v4tov6, v6tov4 or v6tov6`);
  const m = word.toLowerCase();
  if (!isMode(m)) throw new UsageError(`unknown mode '${word}' (v4tov4, v4tov6, v6tov4 or v6tov6)`);
  return m;
}

export async function portproxyCommand(argv: string[], io: CliIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h') || argv[0] === 'help') {
    io.out(PORTPROXY_HELP);
    return EXIT_OK;
  }
  const [verbWord, ...after] = argv;
  if (verbWord === undefined) throw new UsageError("needs a verb: add, set, delete, show, reset or run (try 'transit6 portproxy --help')");
  const verb = verbWord.toLowerCase();
  const c = parseCommon(after);
  if (c.metrics && verb !== 'run') throw new UsageError(`--metrics belongs to run, not ${verb}`);
  switch (verb) {
    case 'add':
    case 'set':
    case 'delete': {
      const mode = needMode(c.rest[0], verb);
      if (c.json || c.live) throw new UsageError(`--json and --live belong to show, not ${verb}`);
      const spec = parseRuleArgs(verb as Verb, mode, c.rest.slice(1), serviceLookup());
      const rules = readRules(c.config);
      const r = applyEdit(rules, verb as Verb, spec);
      if (!r.ok) {
        io.err(`transit6 portproxy: ${r.error}`);
        return EXIT_FAILURE;
      }
      writeRules(c.config, r.rules);
      io.out(`${verb === 'delete' ? 'deleted' : verb === 'set' ? 'changed' : 'added'}: ${formatRuleLine(r.rule!)}`);
      return EXIT_OK;
    }
    case 'show': {
      const which = (c.rest[0] ?? 'all').toLowerCase();
      if (which !== 'all' && !isMode(which)) throw new UsageError(`show takes all, v4tov4, v4tov6, v6tov4 or v6tov6, not '${c.rest[0]}'`);
      if (c.rest.length > 1) throw new UsageError(`unexpected argument '${c.rest[1]}'`);
      const rules = sortRules(readRules(c.config)).filter((r) => which === 'all' || r.mode === which);
      let live: ListenerStats[] | undefined;
      if (c.live) live = await liveStats(c.control ?? defaultControlSocket());
      if (c.json) {
        io.out(JSON.stringify(live ? { config: c.config, rules, live } : { config: c.config, rules }, null, 2));
        return EXIT_OK;
      }
      const table = formatShow(rules, which as Mode | 'all');
      io.out(table === '' ? `no rules in ${c.config}` : table);
      if (live) io.out(formatLive(live.filter((l) => which === 'all' || l.mode === which)));
      return EXIT_OK;
    }
    case 'reset': {
      if (c.rest.length > 0) throw new UsageError(`reset takes no arguments, found '${c.rest[0]}'`);
      const n = readRules(c.config).length;
      writeRules(c.config, []);
      io.out(`removed ${n} rule${n === 1 ? '' : 's'} from ${c.config}`);
      return EXIT_OK;
    }
    case 'run':
      if (c.rest.length > 0) throw new UsageError(`run takes no arguments, found '${c.rest[0]}'`);
      return runDaemon(c);
    default:
      throw new UsageError(`unknown verb '${verbWord}' (add, set, delete, show, reset or run)`);
  }
}

async function liveStats(path: string): Promise<ListenerStats[]> {
  try {
    return (await controlRequest(path, 'stats')) as ListenerStats[];
  } catch (e) {
    if (e instanceof ControlError && (e.code === 'no-daemon' || e.code === 'stale')) throw new Error(`no transit6 portproxy daemon answers on ${path} (is 'transit6 portproxy run' running?)`);
    throw e;
  }
}

function formatLive(stats: ListenerStats[]): string {
  const lines = ['', 'Running:', ''];
  const rows = stats.map((s) => [
    s.mode,
    s.listen,
    s.target,
    s.status,
    String(s.active),
    String(s.counters.accepted ?? 0),
    String((s.counters['rejected-acl'] ?? 0) + (s.counters['rejected-limit'] ?? 0)),
    String((s.counters['connect-failed'] ?? 0) + (s.counters['connect-timeout'] ?? 0) + (s.counters['resolve-failed'] ?? 0)),
    String(s.counters['bytes-to-target'] ?? 0),
    String(s.counters['bytes-to-client'] ?? 0),
  ]);
  const head = ['Mode', 'Listen', 'Target', 'Status', 'Active', 'Accepted', 'Refused', 'TargetFail', 'BytesIn', 'BytesOut'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  lines.push(head.map((h, i) => h.padEnd(w[i]!)).join('  '));
  for (const r of rows) lines.push(r.map((x, i) => x.padEnd(w[i]!)).join('  ').trimEnd());
  for (const s of stats) if (s.error) lines.push(`  ${s.mode} ${s.listen}: ${s.error}`);
  return lines.join('\n');
}

async function runDaemon(c: Common): Promise<number> {
  const log = createLogger('portproxy', c.logLevel ? { level: c.logLevel } : {});
  let rules: Rule[];
  try {
    rules = readRules(c.config);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new Error(`cannot read ${c.config}: ${(e as Error).message}`);
  }
  const startedAt = performance.now();
  const notify = createNotifier({ onError: (m) => log.warn(m) });
  const proxy = new PortProxy({ log });
  let metrics: MetricsServer | undefined;
  if (c.metrics) {
    const version = packageVersion();
    // Before the rules bind: a wrong --metrics stops the daemon at once, with nothing to undo.
    metrics = await serveMetrics(c.metrics, () => metricsText({ role: 'portproxy', version, uptimeMs: performance.now() - startedAt, listeners: proxy.stats() }), log);
  }
  const first = await proxy.apply(rules);
  log.info('started', { config: c.config, rules: rules.length, failed: first.failed.length });
  if (rules.length === 0) log.warn(`no rules in ${c.config}: add some with 'transit6 portproxy add' (applied live)`);

  let control: ControlServer | undefined;
  const controlPath = c.control ?? defaultControlSocket();
  try {
    control = new ControlServer(controlPath, ({ cmd }) => {
      if (cmd === 'stats') return proxy.stats();
      if (cmd === 'rules') return proxy.rules();
      throw new Error(`unknown command '${cmd}' (stats, rules)`);
    }, { daemon: 'transit6 portproxy daemon' });
    await control.listen();
    log.info('control socket', { path: controlPath });
  } catch (e) {
    control = undefined;
    const msg = e instanceof ControlError && e.code === 'in-use' ? `another transit6 portproxy daemon answers on ${controlPath}` : (e as Error).message;
    log.warn(`no control socket (show --live will not work): ${msg}`);
  }

  // Reloads are serialized: a change while one runs triggers one more afterwards.
  let reloading: Promise<void> | undefined;
  let again = false;
  let lastText = '';
  // systemd (Type=notify-reload or notify): RELOADING=1 when a SIGHUP or a file change starts a reload, READY=1
  // with the outcome in STATUS= when it is done.
  const status = (n: number, failed: number): string => `${n} rule${n === 1 ? '' : 's'}${failed > 0 ? `, ${failed} not listening` : ''} from ${c.config}`;
  let applied = status(rules.length, first.failed.length);
  let lastStatus = applied;
  const reload = (why: string): Promise<void> => {
    if (reloading) {
      again = true;
      return reloading;
    }
    const announce = why === 'SIGHUP' || why === 'file changed';
    if (announce) notify.reloading();
    reloading = (async () => {
      do {
        again = false;
        let next: Rule[];
        try {
          next = readRules(c.config);
        } catch (e) {
          log.error('config not applied, the running rules stay', { why, error: (e as Error).message });
          lastStatus = `config not applied (${(e as Error).message}); running ${applied}`;
          continue;
        }
        const text = next.map(formatRuleLine).join('\n');
        if (text === lastText && why === 'file changed') continue;
        lastText = text;
        const r = await proxy.apply(next);
        lastStatus = applied = status(next.length, r.failed.length);
        if (r.added.length + r.removed.length + r.changed.length > 0 || r.failed.length > 0) {
          log.info('config applied', { why, added: r.added.length, removed: r.removed.length, changed: r.changed.length, unchanged: r.unchanged, failed: r.failed.length });
        }
      } while (again);
    })().finally(() => {
      reloading = undefined;
      if (announce) notify.ready(lastStatus);
    });
    return reloading;
  };
  lastText = rules.map(formatRuleLine).join('\n');

  // The directory is watched, not the file: an atomic write replaces the file (a new inode) by rename.
  let debounce: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  const base = basename(c.config);
  try {
    mkdirSync(dirname(c.config), { recursive: true, mode: 0o755 });
    watcher = watch(dirname(c.config), (_event, name) => {
      if (name !== null && name !== base) return;
      if (debounce) clearTimeout(debounce);
      debounce = setTimeout(() => void reload('file changed'), 100);
    });
    watcher.on('error', (e) => log.warn('config watch failed; SIGHUP still reloads', { error: e.message }));
  } catch (e) {
    log.warn('cannot watch the config directory; SIGHUP still reloads', { error: (e as Error).message });
  }
  const onHup = (): void => void reload('SIGHUP');
  const onUsr1 = (): void => log.info('counters', { listeners: proxy.stats() });
  process.on('SIGHUP', onHup);
  process.on('SIGUSR1', onUsr1);
  // The file may have changed between the first read and the start of the watch: look once more.
  await reload('watch started');
  notify.ready(lastStatus);
  log.info('ready: rule changes in the config file apply live', { config: c.config });

  const sig = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info(`stopping (${sig})`);
  notify.stopping(`stopping (${sig})`);
  process.off('SIGHUP', onHup);
  process.off('SIGUSR1', onUsr1);
  watcher?.close();
  if (debounce) clearTimeout(debounce);
  await control?.close();
  await metrics?.close();
  await proxy.close();
  log.info('stopped');
  return EXIT_OK;
}

