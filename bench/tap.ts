/**
 * What the daemon's packet tap (src/io/tap.ts) costs per packet: with nobody listening (the usual case: it
 * only counts packets and bytes for the metrics), and with a --pcap capture writing every packet.
 *   npm run build && node dist/bench/tap.js
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TapHub } from '../src/io/tap.js';
import { PcapCapture } from '../src/io/pcapfile.js';

const data = new Uint8Array(1280);
const src = { addr: 0xc0a8010a, port: 50000 };
const dst = { addr: 0xc6336401, port: 3544 };

function run(label: string, hub: TapHub, n: number): void {
  for (let r = 0; r < 3; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) hub.tap('udp-in', data, src, dst);
    const ns = Number(process.hrtime.bigint() - t0) / n;
    console.log(`${label}: ${ns.toFixed(1)} ns per 1280-byte packet (run ${r + 1})`);
  }
}

run('no listener', new TapHub({ backlog: 0 }), 20_000_000);
const dir = mkdtempSync(join(tmpdir(), 't6-tapbench-'));
try {
  const hub = new TapHub({ backlog: 0 });
  const capture = new PcapCapture(join(dir, 'bench'));
  hub.add(capture.sink);
  run('--pcap capture', hub, 500_000);
  capture.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
