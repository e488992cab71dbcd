import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { renderLadderText, truncate, type LadderLane, type LadderMessage } from '../../src/trace/ladder.js';
import { escapeXml, renderLadderSvg } from '../../src/trace/svg.js';
import { ConfigError } from '../../src/core/errors.js';
import { checkXml } from './xml.js';
import { SEEDS_LANES, SEEDS_MESSAGES } from './fixtures.js';

// ---------------------------------------------------------------------------------------------------------------
// Reading the text rendering back.

/** The lifeline columns, from the first row under the headers (it holds nothing but lifelines). */
function lifelines(lines: readonly string[]): number[] {
  const row = lines.find((l) => /^[ |]+$/.test(l) && l.includes('|'))!;
  return [...row].flatMap((c, i) => (c === '|' ? [i] : []));
}

/** Rows holding an arrow: a head or a drop mark next to a lifeline. */
function arrowRows(lines: readonly string[]): string[] {
  return lines.filter((l) => /->\||\|<-|-X \|| X-/.test(l));
}

/** What is written on an arrow: the row between its two lanes, less the shaft, head and drop mark. */
function arrowLabel(row: string, a: number, b: number): string {
  return row.slice(Math.min(a, b) + 1, Math.max(a, b)).replace(/^[-+<X ]+/, '').replace(/[-+>X ]+$/, '');
}

function assertLabelShown(shown: string, label: string): void {
  if (shown === label) return;
  // Cut with "...", or with a single '.' when only two or three columns were left.
  assert.ok(shown.endsWith('.'), `'${shown}' is neither '${label}' nor cut with an ellipsis`);
  const start = shown.replace(/\.{1,3}$/, '');
  assert.ok(start.length >= 1 && label.startsWith(start), `'${shown}' does not start like '${label}'`);
}

/** Checks each arrow row against its message: direction, head beside the target, lanes crossed, label. */
function assertArrows(text: string, lanes: readonly LadderLane[], msgs: readonly LadderMessage[]): void {
  const lines = text.split('\n');
  const cols = lifelines(lines);
  assert.equal(cols.length, lanes.length, 'one lifeline per lane');
  const rows = arrowRows(lines);
  const arrows = msgs.filter((m) => m.from !== m.to);
  assert.equal(rows.length, arrows.length, `one arrow row per message:\n${text}`);
  const col = (id: string) => cols[lanes.findIndex((l) => l.id === id)]!;
  arrows.forEach((m, i) => {
    const row = rows[i]!;
    const a = col(m.from);
    const b = col(m.to);
    assert.equal(row[a], '|', `the sending lane is drawn in '${row}'`);
    assert.equal(row[b], '|', `the target lane is drawn in '${row}'`);
    if (m.dropped !== undefined) {
      assert.equal(row[b + (b > a ? -2 : 2)], 'X', `dropped '${m.label}' ends in X before its target: '${row}'`);
      assert.equal(row[b + (b > a ? -1 : 1)], ' ');
    } else if (b > a) {
      assert.equal(row[b - 1], '>', `'${m.label}' points right: '${row}'`);
      assert.equal(row[a + 1], '-', `'${m.label}' starts at its sender: '${row}'`);
    } else {
      assert.equal(row[b + 1], '<', `'${m.label}' points left: '${row}'`);
      assert.equal(row[a - 1], '-', `'${m.label}' starts at its sender: '${row}'`);
    }
    // The lanes in between are crossed, not drawn over the arrow; the lanes outside it are untouched.
    for (const c of cols) {
      if (c > Math.min(a, b) && c < Math.max(a, b)) assert.notEqual(row[c], '|', `lane at ${c} crossed in '${row}'`);
      else assert.equal(row[c], '|', `lane at ${c} outside the arrow stays in '${row}'`);
    }
    assertLabelShown(arrowLabel(row, a, b), m.label);
  });
}

function assertWidth(text: string, width: number): void {
  for (const line of text.split('\n')) assert.ok(line.length <= width, `${line.length} > ${width}: '${line}'`);
}

// ---------------------------------------------------------------------------------------------------------------
// Text.

test('the seeds part 4 exchange: lanes in order, one arrow per hop in the right direction, every label', () => {
  const text = renderLadderText(SEEDS_LANES, SEEDS_MESSAGES);
  const lines = text.split('\n');
  const cols = lifelines(lines);
  // Titles and subtitles in lane order, each centred on its lifeline.
  let prev = -1;
  SEEDS_LANES.forEach((lane, i) => {
    const at = lines[0]!.indexOf(lane.title, prev + 1);
    assert.ok(at > prev, `${lane.title} after the previous lane`);
    assert.ok(Math.abs(at + Math.floor(lane.title.length / 2) - cols[i]!) <= 1, `${lane.title} centred on its lifeline`);
    prev = at;
    assert.ok(lines[1]!.includes(lane.subtitle!), `subtitle ${lane.subtitle}`);
  });
  assert.match(lines[0]!, /^ +ms /);
  assertArrows(text, SEEDS_LANES, SEEDS_MESSAGES);
  assertWidth(text, 120);
  // Details are on the row under their arrow, in full when they fit the line.
  for (const m of SEEDS_MESSAGES) if (m.detail) assert.ok(text.includes(m.detail), m.detail);
  // Time column: each time once, on its arrow's row.
  const rows = arrowRows(lines);
  SEEDS_MESSAGES.forEach((m, i) => assert.match(rows[i]!, new RegExp(`^ *${m.at} `)));
});

test('the seeds exchange at 80 and 60 columns: narrower lanes, labels cut with an ellipsis, never wider', () => {
  for (const width of [80, 60]) {
    const text = renderLadderText(SEEDS_LANES, SEEDS_MESSAGES, { width });
    assertWidth(text, width);
    assertArrows(text, SEEDS_LANES, SEEDS_MESSAGES);
    assert.ok(text.includes('...'), 'something had to be cut');
  }
});

test('without the time column the lanes start at the left', () => {
  const text = renderLadderText(SEEDS_LANES, SEEDS_MESSAGES, { showTime: false });
  assert.doesNotMatch(text, /\bms\b/);
  for (const row of arrowRows(text.split('\n'))) assert.match(row, /^ +\|/);
  assertArrows(text, SEEDS_LANES, SEEDS_MESSAGES);
  assert.ok(lifelines(text.split('\n'))[0]! < 12);
});

test('a dropped message ends in an X before its target and says why', () => {
  const lanes: LadderLane[] = [
    { id: 'client', title: 'client' },
    { id: 'nat', title: 'NAT' },
    { id: 'relay', title: 'relay' },
  ];
  const msgs: LadderMessage[] = [
    { at: 0, from: 'client', to: 'relay', label: 'direct bubble', style: 'bubble' },
    { at: 30, from: 'relay', to: 'nat', label: 'echo reply', dropped: 'filtered: no mapping for 203.0.113.1:3544', style: 'data' },
    { at: 31, from: 'nat', to: 'relay', label: 'bubble', dropped: 'lost on the link' },
  ];
  const text = renderLadderText(lanes, msgs);
  assertArrows(text, lanes, msgs);
  assert.ok(text.includes('dropped: filtered: no mapping for 203.0.113.1:3544'));
  assert.ok(text.includes('dropped: lost on the link'));
  const lines = text.split('\n');
  const reason = lines.findIndex((l) => l.includes('dropped: filtered'));
  assert.match(lines[reason - 1]!, / X-+echo reply/, 'the reason is right under its arrow');
});

test('ten lanes fit in 120 columns (and in 80), with arrows across many lanes', () => {
  const lanes: LadderLane[] = Array.from({ length: 10 }, (_, i) => ({ id: `h${i}`, title: `host-${i}`, subtitle: `10.0.${i}.1:3544` }));
  const msgs: LadderMessage[] = [
    { at: 0, from: 'h0', to: 'h9', label: 'indirect bubble via the server, origin indication 10.0.0.1:3544', style: 'bubble' },
    { at: 1, from: 'h9', to: 'h0', label: 'RA', style: 'control' },
    { at: 2, from: 'h3', to: 'h4', label: 'connectivity test echo request', style: 'echo' },
    { at: 3, from: 'h5', to: 'h2', label: 'data', detail: '2001:0:a00:1::1 > 2001:db8::1', style: 'data' },
    { at: 4, from: 'h8', to: 'h9', label: 'bubble', dropped: 'filtered' },
  ];
  for (const width of [120, 80]) {
    const text = renderLadderText(lanes, msgs, { width });
    assertWidth(text, width);
    assertArrows(text, lanes, msgs);
    for (const lane of lanes) assert.ok(text.split('\n')[0]!.includes(lane.title), lane.title);
  }
});

test('an empty message list draws the lanes and says so', () => {
  const text = renderLadderText(SEEDS_LANES, []);
  assert.ok(text.includes('(no messages)'));
  for (const l of SEEDS_LANES) assert.ok(text.includes(l.title));
  assert.equal(arrowRows(text.split('\n')).length, 0);
  assertWidth(text, 120);
  assert.equal(renderLadderText([], []), '(no lanes)');
});

test('messages at the same time keep their input order; the time is shown once', () => {
  const lanes: LadderLane[] = [{ id: 'a', title: 'A' }, { id: 'b', title: 'B' }];
  const msgs: LadderMessage[] = [
    { at: 5, from: 'a', to: 'b', label: 'first' },
    { at: 5, from: 'b', to: 'a', label: 'second' },
    { at: 1.5, from: 'a', to: 'b', label: 'earliest' },
    { at: 5, from: 'a', to: 'b', label: 'third' },
  ];
  const lines = arrowRows(renderLadderText(lanes, msgs).split('\n'));
  assert.deepEqual(lines.map((l) => /(earliest|first|second|third)/.exec(l)![1]), ['earliest', 'first', 'second', 'third']);
  assert.match(lines[0]!, /^1\.5 /);
  assert.match(lines[1]!, /^5\.0 /, 'one decimal for every time, since one needs it');
  assert.match(lines[2]!, /^ +\|/);
  assert.match(lines[3]!, /^ +\|/);
});

test('a message from a lane to itself is a note beside the lane', () => {
  const lanes: LadderLane[] = [{ id: 'client', title: 'client' }, { id: 'server', title: 'server' }];
  const msgs: LadderMessage[] = [
    { at: 0, from: 'client', to: 'client', label: 'qualified: cone NAT', detail: '2001:0:c633:6401:8000:cd5c:e1fc:f635' },
    { at: 9, from: 'server', to: 'server', label: 'rate limit' },
  ];
  const text = renderLadderText(lanes, msgs);
  const lines = text.split('\n');
  const cols = lifelines(lines);
  const note = lines.find((l) => l.includes('qualified: cone NAT'))!;
  assert.equal(note[cols[0]!], '*');
  assert.ok(note.indexOf('qualified') > cols[0]!);
  assert.ok(text.includes('2001:0:c633:6401:8000:cd5c:e1fc:f635'));
  assert.equal(lines.find((l) => l.includes('rate limit'))![cols[1]!], '*');
  assert.equal(arrowRows(lines).length, 0);
  assertWidth(text, 120);
});

test('labels cannot break a row: control characters become spaces', () => {
  const lanes: LadderLane[] = [{ id: 'a', title: 'A\nB' }, { id: 'b', title: 'B' }];
  const text = renderLadderText(lanes, [{ at: 0, from: 'a', to: 'b', label: 'two\nlines\there', detail: 'x\r\ny' }]);
  assert.ok(text.includes('two lines here'));
  assert.ok(text.includes('x  y'));
  assert.equal(text.split('\n').length, renderLadderText(lanes, [{ at: 0, from: 'a', to: 'b', label: 'l', detail: 'd' }]).split('\n').length);
});

test('the same input gives the same string', () => {
  const a = renderLadderText(SEEDS_LANES, SEEDS_MESSAGES);
  const b = renderLadderText(SEEDS_LANES.map((l) => ({ ...l })), SEEDS_MESSAGES.map((m) => ({ ...m })));
  assert.equal(a, b);
  assert.equal(renderLadderSvg(SEEDS_LANES, SEEDS_MESSAGES, { title: 't' }), renderLadderSvg(SEEDS_LANES, SEEDS_MESSAGES, { title: 't' }));
});

test('caller mistakes are ConfigErrors that name the problem', () => {
  const lanes: LadderLane[] = [{ id: 'a', title: 'A' }];
  assert.throws(() => renderLadderText(lanes, [{ at: 0, from: 'a', to: 'zz', label: 'RS' }]), (e) => e instanceof ConfigError && /'zz'/.test(e.message));
  assert.throws(() => renderLadderSvg([...lanes, { id: 'a', title: 'again' }], []), ConfigError);
  assert.throws(() => renderLadderText(lanes, [{ at: NaN, from: 'a', to: 'a', label: 'x' }]), ConfigError);
  assert.throws(() => renderLadderText(lanes, [], { width: 0 }), ConfigError);
});

test('truncate keeps the start and marks the cut', () => {
  assert.equal(truncate('RA, origin indication', 100), 'RA, origin indication');
  assert.equal(truncate('RA, origin indication', 10), 'RA, ori...');
  assert.equal(truncate('abcdef', 4), 'a...');
  assert.equal(truncate('abcdef', 3), 'ab.');
  assert.equal(truncate('abcdef', 2), 'a.');
  assert.equal(truncate('abcdef', 1), 'a');
  assert.equal(truncate('abcdef', 0), '');
  assert.equal(truncate('😀😀😀😀😀', 4), '😀...', 'counts code points, never splits a surrogate pair');
});

// ---------------------------------------------------------------------------------------------------------------
// SVG.

function assertWellFormed(svg: string) {
  const r = checkXml(svg);
  assert.deepEqual(r.errors, [], r.errors.join('\n'));
  assert.equal(r.root?.name, 'svg');
  assert.equal(r.root?.attrs.get('xmlns'), 'http://www.w3.org/2000/svg');
  assert.equal(r.root?.attrs.get('version'), '1.1');
  const w = Number(r.root?.attrs.get('width'));
  const h = Number(r.root?.attrs.get('height'));
  assert.ok(w > 0 && h > 0);
  assert.equal(r.root?.attrs.get('viewBox'), `0 0 ${w} ${h}`);
  return r;
}

test('the seeds exchange as SVG: well-formed, a header and dashed lifeline per lane, an arrow per message', () => {
  const svg = renderLadderSvg(SEEDS_LANES, SEEDS_MESSAGES, { title: 'Notes on Teredo (part 4)' });
  assert.ok(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg '));
  const r = assertWellFormed(svg);
  for (const l of SEEDS_LANES) {
    assert.ok(r.texts.includes(l.title), l.title);
    assert.ok(r.texts.includes(l.subtitle!), l.subtitle);
  }
  for (const m of SEEDS_MESSAGES) {
    assert.ok(r.texts.includes(m.label), m.label);
    if (m.detail) assert.ok(r.texts.includes(m.detail), m.detail);
    assert.ok(r.texts.includes(`${m.at} ms`), `time ${m.at}`);
  }
  assert.equal(svg.match(/stroke-dasharray="4 4"/g)!.length, SEEDS_LANES.length, 'dashed lifelines');
  assert.equal(svg.match(/<g class="message /g)!.length, SEEDS_MESSAGES.length);
  assert.equal(svg.match(/marker-end="url\(#t6-head-(control|bubble|echo|data)\)"/g)!.length, SEEDS_MESSAGES.length + 3, 'a head per arrow, and per legend entry');
  for (const s of ['control', 'bubble', 'echo']) assert.ok(svg.includes(`<g class="message ${s}">`), s);
  // The legend lists the styles used, and only those.
  assert.ok(r.texts.includes('bubble') && r.texts.some((t) => t.startsWith('control')) && r.texts.some((t) => t.startsWith('echo')));
  assert.ok(!r.texts.includes('data') && !r.texts.includes('dropped'));
  assert.ok(r.texts.includes('Notes on Teredo (part 4)'));
});

test('SVG escapes &, <, >, quotes in titles, labels, details and the document title', () => {
  const nasty = `<b>&amp; "quoted" 'single' & more</b>`;
  const lanes: LadderLane[] = [{ id: 'x', title: `a&b <x>`, subtitle: `"sub" & 'sub'` }, { id: 'y', title: 'y' }];
  const msgs: LadderMessage[] = [
    { at: 0, from: 'x', to: 'y', label: nasty, detail: '1 < 2 > 0 & "ok"' },
    { at: 1, from: 'y', to: 'x', label: 'ctrl\u0001char\u0000and lone \ud800 surrogate', dropped: '<reason & why>' },
  ];
  const svg = renderLadderSvg(lanes, msgs, { title: `T <&> "q"` });
  const r = assertWellFormed(svg);
  assert.ok(!svg.includes('<b>') && !svg.includes('& '), 'nothing raw');
  assert.ok(r.texts.includes(nasty), 'the label reads back as given');
  assert.ok(r.texts.includes('a&b <x>'));
  assert.ok(r.texts.includes(`"sub" & 'sub'`));
  assert.ok(r.texts.includes('1 < 2 > 0 & "ok"'));
  assert.ok(r.texts.includes('dropped: <reason & why>'));
  assert.ok(r.texts.includes('ctrl char and lone \ufffd surrogate'));
  assert.ok(r.texts.includes(`T <&> "q"`));
  assert.equal(escapeXml(`<&>"'`), '&lt;&amp;&gt;&quot;&#39;');
});

test('a dropped message in SVG: red, no arrow head, an X short of the target, the reason beneath', () => {
  const lanes: LadderLane[] = [{ id: 'relay', title: 'relay' }, { id: 'nat', title: 'NAT' }];
  const msgs: LadderMessage[] = [{ at: 0, from: 'relay', to: 'nat', label: 'echo reply', dropped: 'filtered', style: 'echo' }];
  const svg = renderLadderSvg(lanes, msgs);
  const r = assertWellFormed(svg);
  const group = /<g class="message echo dropped">([\s\S]*?)<\/g>/.exec(svg)![1]!;
  assert.match(group, /<line [^>]*stroke="#c62828"/);
  assert.doesNotMatch(group, /marker-end/);
  assert.match(group, /<path d="M[^"]*" stroke="#c62828"/, 'the X');
  assert.ok(r.texts.includes('dropped: filtered'));
  assert.ok(r.texts.includes('dropped'), 'in the legend');
  // The line stops short of the NAT's lifeline.
  const x2 = Number(/<line [^>]*x2="([\d.]+)"[^>]*stroke="#c62828"/.exec(group)![1]);
  const natX = Number([...svg.matchAll(/<line x1="([\d.]+)"[^>]*stroke-dasharray="4 4"/g)][1]![1]);
  assert.ok(x2 < natX - 10, `${x2} stops before ${natX}`);
});

test('SVG for ten lanes, notes and no messages stays well-formed and sized to its content', () => {
  const lanes: LadderLane[] = Array.from({ length: 10 }, (_, i) => ({ id: `h${i}`, title: `host-${i}` }));
  const small = assertWellFormed(renderLadderSvg(lanes.slice(0, 2), []));
  const big = assertWellFormed(renderLadderSvg(lanes, [
    { at: 0, from: 'h0', to: 'h9', label: 'long way' },
    { at: 1, from: 'h9', to: 'h9', label: 'a note on the last lane, which widens the picture' },
  ]));
  assert.ok(Number(big.root!.attrs.get('width')) > Number(small.root!.attrs.get('width')));
  assert.ok(small.texts.includes('(no messages)'));
  assertWellFormed(renderLadderSvg([], []));
});

test('the XML check itself catches what it should', () => {
  assert.deepEqual(checkXml('<a><b/></a>').errors, []);
  assert.notDeepEqual(checkXml('<a><b></a>').errors, []);
  assert.notDeepEqual(checkXml('<a>x & y</a>').errors, []);
  assert.notDeepEqual(checkXml('<a x=1/>').errors, []);
  assert.notDeepEqual(checkXml('<a x="<"/>').errors, []);
  assert.notDeepEqual(checkXml('<a/><b/>').errors, []);
  assert.notDeepEqual(checkXml('<a>1 > 0</a>').errors, [], 'stricter than XML: we always escape >');
});

test('xmllint accepts the SVG (skipped when xmllint is not installed)', (t) => {
  const svg = renderLadderSvg(SEEDS_LANES, [...SEEDS_MESSAGES, { at: 300, from: 'nat', to: 'client', label: `<&>"'`, dropped: 'x & y' }], { title: 'a & b' });
  const r = spawnSync('xmllint', ['--noout', '-'], { input: svg, encoding: 'utf8' });
  if (r.error) {
    t.skip('xmllint is not installed');
    return;
  }
  assert.equal(r.status, 0, r.stderr);
});
