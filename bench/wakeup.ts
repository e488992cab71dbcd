/**
 * Why transit6's RTT through the lab is higher than Miredo's when the path is idle: what it costs to wake a Node
 * process compared to a C one. A C pinger sends one 1-byte UDP datagram over loopback, waits for the echo, sleeps
 * GAP ms, 200 times; the echo is a C program (poll + recvfrom + sendto) or a Node one (dgram). Medians and minima
 * in microseconds, for a gap of 50 ms (the bench's ping interval: the echo process is asleep each time) and 1 ms.
 * Needs gcc (installed with the native build's tools). A diagnostic for README "Performance", not a test.
 *
 *   node dist/bench/wakeup.js [--rounds 3]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const C_SOURCE = String.raw`
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
  if (argc < 3) return 2;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a; memset(&a, 0, sizeof a);
  a.sin_family = AF_INET; a.sin_addr.s_addr = htonl(0x7f000001); a.sin_port = htons(atoi(argv[2]));
  char b[64];
  if (!strcmp(argv[1], "echo")) {
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
    printf("ready\n"); fflush(stdout);
    for (;;) {
      struct sockaddr_in r; socklen_t l = sizeof r; struct pollfd p = { s, POLLIN, 0 };
      poll(&p, 1, -1);
      ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&r, &l);
      if (n >= 0) sendto(s, b, (size_t)n, 0, (struct sockaddr *)&r, l);
    }
  }
  int gap = atoi(argv[3]), n = 200;
  double *r = calloc((size_t)n, sizeof *r);
  for (int i = 0; i < n; i++) {
    double t = us();
    sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a);
    struct pollfd p = { s, POLLIN, 0 };
    if (poll(&p, 1, 1000) != 1) return 1;
    recv(s, b, sizeof b, 0);
    r[i] = us() - t;
    usleep((useconds_t)gap * 1000);
  }
  qsort(r, (size_t)n, sizeof *r, cmp);
  printf("%.1f %.1f\n", r[n / 2], r[0]);
  return 0;
}
`;

const NODE_ECHO = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(Number(process.argv[1]), '127.0.0.1', () => console.log('ready'));
`;

function started(p: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (code) => reject(new Error(`echo exited (${String(code)})`)));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
  const rounds = Number(values.rounds);
  const dir = mkdtempSync(join(tmpdir(), 't6-wakeup-'));
  const echoes: ChildProcess[] = [];
  try {
    writeFileSync(join(dir, 'ping.c'), C_SOURCE);
    const cc = spawnSync('gcc', ['-O2', '-o', join(dir, 'ping'), join(dir, 'ping.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`gcc: ${cc.stderr || cc.error?.message}`);
    const bin = join(dir, 'ping');
    const c = spawn(bin, ['echo', '17301'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const n = spawn(process.execPath, ['-e', NODE_ECHO, '17302'], { stdio: ['ignore', 'pipe', 'inherit'] });
    echoes.push(c, n);
    await Promise.all([started(c), started(n)]);
    console.log('echo   gap(ms)  median(us)  min(us)');
    for (let k = 0; k < rounds; k++) {
      for (const gap of [50, 1]) {
        for (const [name, port] of [['C', '17301'], ['Node', '17302']] as const) {
          const r = spawnSync(bin, ['ping', port, String(gap)], { encoding: 'utf8' });
          const [med, min] = r.stdout.trim().split(' ');
          console.log(`${name.padEnd(6)} ${String(gap).padStart(7)}  ${med!.padStart(10)}  ${min!.padStart(7)}`);
        }
      }
    }
  } finally {
    for (const p of echoes) p.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
