/**
 * The privileged helper's protocol (src/io/privhelper.ts through src/io/privclient.ts), without root: it serves one
 * interface, named by the first request; before that and for anything else it refuses, with the reason. (Running
 * the commands needs root and a namespace: the client daemons in the lab tests do.) And the line splitter both
 * sides use.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { onLines } from '../../src/io/lines.js';
import { PrivilegedHelper } from '../../src/io/privclient.js';

test('the helper refuses commands before it is bound, a bad name, a second bind, and other interfaces', async () => {
  const h = PrivilegedHelper.take();
  try {
    await assert.rejects(h.run({ op: 'down', iface: 'teredo' }), /no interface yet \(bind first\)/);
    await assert.rejects(h.bind('two words'), /bad interface name "two words"/);
    await h.bind('teredo');
    await assert.rejects(h.bind('teredo2'), /already serving teredo/);
    await assert.rejects(h.run({ op: 'down', iface: 'eth0' }), /interface eth0 is not ours/);
    await assert.rejects(h.run({ op: 'up', iface: 'teredo', addresses: [{ address: '2001:db8::1', prefixLength: 64 }] }), /not a Teredo address/);
  } finally {
    await h.close();
  }
});

test('a prestarted helper is handed over once; one nobody takes is discarded', async () => {
  PrivilegedHelper.prestart();
  const a = PrivilegedHelper.take();
  try {
    await a.bind('teredo');
    // Taken: the next take() starts a new one, which is not bound yet.
    const b = PrivilegedHelper.take();
    try {
      await assert.rejects(b.run({ op: 'down', iface: 'teredo' }), /bind first/);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
  PrivilegedHelper.prestart();
  await PrivilegedHelper.discard();
  await PrivilegedHelper.discard(); // nothing left: a no-op
});

test('onLines: lines split across chunks and several in one, a last line without a newline, then the end', async () => {
  const input = new PassThrough();
  const got: string[] = [];
  const ended = new Promise<void>((resolve) => onLines(input, (l) => got.push(l), resolve));
  input.write('{"a":');
  input.write('1}\n{"b":2}\n\n{"c"');
  input.write(':3}\nlast');
  input.end();
  await ended;
  assert.deepEqual(got, ['{"a":1}', '{"b":2}', '', '{"c":3}', 'last']);
});
