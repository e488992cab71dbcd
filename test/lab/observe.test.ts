/**
 * The observability tools on real kernels: a client and a server in the namespace lab with --metrics, --pcap and
 * JSON logs; tshark decodes the capture as Teredo with no malformed packet; `transit6 trace --live` draws a real
 * qualification (the client re-qualifies after SIGHUP) and `transit6 trace` draws the capture files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { buildTeredoTopology } from '../../src/lab/teredo-topology.js';
import { inNs } from '../../src/lab/exec.js';
import { parseExposition } from '../io/exposition.js';
import { BIN, skipUnlessRoot, teredoState as state, waitFor } from './helpers.js';

async function scrape(ns: string, url: string): Promise<string> {
  const r = await inNs(ns, process.execPath, ['-e', `fetch(${JSON.stringify(url)}).then(async (r) => { if (!r.ok || !/version=0.0.4/.test(r.headers.get('content-type'))) process.exit(3); process.stdout.write(await r.text()); })`]);
  return r.stdout;
}

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const fams = parseExposition(text);
  for (const f of fams.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

test('client and server with --metrics, --pcap, JSON logs; trace --live draws a real qualification; tshark decodes the capture', { timeout: 120_000 }, async (t) => {
  if (skipUnlessRoot(t)) return;
  if (spawnSync('tshark', ['-v']).status !== 0) {
    t.skip('tshark is not installed (scripts/install-deps.sh)');
    return;
  }
  const socat = spawnSync('socat', ['-V']).status === 0;
  const { lab, topology } = await buildTeredoTopology({ clients: ['cli-prc'] });
  // A stand-in for systemd's notification socket: socat prints the datagrams the server sends (sd_notify).
  const notifyDir = mkdtempSync(join(tmpdir(), 't6-notify-'));
  chmodSync(notifyDir, 0o755);
  const notifyPath = join(notifyDir, 'notify');
  let notified = '';
  const rx = socat ? spawn('socat', ['-u', `UNIX-RECV:${notifyPath},perm=0666`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'ignore'] }) : undefined;
  // Datagrams carry no newline at the end, and one read may hold several: messages are matched with \n* between.
  rx?.stdout!.on('data', (c: Buffer) => (notified += c.toString()));
  try {
    const cli = topology.clients[0]!;
    if (rx) await waitFor('the notify socket', async () => (spawnSync('test', ['-S', notifyPath]).status === 0 ? true : undefined), 5000);
    const server = lab.spawn(topology.server.ns, 'server', process.execPath, [BIN, 'teredo', 'server', '-f', '--server-bind-address', '198.51.100.1', '--metrics', '127.0.0.1:9544'], {
      env: { ...process.env, NOTIFY_SOCKET: notifyPath },
    });
    await waitFor('the server', () => state(topology.server.ns), 20_000);
    const base = join(lab.runDir, 'client');
    const client = lab.spawn(cli.ns, 'client', process.execPath, [BIN, 'teredo', 'client', '-f', '--server', '198.51.100.1', '--interface', 'teredo', '--pcap', base, '--metrics', '127.0.0.1:9545', '--log-level', 'debug']);
    const s = await waitFor('qualification and NAT detection', async () => {
      const st = await state(cli.ns);
      return st && st.state === 'qualified' && st.natDetection === 'done' && st.interfaceStatus === 'up' ? st : undefined;
    }, 20_000);
    assert.equal(s.natType, 'port-restricted');

    // Metrics: valid exposition text, and the values the daemon's own state and stats give.
    const m = await scrape(cli.ns, 'http://127.0.0.1:9545/metrics');
    assert.equal(sample(m, 'transit6_state', { state: 'qualified' }), 1);
    assert.equal(sample(m, 'transit6_state', { state: 'offline' }), 0);
    assert.equal(sample(m, 'transit6_nat_type', { type: 'port-restricted' }), 1);
    assert.ok(sample(m, 'transit6_router_solicitations_total')! >= 4);
    assert.ok(sample(m, 'transit6_packets_total', { side: 'udp', direction: 'in' })! >= 3, m);
    assert.ok(sample(m, 'transit6_bytes_total', { side: 'udp', direction: 'out' })! > 0);
    const sm = await scrape(topology.server.ns, 'http://127.0.0.1:9544/metrics');
    assert.ok(sample(sm, 'transit6_router_advertisements_total')! >= 3);
    assert.equal(sample(sm, 'transit6_info', { role: 'server' }), 1);

    // Traffic through the tunnel: the client runs a connectivity test through the server for this native host (no
    // relay runs, so no answer comes back; the tunnel side of the capture still sees the echo requests).
    await inNs(cli.ns, 'ping', ['-6', '-c', '2', '-i', '0.3', '-W', '1', '2001:db8:1::10'], { allowFailure: true });

    // Logs: JSON lines (stderr is a file), each state change once with its reason.
    const lines = client.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.filter((l) => l.event === 'qualified').length, 1);
    assert.equal(lines.filter((l) => l.event === 'nat-type').length, 1);
    assert.match(String(lines.find((l) => l.event === 'nat-type')!.msg), /port-restricted NAT/);
    assert.ok(lines.every((l) => typeof l.level === 'string' && typeof l.time === 'string'));

    // trace --live: replays the start, then the re-qualification a SIGHUP causes, until the NAT type is known again.
    const tracer = lab.spawn(cli.ns, 'trace', process.execPath, [BIN, 'trace', '--live', '--until', 'nat-type', '--svg', join(lab.runDir, 'live.svg'), '--width', '120']);
    await tracer.waitForLog(/# live: transit6 teredo client/, 10_000);
    process.kill(client.pid, 'SIGHUP');
    await tracer.waitForLog(/# stopped: \d+ packets/, 30_000);
    assert.equal((await tracer.exited).code, 0);
    const drawn = tracer.log();
    assert.match(drawn, /RS, auth nonce/);
    assert.match(drawn, /<--+RA, auth nonce [0-9a-f]{16}/);
    assert.match(drawn, /RS with cone flag/);
    // The replayed start: the first qualification and detection, with their notes.
    assert.match(drawn, /\* qualified: address 2001:0:c633:6401:[0-9a-f:]+, mapping 203\.0\.113\.1:\d+/);
    assert.match(drawn, /\* NAT type: port-restricted NAT/);
    // After the reload: the NAT still lets the secondary address in (the first detection's probes), yet the new
    // core, on the same mapping, keeps the first result instead of taking the NAT for a cone.
    assert.match(drawn, /NAT type: port-restricted NAT \(unchanged mapping: the previous detection stands\)/);
    assert.doesNotMatch(drawn, /NAT type: (cone|restricted) NAT/);
    assert.match(drawn, /ms\s+client\s+server/);
    assert.match(readFileSync(join(lab.runDir, 'live.svg'), 'utf8'), /RA, auth nonce [0-9a-f]{16}, origin indication 203\.0\.113\.1:\d+/);

    // Stopping flushes the capture files.
    await client.stop(5000);
    const udp = `${base}-udp.pcap`;
    const tun = `${base}-tun.pcap`;
    const decode = spawnSync('tshark', ['-r', udp, '-o', 'teredo.heuristic_teredo:TRUE', '-T', 'fields', '-e', 'frame.protocols'], { encoding: 'utf8' });
    assert.equal(decode.status, 0, decode.stderr);
    const frames = decode.stdout.trim().split('\n');
    assert.ok(frames.length >= 8, `${frames.length} frames`);
    for (const f of frames) assert.match(f, /udp:teredo:ipv6/, f);
    const malformed = spawnSync('tshark', ['-r', udp, '-o', 'teredo.heuristic_teredo:TRUE', '-Y', '_ws.malformed || _ws.expert.severity == error'], { encoding: 'utf8' });
    assert.equal(malformed.stdout.trim(), '', malformed.stdout);
    const tunDecode = spawnSync('tshark', ['-r', tun, '-T', 'fields', '-e', 'frame.protocols', '-e', 'icmpv6.type'], { encoding: 'utf8' });
    assert.equal(tunDecode.status, 0, tunDecode.stderr);
    assert.match(tunDecode.stdout, /^raw:ipv6:icmpv6(:data)?\t128$/m, 'echo requests on the tunnel side');
    const tunMalformed = spawnSync('tshark', ['-r', tun, '-Y', '_ws.malformed || _ws.expert.severity == error'], { encoding: 'utf8' });
    assert.equal(tunMalformed.stdout.trim(), '');

    // transit6 trace on the capture files draws the same exchange.
    const drawnFile = spawnSync(process.execPath, [BIN, 'trace', udp, tun, '--width', '140'], { encoding: 'utf8' });
    assert.equal(drawnFile.status, 0, drawnFile.stderr);
    assert.match(drawnFile.stdout, /RA, auth nonce [0-9a-f]{16}, origin indicati/);
    assert.match(drawnFile.stdout, /RA from the secondary address, port 3546/);
    assert.match(drawnFile.stdout, /stack sends echo request seq 1/);
    assert.match(drawnFile.stdout, /connectivity-test echo request/);
    assert.match(drawnFile.stdout, /client .*server/);

    // sd_notify from the server, now running as nobody: READY at start, RELOADING then READY on SIGHUP, STOPPING.
    if (rx) {
      await waitFor('READY=1', async () => (/READY=1\nSTATUS=running \(server\)/.test(notified) ? true : undefined), 5000);
      process.kill(server.pid, 'SIGHUP');
      await waitFor('the reload', async () => (/RELOADING=1\nMONOTONIC_USEC=\d+\n*READY=1\nSTATUS=reloaded/.test(notified) ? true : undefined), 5000);
      await server.stop(5000);
      await waitFor('STOPPING=1', async () => (/STOPPING=1\nSTATUS=stopping \(SIGTERM\)/.test(notified) ? true : undefined), 5000);
    } else {
      t.diagnostic('socat is not installed: sd_notify not checked (scripts/install-deps.sh)');
    }
  } finally {
    rx?.kill();
    rmSync(notifyDir, { recursive: true, force: true });
    await lab.destroy();
  }
});
