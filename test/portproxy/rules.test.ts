import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/core/errors.js';
import {
  Acl,
  applyEdit,
  ConfigParseError,
  diffRules,
  formatRuleLine,
  formatShow,
  parseRuleArgs,
  parseRules,
  ruleFromSpec,
  ruleKey,
  serializeRules,
  type Rule,
} from '../../src/portproxy/rules.js';

const services = (n: string): number | undefined => ({ http: 80, https: 443 })[n];
const rule = (mode: Rule['mode'], args: string[]): Rule => ruleFromSpec(parseRuleArgs('add', mode, args, services));

test('netsh defaults: connectport = listenport, connectaddress = this computer in the target family, listen on all', () => {
  assert.deepEqual(rule('v4tov4', ['listenport=80']), {
    mode: 'v4tov4', listenAddress: '*', listenPort: 80, connectAddress: '127.0.0.1', connectPort: 80, limit: 0, idleSeconds: 0, acl: [], proxyProtocol: 'none',
  });
  assert.equal(rule('v4tov6', ['listenport=80']).connectAddress, '::1');
  assert.equal(rule('v6tov4', ['listenport=80']).connectAddress, '127.0.0.1');
  assert.equal(rule('v6tov6', ['listenport=80']).connectAddress, '::1');
  assert.equal(rule('v6tov4', ['listenport=80', 'connectport=8080']).connectPort, 8080);
  // 0.0.0.0 and :: are the wildcard, written '*'
  assert.equal(rule('v4tov4', ['listenport=80', 'listenaddress=0.0.0.0']).listenAddress, '*');
  assert.equal(rule('v6tov6', ['listenport=80', 'listenaddress=::']).listenAddress, '*');
});

test('netsh grammar: tags in any order and case, positional values in netsh order, service names, brackets', () => {
  const a = rule('v4tov6', ['ConnectAddress=2001:DB8::0:1', 'LISTENPORT=http', 'connectport=8080', 'listenaddress=198.51.100.7', 'protocol=tcp']);
  assert.equal(formatRuleLine(a), 'v4tov6 listenport=80 listenaddress=198.51.100.7 connectaddress=2001:db8::1 connectport=8080');
  // listenport connectaddress connectport listenaddress protocol
  const b = rule('v6tov4', ['443', '203.0.113.5', 'https', '2001:db8::7', 'tcp']);
  assert.equal(formatRuleLine(b), 'v6tov4 listenport=443 listenaddress=2001:db8::7 connectaddress=203.0.113.5 connectport=443');
  assert.equal(rule('v4tov6', ['listenport=80', 'connectaddress=[::1]']).connectAddress, '::1');
  assert.equal(rule('v4tov6', ['listenport=80', 'connectaddress=Backend.Example.NET']).connectAddress, 'backend.example.net');
  const x = rule('v6tov6', ['listen-port=22', 'limit=10', 'idle=5m', 'acl=2001:db8::/32,2001:db8:1::5', 'proxy-protocol=V2']);
  assert.equal(formatRuleLine(x), 'v6tov6 listenport=22 listenaddress=* connectaddress=::1 connectport=22 limit=10 idle=300 acl=2001:db8::/32,2001:db8:1::5/128 proxy=v2');
});

test('netsh grammar: bad input is a UsageError that says what is wrong', () => {
  const bad: [Rule['mode'], string[], RegExp][] = [
    ['v4tov4', [], /listenport is required/],
    ['v4tov4', ['listenport=0'], /ports are 1-65535/],
    ['v4tov4', ['listenport=65536'], /ports are 1-65535/],
    ['v4tov4', ['listenport=nosuchservice'], /service name/],
    ['v4tov4', ['listenport=80', 'listenport=81'], /given twice/],
    ['v4tov4', ['listenport=80', 'frob=1'], /unknown parameter 'frob'/],
    ['v4tov4', ['listenport=80', 'protocol=udp'], /TCP only/],
    ['v4tov6', ['listenport=80', 'connectaddress=198.51.100.1'], /IPv4 address where this mode needs IPv6/],
    ['v6tov4', ['listenport=80', 'listenaddress=198.51.100.1'], /IPv4 address where this mode needs IPv6/],
    ['v6tov4', ['listenport=80', 'connectaddress=2001:db8::1'], /IPv6 address where this mode needs IPv4/],
    ['v4tov4', ['listenport=80', 'connectaddress=1.2.3'], /expected an IPv4 address or a host name/],
    ['v4tov4', ['listenport=80', 'connectaddress=a b'], /expected an IPv4 address/],
    ['v4tov4', ['listenport=80', 'acl=2001:db8::/32'], /bad acl entry/],
    ['v4tov4', ['listenport=80', 'acl=10.0.0.0/33'], /bad acl entry/],
    ['v4tov4', ['listenport=80', 'idle=-1'], /bad idle/],
    ['v4tov4', ['listenport=80', 'limit=x'], /bad limit/],
    ['v4tov4', ['listenport=80', 'proxy=v3'], /bad proxy/],
    ['v4tov4', ['listenport='], /needs a value/],
    ['v4tov4', ['1', '2.2.2.2', '3', '4.4.4.4', 'tcp', 'extra'], /unexpected argument/],
  ];
  for (const [mode, args, re] of bad) assert.throws(() => parseRuleArgs('add', mode, args, services), (e: Error) => e instanceof UsageError && re.test(e.message), args.join(' '));
  assert.throws(() => parseRuleArgs('delete', 'v4tov4', ['listenport=80', 'connectport=81']), /delete takes only listenport and listenaddress/);
  // Untagged values fill the fields not given by tag, in netsh's order.
  assert.equal(formatRuleLine(rule('v4tov4', ['connectport=81', '80', '198.51.100.9'])), 'v4tov4 listenport=80 listenaddress=* connectaddress=198.51.100.9 connectport=81');
  assert.deepEqual(parseRuleArgs('delete', 'v4tov4', ['80', '127.0.0.1']), { mode: 'v4tov4', listenPort: 80, listenAddress: '127.0.0.1' });
});

test('add replaces the rule on the same listener, set changes only the named fields, delete removes', () => {
  let rules: Rule[] = [];
  const edit = (verb: 'add' | 'set' | 'delete', mode: Rule['mode'], args: string[]) => applyEdit(rules, verb, parseRuleArgs(verb, mode, args));
  let r = edit('add', 'v6tov4', ['listenport=80', 'connectaddress=192.168.1.10', 'limit=5']);
  assert.ok(r.ok);
  rules = r.rules;
  r = edit('set', 'v6tov4', ['listenport=80', 'connectport=8080']);
  assert.ok(r.ok);
  rules = r.rules;
  assert.equal(formatRuleLine(rules[0]!), 'v6tov4 listenport=80 listenaddress=* connectaddress=192.168.1.10 connectport=8080 limit=5');
  r = edit('add', 'v6tov4', ['listenport=80', 'connectaddress=192.168.1.11']);
  assert.ok(r.ok);
  rules = r.rules;
  assert.equal(rules.length, 1);
  assert.equal(formatRuleLine(rules[0]!), 'v6tov4 listenport=80 listenaddress=* connectaddress=192.168.1.11 connectport=80');
  // A specific address beside the wildcard on the same port cannot bind: refused.
  r = edit('add', 'v6tov4', ['listenport=80', 'listenaddress=2001:db8::1']);
  assert.ok(!r.ok && /clashes with the rule v6tov4 \*:80/.test(r.error));
  // Same port in the other listening family is fine; v6tov6 on the same IPv6 port is not.
  assert.ok(edit('add', 'v4tov4', ['listenport=80']).ok);
  assert.ok(!edit('add', 'v6tov6', ['listenport=80']).ok);
  r = edit('set', 'v4tov6', ['listenport=80']);
  assert.ok(!r.ok && /no v4tov6 rule listens on \*:80 \(use add\)/.test(r.error));
  r = edit('delete', 'v6tov4', ['listenport=80', 'listenaddress=2001:db8::9']);
  assert.ok(!r.ok);
  r = edit('delete', 'v6tov4', ['80']);
  assert.ok(r.ok);
  assert.deepEqual(r.rules, []);
});

test('config file: round trip, comments, pasted add commands', () => {
  const rules = [
    rule('v6tov4', ['listenport=80', 'connectaddress=192.168.1.10']),
    rule('v4tov6', ['listenport=443', 'listenaddress=198.51.100.1', 'connectaddress=svc.example.net', 'connectport=8443', 'proxy=v1', 'idle=60']),
    rule('v4tov4', ['listenport=22', 'acl=203.0.113.0/24', 'limit=3']),
  ];
  const text = serializeRules(rules);
  assert.deepEqual(parseRules(text), parseRules(serializeRules(parseRules(text))));
  assert.deepEqual(parseRules(text).map(formatRuleLine).sort(), rules.map(formatRuleLine).sort());
  const hand = '# mine\n\n  add v6tov4 80 192.168.1.10   # web\nV4TOV6 listenport=443 connectaddress=::1\r\n';
  assert.deepEqual(parseRules(hand).map(formatRuleLine), [
    'v6tov4 listenport=80 listenaddress=* connectaddress=192.168.1.10 connectport=80',
    'v4tov6 listenport=443 listenaddress=* connectaddress=::1 connectport=443',
  ]);
  assert.deepEqual(parseRules(''), []);
});

test('config file: a malformed line is an error naming the file and the line', () => {
  const cases: [string, number, RegExp][] = [
    ['v4tov4 listenport=80\nv4tov5 listenport=81\n', 2, /expected v4tov4, v4tov6, v6tov4 or v6tov6, found 'v4tov5'/],
    ['# c\n\nv4tov4 listenport=80 connectaddress=::1\n', 3, /IPv6 address where this mode needs IPv4/],
    ['v4tov4 listenport=80\nv4tov4 listenport=80 connectport=81\n', 2, /a second rule for v4tov4 \*:80 \(first on line 1\)/],
    ['v4tov4 listenport=80 listenaddress=127.0.0.1\nv4tov6 listenport=80\n', 2, /clashes with v4tov4 127.0.0.1:80 on line 1/],
    ['v4tov4 listenport=80 limit=\n', 1, /limit needs a value/],
    ['v4tov4 listenport=80\nv4tov4 listenport=81\u00e9\n', 2, /non-ASCII/],
    ['v4tov4 listenport=80 connectaddress=', 1, /connectaddress needs a value/],
    ['v4tov4 listenport=80 127.0.0.1 81 127.0.0.1 tcp x', 1, /unexpected argument 'x'/],
  ];
  for (const [text, line, re] of cases) {
    assert.throws(
      () => parseRules(text, '/etc/transit6/portproxy.conf'),
      (e: Error) => e instanceof ConfigParseError && e.line === line && re.test(e.message) && e.message.startsWith(`/etc/transit6/portproxy.conf:${line}: `),
      text,
    );
  }
});

test('diff: added, removed, changed (same listener, new target or options) and unchanged', () => {
  const a = rule('v4tov6', ['listenport=80', 'connectaddress=2001:db8::1']);
  const b = rule('v6tov4', ['listenport=81']);
  const c = rule('v4tov4', ['listenport=82']);
  const b2 = rule('v6tov4', ['listenport=81', 'connectport=9000']);
  const d = rule('v6tov6', ['listenport=83']);
  const diff = diffRules([a, b, c], [a, b2, d]);
  assert.deepEqual(diff.unchanged, [a]);
  assert.deepEqual(diff.changed, [{ from: b, to: b2 }]);
  assert.deepEqual(diff.added, [d]);
  assert.deepEqual(diff.removed, [c]);
  assert.deepEqual(diffRules([a], [a]), { added: [], removed: [], changed: [], unchanged: [a] });
  // The key is the listener: a new listen address is a remove and an add.
  const a2 = rule('v4tov6', ['listenport=80', 'listenaddress=198.51.100.1', 'connectaddress=2001:db8::1']);
  const d2 = diffRules([a], [a2]);
  assert.deepEqual([d2.added, d2.removed], [[a2], [a]]);
  assert.notEqual(ruleKey(a), ruleKey(a2));
});

test('acl: CIDR matching in the listening family, empty allows all, mapped IPv4 read as IPv4', () => {
  const v4 = new Acl(['198.51.100.0/24', '203.0.113.7'], 4);
  assert.ok(v4.allows('198.51.100.200'));
  assert.ok(v4.allows('203.0.113.7'));
  assert.ok(v4.allows('::ffff:198.51.100.1'));
  assert.ok(!v4.allows('203.0.113.8'));
  assert.ok(!v4.allows('198.51.101.1'));
  assert.ok(!v4.allows('2001:db8::1'));
  const v6 = new Acl(['2001:db8:8000::/33'], 6);
  assert.ok(v6.allows('2001:db8:8000::1'));
  assert.ok(v6.allows('2001:db8:ffff::1'));
  assert.ok(!v6.allows('2001:db8:7fff::1'));
  assert.ok(new Acl([], 6).allows('::1'));
  assert.ok(new Acl(['0.0.0.0/0'], 4).allows('1.2.3.4'));
  assert.throws(() => new Acl(['nonsense'], 4), UsageError);
});

test('show: a netsh-like table per mode, extras in an Options column', () => {
  const rules = [rule('v6tov4', ['listenport=80', 'connectaddress=192.168.1.10']), rule('v4tov6', ['listenport=443', 'connectaddress=2001:db8::10', 'limit=9'])];
  const all = formatShow(rules, 'all');
  assert.match(all, /Listen on ipv4: +Connect to ipv6:\n\nAddress +Port +Address +Port +Options\n-+ -+ -+ -+ -+\n\* +443 +2001:db8::10 +443 +limit=9\n/);
  assert.match(all, /Listen on ipv6: +Connect to ipv4:\n\nAddress +Port +Address +Port\n-+ -+ -+ -+\n\* +80 +192\.168\.1\.10 +80\n/);
  assert.ok(all.indexOf('ipv4:') < all.indexOf('Listen on ipv6'));
  assert.doesNotMatch(formatShow(rules, 'v6tov4'), /443/);
  assert.equal(formatShow(rules, 'v6tov6'), '');
});
