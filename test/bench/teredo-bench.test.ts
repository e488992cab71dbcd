/**
 * The Teredo benchmark's own logic, without a lab: how a UDP probe is judged, its options, and the summary's
 * ratios (bench/teredo.ts). The measurements themselves need root and are not tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBenchArgs, probeVerdict, summarize, type RunResult } from '../../bench/teredo.js';

test('a probe passes only below 0.1 % loss and when iperf3 sent at least 98 % of the asked rate', () => {
  const probe = (ratePps: number, sentPps: number, lossPct: number) => ({ ratePps, sentPackets: sentPps * 4, seconds: 4, lossPct });
  assert.equal(probeVerdict(probe(100_000, 99_990, 0)), 'pass');
  assert.equal(probeVerdict(probe(100_000, 99_990, 0.099)), 'pass');
  assert.equal(probeVerdict(probe(100_000, 99_990, 0.1)), 'loss');
  assert.equal(probeVerdict(probe(100_000, 98_000, 0)), 'pass');
  // A sender that could not keep up proves nothing about the path, even with no loss at all.
  assert.equal(probeVerdict(probe(100_000, 97_999, 0)), 'sender');
  assert.equal(probeVerdict(probe(900_000, 140_000, 0)), 'sender');
  assert.equal(probeVerdict(probe(900_000, 140_000, 5)), 'sender');
  assert.equal(probeVerdict({ ratePps: 1000, sentPackets: 0, seconds: 0, lossPct: 0 }), 'sender');
});

test('--udp-window: a size with K or M, or default for iperf3 own buffers; anything else is a usage error', () => {
  assert.equal(parseBenchArgs([]).udpWindow, '4M');
  assert.equal(parseBenchArgs(['--udp-window', '512K']).udpWindow, '512K');
  assert.equal(parseBenchArgs(['--udp-window', 'default']).udpWindow, undefined);
  assert.throws(() => parseBenchArgs(['--udp-window', '4G']), /--udp-window: '4G'/);
  assert.throws(() => parseBenchArgs(['--udp-window', '0']), /--udp-window: '0'/);
});

test('summary: medians per implementation, ratios transit6 / Miredo, none for the bare path (the same for both)', () => {
  const run = (impl: 'transit6' | 'miredo', best: number, bare: number): RunResult =>
    ({
      impl,
      run: 1,
      ok: true,
      udp: [],
      rss: [],
      errors: [],
      startedAt: '2026-12-06T00:00:00Z',
      udpSearch: { bestPps: best, bestDeliveredPps: best, senderLimited: false, probes: [] },
      bareSearch: { bestPps: bare, bestDeliveredPps: bare, senderLimited: true, probes: [] },
    }) satisfies RunResult;
  const rows = summarize(
    [run('transit6', 100_000, 140_000), run('miredo', 40_000, 130_000), run('transit6', 90_000, 120_000), run('miredo', 50_000, 150_000), run('transit6', 120_000, 150_000)],
    [],
    ['transit6', 'miredo'],
  );
  const best = rows.find((r) => r.metric.startsWith('UDP64 highest rate'))!;
  assert.deepEqual(best.perRun, { transit6: [100_000, 90_000, 120_000], miredo: [40_000, 50_000] });
  assert.equal(best.median.transit6, 100_000);
  assert.equal(best.median.miredo, 45_000);
  assert.equal(best.ratio, 100_000 / 45_000);
  const bare = rows.find((r) => r.metric.includes('bare path'))!;
  assert.equal(bare.median.transit6, 140_000);
  assert.equal(bare.ratio, null);
});
