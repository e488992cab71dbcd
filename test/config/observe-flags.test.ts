import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveDaemonConfig } from '../../src/config/daemon.js';
import { ConfigError, UsageError } from '../../src/core/errors.js';

const opts = { cwd: '/etc/transit6', defaultControlPath: () => '/run/x.sock', readFile: (p: string) => files[p] ?? '' };
const files: Record<string, string> = {
  '/etc/transit6/client.conf': 'ServerAddress 198.51.100.1\nMetrics [::1]:9544\nPcap capture/client\nLogLevel debug\n',
  '/etc/transit6/bad.conf': 'ServerAddress 198.51.100.1\nMetrics 9544\n',
};

test('--metrics, --pcap and --log-level on every role, and their file directives', () => {
  const c = resolveDaemonConfig('client', 'client.conf', {}, opts);
  assert.deepEqual(c.metrics, { host: '::1', port: 9544 });
  assert.equal(c.pcap, '/etc/transit6/capture/client');
  assert.equal(c.logLevel, 'debug');
  const f = resolveDaemonConfig('client', 'client.conf', { metrics: '127.0.0.1:9100', 'log-level': 'WARN', pcap: '/var/log/t.pcap' }, opts);
  assert.deepEqual(f.metrics, { host: '127.0.0.1', port: 9100 });
  assert.equal(f.logLevel, 'warn');
  assert.equal(f.pcap, '/var/log/t.pcap');
  assert.deepEqual(resolveDaemonConfig('relay', undefined, { metrics: ':9545' }, opts).metrics, { host: '0.0.0.0', port: 9545 });
  assert.deepEqual(resolveDaemonConfig('server', undefined, { 'server-bind-address': '198.51.100.1', metrics: 'localhost:9546' }, opts).metrics, { host: 'localhost', port: 9546 });
  assert.equal(resolveDaemonConfig('relay', undefined, {}, opts).metrics, undefined);
});

test('bad values: flags are usage errors, file lines configuration errors with their line', () => {
  assert.throws(() => resolveDaemonConfig('relay', undefined, { metrics: '127.0.0.1' }, opts), (e) => e instanceof UsageError && /--metrics '127\.0\.0\.1' is not HOST:PORT/.test(e.message));
  assert.throws(() => resolveDaemonConfig('relay', undefined, { metrics: '127.0.0.1:0' }, opts), /port must be 1-65535/);
  assert.throws(() => resolveDaemonConfig('relay', undefined, { metrics: '[fe::zz]:80' }, opts), /not an IPv6 address/);
  assert.throws(() => resolveDaemonConfig('relay', undefined, { 'log-level': 'loud' }, opts), /unknown --log-level 'loud'/);
  assert.throws(() => resolveDaemonConfig('client', 'bad.conf', {}, opts), (e) => e instanceof ConfigError && /bad\.conf line 2/.test(e.message));
});
