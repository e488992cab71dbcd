/**
 * Faults (root only), on the Teredo lab with cli-prc (port-restricted NAT) and cli-pub (public):
 *   - the control socket used by a non-root user (setpriv to nobody): refused, with a clear error;
 *   - kill -9 and restart of the server, then of the relay, under traffic: clients recover within the 10 s
 *     bound (the times measured are printed; the assertion is the bound, nothing tighter);
 *   - a NAT that drops every mapping (conntrack -F in nat-prc): cli-prc re-qualifies, the relay and cli-pub bubble
 *     it again and traffic flows;
 *   - the tunnel interface removed under the relay and under a client (ip link del): a clear error and a clean
 *     exit (status 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inNs } from '../../src/lab/exec.js';
import { installCleanupHandlers } from '../../src/lab/netns.js';
import { ping6, relayArgs, serverArgs, showJson, startTeredoLab, TRANSIT6_BIN, waitForClients, waitForDaemon, type RunningTeredoLab } from '../../src/lab/teredo-lab.js';
import { topologyClient, topologyNat } from '../../src/lab/teredo-topology.js';
import type { ClientStateJson } from '../../src/io/control.js';
import { skipUnlessRoot } from './helpers.js';

installCleanupHandlers();

/** The bound for recovery after a kill -9 and restart. */
const RECOVERY_BOUND_MS = 10_000;
const HOSTILE = fileURLToPath(new URL('../../src/lab/hostile.js', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Milliseconds until `ok()` is true (tried every 250 ms), or undefined after `limitMs`. */
async function timeUntil(ok: () => Promise<boolean>, limitMs: number, from = Date.now()): Promise<number | undefined> {
  while (Date.now() - from < limitMs) {
    if (await ok().catch(() => false)) return Date.now() - from;
    await sleep(250);
  }
  return undefined;
}

async function pingOnce(l: RunningTeredoLab, ns: string, addr: string): Promise<boolean> {
  return (await ping6(l.lab, ns, addr, { count: 1, waitS: 1 })).received === 1;
}

async function clientState(l: RunningTeredoLab, name: 'cli-prc' | 'cli-pub'): Promise<ClientStateJson> {
  return showJson<ClientStateJson>(topologyClient(l.topology, name).ns, 'state', 'client', 3000);
}

test('faults: control socket as nobody, kill -9 of server and relay, NAT mappings flushed, tunnel removed', { timeout: 600_000 }, async (t) => {
  if (skipUnlessRoot(t)) return;
  const l = await startTeredoLab({ clients: ['cli-prc', 'cli-pub'] });
  try {
    await waitForClients(l, ['cli-prc', 'cli-pub']);
    const T = l.topology;
    const prcNs = topologyClient(T, 'cli-prc').ns;
    const pubNs = topologyClient(T, 'cli-pub').ns;
    const v6host = T.v6host.ns;
    const pubAddr = (await clientState(l, 'cli-pub')).teredoAddress!;
    assert.ok(await pingOnce(l, v6host, pubAddr), 'v6host reaches cli-pub through the relay');

    // ---- the control socket, as a non-root user ---------------------------------------------------------------
    const inode = /net:\[(\d+)\]/.exec(readlinkSync(`/proc/${l.daemons.server.pid}/ns/net`))![1];
    const sock = `/run/transit6/netns-${inode}/teredo-server.sock`;
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups', '--'];
    const connect = `require('net').connect(${JSON.stringify(sock)}).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(3)})`;
    const raw = await inNs(T.server.ns, 'setpriv', [...asNobody, process.execPath, '-e', connect], { allowFailure: true });
    t.diagnostic(`connect to ${sock} as nobody: ${raw.stdout.trim()} (exit ${String(raw.exitCode)})`);
    assert.equal(raw.exitCode, 3);
    assert.equal(raw.stdout.trim(), 'EACCES');
    const show = await inNs(T.server.ns, 'setpriv', [...asNobody, process.execPath, TRANSIT6_BIN, 'teredo', 'show', 'stats', '--role', 'server'], { allowFailure: true });
    t.diagnostic(`transit6 teredo show stats as nobody: exit ${String(show.exitCode)}: ${show.stderr.trim()}`);
    assert.notEqual(show.exitCode, 0);
    assert.equal(show.stdout, '', 'nothing leaked on stdout');
    assert.match(show.stderr, /permission|denied|root/i);
    assert.equal(show.stderr.trim().split('\n').length, 1, 'one line');
    // Root still gets through.
    await showJson(T.server.ns, 'state', 'server');

    // ---- kill -9 of the server under traffic ------------------------------------------------------------------
    const traffic = ping6(l.lab, prcNs, '2001:db8:1::10', { count: 60, intervalS: 0.25, waitS: 1 });
    await sleep(2000);
    process.kill(l.daemons.server.pid, 'SIGKILL');
    await l.daemons.server.exited;
    const killedAt = Date.now();
    const server2 = l.lab.spawn(T.server.ns, 'server2', process.execPath, [TRANSIT6_BIN, ...serverArgs(T)]);
    l.daemons.server = server2;
    await waitForDaemon(server2, 'server');
    // Recovered: the restarted server answers a qualification, and the clients are qualified and reach v6host.
    const serverBack = await timeUntil(async () => {
      const q = await inNs(pubNs, process.execPath, [HOSTILE, JSON.stringify({ kind: 'qualify', to: '198.51.100.1:3544', count: 1, tries: 1, timeoutMs: 500 })], { allowFailure: true });
      return q.exitCode === 0 && (JSON.parse(q.stdout) as { succeeded: number }).succeeded === 1;
    }, 30_000, killedAt);
    const clientsBack = await timeUntil(async () => (await clientState(l, 'cli-prc')).state === 'qualified' && (await pingOnce(l, prcNs, '2001:db8:1::10')), 30_000, killedAt);
    const during = await traffic;
    t.diagnostic(`server kill -9: answers RSs again ${String(serverBack)} ms after the kill, cli-prc qualified and reaching v6host after ${String(clientsBack)} ms; pings during: ${during.received}/${during.sent}`);
    assert.ok(serverBack !== undefined && serverBack <= RECOVERY_BOUND_MS, `server back within 10 s (${String(serverBack)} ms)`);
    assert.ok(clientsBack !== undefined && clientsBack <= RECOVERY_BOUND_MS, `clients recovered within 10 s (${String(clientsBack)} ms)`);

    // ---- kill -9 of the relay under traffic -------------------------------------------------------------------
    const traffic2 = ping6(l.lab, v6host, pubAddr, { count: 60, intervalS: 0.25, waitS: 1 });
    await sleep(2000);
    process.kill(l.daemons.relay!.pid, 'SIGKILL');
    await l.daemons.relay!.exited;
    const relayKilledAt = Date.now();
    const relay2 = l.lab.spawn(T.relay.ns, 'relay2', process.execPath, [TRANSIT6_BIN, ...relayArgs(T)]);
    l.daemons.relay = relay2;
    await waitForDaemon(relay2, 'relay');
    const relayBack = await timeUntil(async () => (await pingOnce(l, v6host, pubAddr)) && (await pingOnce(l, prcNs, '2001:db8:1::10')), 30_000, relayKilledAt);
    const during2 = await traffic2;
    t.diagnostic(`relay kill -9: v6host <-> cli-pub and cli-prc -> v6host again after ${String(relayBack)} ms; pings during: ${during2.received}/${during2.sent}`);
    assert.ok(relayBack !== undefined && relayBack <= RECOVERY_BOUND_MS, `relay path back within 10 s (${String(relayBack)} ms)`);

    // ---- a NAT that drops every mapping -----------------------------------------------------------------------
    const before = await clientState(l, 'cli-prc');
    const relayStats0 = await showJson<{ events: Record<string, number> }>(T.relay.ns, 'stats', 'relay');
    assert.ok(await pingOnce(l, prcNs, pubAddr), 'cli-prc reaches cli-pub directly before the flush');
    const flush = await inNs(topologyNat(T, 'nat-prc').ns, 'conntrack', ['-F'], { allowFailure: true });
    const flushedAt = Date.now();
    assert.equal(flush.exitCode, 0, flush.stderr);
    // Until cli-prc has re-qualified through its new mapping and both peers reach it again.
    let after: ClientStateJson | undefined;
    const requalified = await timeUntil(async () => {
      after = await clientState(l, 'cli-prc');
      if (after.state !== 'qualified' || !after.teredoAddress) return false;
      const serverContact = after.lastServerContactAgoMs ?? Infinity;
      return serverContact < Date.now() - flushedAt && (await pingOnce(l, v6host, after.teredoAddress)) && (await pingOnce(l, pubNs, after.teredoAddress));
    }, 90_000, flushedAt);
    const relayStats1 = await showJson<{ events: Record<string, number> }>(T.relay.ns, 'stats', 'relay');
    t.diagnostic(`conntrack -F in nat-prc: address ${before.teredoAddress} -> ${String(after?.teredoAddress)}, mapping ${String(before.externalMapping)} -> ${String(after?.externalMapping)}; re-qualified and reachable from v6host and cli-pub after ${String(requalified)} ms`);
    assert.ok(requalified !== undefined, 'cli-prc re-qualified and is reachable again');
    assert.ok((relayStats1.events['indirect-bubbles-sent'] ?? 0) > (relayStats0.events['indirect-bubbles-sent'] ?? 0), 'the relay bubbled again');

    // ---- the tunnel removed under the relay and under a client ------------------------------------------------
    for (const [ns, p, role] of [
      [T.relay.ns, l.daemons.relay!, 'relay'],
      [pubNs, l.daemons.clients['cli-pub']!, 'client'],
    ] as const) {
      const del = await inNs(ns, 'ip', ['link', 'del', 'teredo'], { allowFailure: true });
      assert.equal(del.exitCode, 0, del.stderr);
      const exit = await Promise.race([p.exited, sleep(10_000).then(() => undefined)]);
      t.diagnostic(`${role} after ip link del teredo: ${JSON.stringify(exit)}; last log line: ${p.log().trim().split('\n').pop()}`);
      assert.ok(exit, `the ${role} exited`);
      assert.equal(exit.code, 1, `the ${role} exited with status 1`);
      assert.match(p.log(), /tunnel interface teredo is gone.*exiting/);
      assert.match(p.log(), /stopping: the tunnel interface/);
    }
    // The server kept running through all of it.
    assert.ok(l.daemons.server.running);
  } finally {
    await l.lab.destroy();
  }
});
