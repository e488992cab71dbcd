/**
 * Ladder (sequence) diagrams of packet exchanges: one vertical lane per host or NAT, one arrow per hop, time going
 * down. `transit6 sim trace` and `transit6 trace FILE.pcap` turn their hops into LadderMessages and render them here,
 * as fixed-width text for a terminal or as SVG (./svg.ts) for a browser.
 *
 * Pure: the input is data, the output is a string, and the same input always gives the same string.
 */
import { ConfigError } from '../core/errors.js';

export interface LadderLane {
  /** What LadderMessage.from/to refer to. */
  readonly id: string;
  readonly title: string;
  /** A second header line, e.g. an address. */
  readonly subtitle?: string;
}

export type LadderStyle = 'control' | 'bubble' | 'data' | 'echo';
export const LADDER_STYLES: readonly LadderStyle[] = ['control', 'bubble', 'data', 'echo'];

export interface LadderMessage {
  /** Milliseconds; messages are shown in time order, and ties keep their input order. */
  readonly at: number;
  /** Lane ids. from === to is drawn as a note beside the lane. */
  readonly from: string;
  readonly to: string;
  /** As the seeds name packets: "RS", "RA, origin indication 203.0.113.1:23863", "direct bubble"... */
  readonly label: string;
  /** An optional second line, e.g. "203.0.113.1:23863 > 198.51.100.1:3544". */
  readonly detail?: string;
  /** A drop reason: the arrow ends in an X before the target, and the reason is shown beneath it. */
  readonly dropped?: string;
  /** Colour and line style in SVG; 'control' when absent. The text rendering draws every style alike. */
  readonly style?: LadderStyle;
}

export interface LadderTextOptions {
  /** The widest a line may be (default 120). Holds as long as each lane gets at least MIN_TEXT_SPACING columns. */
  width?: number;
  /** A time column on the left, in milliseconds (default true). */
  showTime?: boolean;
  /**
   * A layout that does not depend on the messages, for drawing rows as they come (`trace --live`): lanes spread
   * over the whole width, times with this many decimals in a column this wide.
   */
  fixed?: { timeDecimals: number; timeWidth: number };
}

/** The narrowest lane spacing the text rendering shrinks to before it gives up on the width. */
export const MIN_TEXT_SPACING = 6;
const DEFAULT_WIDTH = 120;
const ELLIPSIS = '...';

// ---------------------------------------------------------------------------------------------------------------
// Shared by the text and SVG renderings.

/** A message as both renderings draw it: validated, cleaned and in display order. */
export interface PlacedMessage {
  readonly msg: LadderMessage;
  readonly fromIndex: number;
  readonly toIndex: number;
  readonly label: string;
  readonly detail: string | undefined;
  readonly dropped: string | undefined;
  readonly style: LadderStyle;
  /** The time as shown, with the same number of decimals for every message. */
  readonly time: string;
  /** False when the previous message has the same time, so the time column is not repeated. */
  readonly newTime: boolean;
}

/**
 * One line of plain text: control characters (newlines, tabs, NUL...) become spaces and lone UTF-16 surrogates
 * become U+FFFD, so neither a terminal row nor an XML document can be broken by a label.
 */
export function cleanText(s: string): string {
  return s
    .replace(/[\u0000-\u001f\u007f-\u009f\ufffe\uffff]/g, ' ')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** Length in code points, which is what a fixed-width rendering counts. */
export function textLength(s: string): number {
  return Array.from(s).length;
}

/**
 * At most `max` code points; a cut string ends in "..." so the reader knows there was more. In very little room the
 * start still shows: 3 → "co.", 2 → "c.", 1 → "c".
 */
export function truncate(s: string, max: number): string {
  const cps = Array.from(s);
  if (cps.length <= max) return s;
  if (max <= 0) return '';
  if (max === 1) return cps[0]!;
  if (max <= ELLIPSIS.length) return cps.slice(0, max - 1).join('') + '.';
  return cps.slice(0, max - ELLIPSIS.length).join('') + ELLIPSIS;
}

/** The fewest decimals (up to 3) that show every time exactly, so 0, 150, 1000 stay integers and 0.5 does not. */
function timeDecimals(times: readonly number[]): number {
  for (let d = 0; d < 3; d++) {
    const f = 10 ** d;
    if (times.every((t) => Math.abs(Math.round(t * f) - t * f) < 1e-6)) return d;
  }
  return 3;
}

/** Throws ConfigError on caller mistakes (unknown lane, duplicate lane id, non-finite time); sorts stably by time. */
export function placeMessages(lanes: readonly LadderLane[], msgs: readonly LadderMessage[], fixedDecimals?: number): PlacedMessage[] {
  const index = new Map<string, number>();
  lanes.forEach((lane, i) => {
    if (index.has(lane.id)) throw new ConfigError(`ladder: lane id '${lane.id}' is used twice`);
    index.set(lane.id, i);
  });
  const laneOf = (id: string, m: LadderMessage, which: string): number => {
    const i = index.get(id);
    if (i === undefined) {
      throw new ConfigError(`ladder: message '${m.label}' at ${m.at} ms has ${which} '${id}', which is not a lane (lanes: ${lanes.map((l) => l.id).join(', ')})`);
    }
    return i;
  };
  for (const m of msgs) {
    if (!Number.isFinite(m.at)) throw new ConfigError(`ladder: message '${m.label}' has a time that is not a finite number: ${m.at}`);
    if (m.style !== undefined && !LADDER_STYLES.includes(m.style)) {
      throw new ConfigError(`ladder: message '${m.label}' has style '${String(m.style)}', not one of ${LADDER_STYLES.join(', ')}`);
    }
  }
  // Array.prototype.sort is stable, and the index tie-break says so explicitly: same time, input order.
  const ordered = msgs.map((m, i) => ({ m, i })).sort((a, b) => a.m.at - b.m.at || a.i - b.i).map((x) => x.m);
  const decimals = fixedDecimals ?? timeDecimals(ordered.map((m) => m.at));
  let prev: string | undefined;
  return ordered.map((m) => {
    const time = m.at.toFixed(decimals);
    const placed: PlacedMessage = {
      msg: m,
      fromIndex: laneOf(m.from, m, 'from'),
      toIndex: laneOf(m.to, m, 'to'),
      label: cleanText(m.label),
      detail: m.detail === undefined || m.detail === '' ? undefined : cleanText(m.detail),
      dropped: m.dropped === undefined ? undefined : cleanText(m.dropped === '' ? 'dropped' : m.dropped),
      style: m.style ?? 'control',
      time,
      newTime: time !== prev,
    };
    prev = time;
    return placed;
  });
}

/** The lines shown beneath an arrow or note: its detail, then why it was dropped. */
export function subLines(p: PlacedMessage): string[] {
  const out: string[] = [];
  if (p.detail !== undefined) out.push(p.detail);
  if (p.dropped !== undefined) out.push(`dropped: ${p.dropped}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Text.

interface TextLayout {
  /** Columns taken by the time column, its gap included. */
  readonly timeCols: number;
  /** Column of each lane's lifeline. */
  readonly x: readonly number[];
  /** Width of each lane's header text (titles and subtitles are cut to it). */
  readonly headerWidth: readonly number[];
  /** Where free text (details, notes) may run: [timeCols, right). */
  readonly right: number;
}

function layoutText(lanes: readonly LadderLane[], placed: readonly PlacedMessage[], width: number, showTime: boolean, fixed?: LadderTextOptions['fixed']): TextLayout {
  const n = lanes.length;
  const timeCols = showTime ? Math.max(2, fixed?.timeWidth ?? 0, ...placed.map((p) => p.time.length)) + 2 : 0;
  const headerLen = lanes.map((l) => Math.max(textLength(cleanText(l.title)), textLength(cleanText(l.subtitle ?? ''))));

  // The spacing the content asks for: headers side by side with a gap, and each label inside its arrow with two
  // dashes either side (an X and a gap more when dropped), shared among the gaps the arrow spans.
  let wanted = Math.max(MIN_TEXT_SPACING, ...headerLen.map((l) => l + 2));
  for (const p of placed) {
    const gaps = Math.abs(p.toIndex - p.fromIndex);
    if (gaps === 0) continue;
    const body = textLength(p.label) + 5 + (p.dropped !== undefined ? 2 : 0);
    wanted = Math.max(wanted, Math.ceil((body + 1) / gaps));
  }

  // Shrink until the whole diagram fits; headers are centred on their lifelines, so the outer two need margins.
  const fit = (spacing: number) => {
    const headerWidth = headerLen.map((l) => Math.min(l, Math.max(1, spacing - 1)));
    const left = Math.floor(headerWidth[0]! / 2);
    const rightMargin = Math.max(0, Math.ceil(headerWidth[n - 1]! / 2) - 1);
    const total = timeCols + left + (n - 1) * spacing + 1 + rightMargin;
    return { headerWidth, left, total };
  };
  // A fixed layout takes all the room there is, whatever the messages.
  if (fixed) wanted = Math.max(MIN_TEXT_SPACING, width);
  let spacing = wanted;
  // With one lane the spacing only bounds its header, so let that take the whole width.
  if (n === 1) spacing = Math.max(MIN_TEXT_SPACING, Math.min(wanted, width - timeCols));
  while (spacing > MIN_TEXT_SPACING && fit(spacing).total > width) spacing--;
  const { headerWidth, left, total } = fit(spacing);
  const x = lanes.map((_, i) => timeCols + left + i * spacing);
  return { timeCols, x, headerWidth, right: Math.max(total, width) };
}

class TextRow {
  readonly cells: string[];
  constructor(readonly layout: TextLayout, lifelines: boolean) {
    this.cells = new Array<string>(layout.right).fill(' ');
    if (lifelines) for (const x of layout.x) this.cells[x] = '|';
  }

  put(col: number, text: string): void {
    Array.from(text).forEach((c, i) => {
      if (col + i >= 0 && col + i < this.cells.length) this.cells[col + i] = c;
    });
  }

  /** `text` centred on [lo, hi], moved (not cut) to stay inside the free-text area, cut only if wider than it. */
  putCentred(lo: number, hi: number, text: string): void {
    const min = this.layout.timeCols;
    const max = this.layout.right;
    const t = truncate(text, max - min);
    const len = textLength(t);
    let start = lo + Math.floor((hi - lo + 1 - len) / 2);
    start = Math.max(min, Math.min(start, max - len));
    this.put(start, t);
  }

  toString(): string {
    return this.cells.join('').trimEnd();
  }
}

function arrowRow(layout: TextLayout, p: PlacedMessage): TextRow {
  const row = new TextRow(layout, true);
  const xa = layout.x[p.fromIndex]!;
  const xb = layout.x[p.toIndex]!;
  const rightward = xa < xb;
  const dropped = p.dropped !== undefined;
  // The shaft is [s, e]; the head ('>' / '<') or the drop mark ('X' and a gap) sits between it and the target.
  let s: number;
  let e: number;
  if (rightward) {
    s = xa + 1;
    e = dropped ? xb - 3 : xb - 2;
    row.put(e + 1, dropped ? 'X ' : '>');
  } else {
    s = dropped ? xb + 3 : xb + 2;
    e = xa - 1;
    row.put(xb + 1, dropped ? ' X' : '<');
  }
  for (let c = s; c <= e; c++) row.cells[c] = layout.x.includes(c) ? '+' : '-';
  const m = e - s + 1;
  const pad = m >= 8 ? 2 : 1;
  const label = truncate(p.label, m - 2 * pad);
  const len = textLength(label);
  if (len > 0) row.put(s + pad + Math.floor((m - 2 * pad - len) / 2), label);
  return row;
}

/** A message from a lane to itself: '*' on the lifeline and the text beside it, on the side with room. */
function notePlacement(layout: TextLayout, laneX: number, texts: readonly string[]): { right: boolean; room: number } {
  const roomRight = layout.right - (laneX + 2);
  const roomLeft = laneX - 1 - layout.timeCols;
  const longest = Math.max(0, ...texts.map(textLength));
  const right = roomRight >= Math.min(longest, 16) || roomRight >= roomLeft;
  return { right, room: Math.max(0, right ? roomRight : roomLeft) };
}

function putNote(row: TextRow, laneX: number, where: { right: boolean; room: number }, text: string): void {
  const t = truncate(text, where.room);
  if (where.right) row.put(laneX + 2, t);
  else row.put(laneX - 1 - textLength(t), t);
}

/**
 * Fixed-width text, no trailing newline. Lane titles (and subtitles) head `|` lifelines; each message is one row,
 * `|---label--->|` or `|<---label---|`, crossing the lanes between as '+', with its detail and drop reason on the
 * rows beneath. Labels are cut with "..." to fit their arrow; lines stay within `width` (default 120).
 */
export function renderLadderText(lanes: readonly LadderLane[], msgs: readonly LadderMessage[], opts: LadderTextOptions = {}): string {
  const width = opts.width ?? DEFAULT_WIDTH;
  const showTime = opts.showTime ?? true;
  if (!Number.isInteger(width) || width < 1) throw new ConfigError(`ladder: width must be a positive whole number of columns, not ${width}`);
  const placed = placeMessages(lanes, msgs, opts.fixed?.timeDecimals);
  if (lanes.length === 0) return '(no lanes)';
  const layout = layoutText(lanes, placed, width, showTime, opts.fixed);
  const lines: string[] = [];

  const header = (pick: (l: LadderLane) => string, timeHead: string) => {
    const row = new TextRow(layout, false);
    if (showTime) row.put(0, timeHead.padStart(layout.timeCols - 2));
    lanes.forEach((lane, i) => {
      const t = truncate(cleanText(pick(lane)), layout.headerWidth[i]!);
      row.put(layout.x[i]! - Math.floor(textLength(t) / 2), t);
    });
    lines.push(row.toString());
  };
  header((l) => l.title, 'ms');
  if (lanes.some((l) => l.subtitle)) header((l) => l.subtitle ?? '', '');
  lines.push(new TextRow(layout, true).toString());

  for (const p of placed) {
    const subs = subLines(p);
    let first: TextRow;
    if (p.fromIndex === p.toIndex) {
      const x = layout.x[p.fromIndex]!;
      const where = notePlacement(layout, x, [p.label, ...subs]);
      first = new TextRow(layout, true);
      first.cells[x] = '*';
      putNote(first, x, where, p.label);
      if (showTime && p.newTime) first.put(0, p.time.padStart(layout.timeCols - 2));
      lines.push(first.toString());
      for (const s of subs) {
        const row = new TextRow(layout, true);
        putNote(row, x, where, s);
        lines.push(row.toString());
      }
      continue;
    }
    first = arrowRow(layout, p);
    if (showTime && p.newTime) first.put(0, p.time.padStart(layout.timeCols - 2));
    lines.push(first.toString());
    const lo = Math.min(layout.x[p.fromIndex]!, layout.x[p.toIndex]!) + 1;
    const hi = Math.max(layout.x[p.fromIndex]!, layout.x[p.toIndex]!) - 1;
    for (const s of subs) {
      const row = new TextRow(layout, true);
      row.putCentred(lo, hi, s);
      lines.push(row.toString());
    }
  }
  if (placed.length === 0) {
    const row = new TextRow(layout, true);
    row.putCentred(layout.timeCols, layout.right - 1, '(no messages)');
    lines.push(row.toString());
  }
  lines.push(new TextRow(layout, true).toString());
  return lines.join('\n');
}
