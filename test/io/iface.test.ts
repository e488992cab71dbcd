/**
 * What the privileged helper agrees to run for an unprivileged daemon (src/io/iface.ts validateIfaceCommand): only
 * the Teredo interface, Teredo and link-local addresses, the Teredo and default routes, a sane MTU; the transmit
 * queue only at start (as root), never through the helper.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateIfaceCommand, type IfaceCommand } from '../../src/io/iface.js';

const ok: IfaceCommand = {
  op: 'up',
  iface: 'teredo',
  mtu: 1280,
  addresses: [{ address: '2001:0:cb00:7101:0:f227:389b:aa01', prefixLength: 32 }, { address: 'fe80::ffff:ffff:ffff', prefixLength: 64 }],
  routes: [{ prefix: '2001::', prefixLength: 32 }, { prefix: '::', prefixLength: 0, metric: 1029 }],
};

test('a Teredo interface command is accepted', () => {
  assert.equal(validateIfaceCommand(ok, 'teredo'), undefined);
  assert.equal(validateIfaceCommand({ op: 'down', iface: 'teredo' }, 'teredo'), undefined);
});

test('anything a Teredo interface does not need is refused, with the reason', () => {
  const cases: [IfaceCommand, RegExp][] = [
    [{ ...ok, iface: 'eth0' }, /not ours/],
    [{ ...ok, iface: 'tere do' }, /not ours/],
    [{ ...ok, mtu: 1279 }, /bad MTU/],
    [{ ...ok, mtu: 1500.5 }, /bad MTU/],
    [{ ...ok, txQueueLen: 100000 }, /transmit queue/],
    [{ ...ok, addresses: [{ address: '2001:db8::1', prefixLength: 64 }] }, /not a Teredo address/],
    [{ ...ok, addresses: [{ address: '2001:0:1::1', prefixLength: 64 }] }, /not a Teredo address/],
    [{ ...ok, routes: [{ prefix: '2001:db8::', prefixLength: 32 }] }, /not a Teredo route/],
    [{ ...ok, routes: [{ prefix: '::', prefixLength: 0, metric: -1 }] }, /bad metric/],
  ];
  for (const [c, why] of cases) assert.match(validateIfaceCommand(c, 'teredo') ?? '(accepted)', why, JSON.stringify(c));
});
