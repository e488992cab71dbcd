/**
 * The ladder diagram as a standalone SVG 1.1 document: lane headers, dashed lifelines, one arrow per message with
 * its label above and its detail beneath, times on the left, a legend of the styles used. Dropped messages are red
 * and end in an X short of their target. The size follows the content; the output is deterministic.
 */
import {
  LADDER_STYLES,
  cleanText,
  placeMessages,
  subLines,
  textLength,
  truncate,
  type LadderLane,
  type LadderMessage,
  type LadderStyle,
  type PlacedMessage,
} from './ladder.js';

export interface LadderSvgOptions {
  /** Shown above the diagram and as the document's <title>. */
  title?: string;
  /** A time column on the left, in milliseconds (default true). */
  showTime?: boolean;
}

const FONT_SIZE = 12;
/** Average advance of the monospace font at FONT_SIZE, used to size everything from the text. */
const CHAR_W = 7.2;
const PAD = 16;
const MIN_SPACING = 120;
/** Wider labels are cut with "..." (the whole text stays in a <title> tooltip). */
const MAX_SPACING = 380;
const NOTE_LOOP = 28;
const DROP_SHORT = 22;
const DROPPED_COLOUR = '#c62828';
const FONT_FAMILY = 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';

const STYLE: Record<LadderStyle, { colour: string; width: number; dash?: string; legend: string }> = {
  control: { colour: '#1f4e9c', width: 1.5, legend: 'control (RS, RA, qualification)' },
  bubble: { colour: '#b25e00', width: 1.5, dash: '7 4', legend: 'bubble' },
  data: { colour: '#2e7d32', width: 2.5, legend: 'data' },
  echo: { colour: '#7b1fa2', width: 1.5, dash: '2 3', legend: 'echo (connectivity test)' },
};

/** Text and attribute values alike: the five XML specials, after cleanText has removed what XML cannot carry. */
export function escapeXml(s: string): string {
  return cleanText(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Coordinates rounded to 0.1 so the output does not depend on floating-point noise. */
function n(v: number): string {
  const r = Math.round(v * 10) / 10;
  return Object.is(r, -0) ? '0' : String(r);
}

const textW = (s: string) => textLength(s) * CHAR_W;

function text(x: number, y: number, s: string, attrs = '', full?: string): string {
  const tip = full !== undefined && full !== s ? `<title>${escapeXml(full)}</title>` : '';
  return `<text x="${n(x)}" y="${n(y)}"${attrs}>${tip}${escapeXml(s)}</text>`;
}

function strokeAttrs(style: LadderStyle, dropped: boolean): string {
  const st = STYLE[style];
  const dash = st.dash ? ` stroke-dasharray="${st.dash}"` : '';
  return ` stroke="${dropped ? DROPPED_COLOUR : st.colour}" stroke-width="${st.width}"${dash}`;
}

function xMark(x: number, y: number): string {
  return `<path d="M${n(x - 5)},${n(y - 5)} L${n(x + 5)},${n(y + 5)} M${n(x - 5)},${n(y + 5)} L${n(x + 5)},${n(y - 5)}" stroke="${DROPPED_COLOUR}" stroke-width="2" fill="none"/>`;
}

interface Row {
  readonly p: PlacedMessage;
  readonly top: number;
  readonly arrowY: number;
}

export function renderLadderSvg(lanes: readonly LadderLane[], msgs: readonly LadderMessage[], opts: LadderSvgOptions = {}): string {
  const placed = placeMessages(lanes, msgs);
  const showTime = opts.showTime ?? true;
  const title = opts.title === undefined ? undefined : cleanText(opts.title);
  const laneTitles = lanes.map((l) => cleanText(l.title));
  const laneSubs = lanes.map((l) => cleanText(l.subtitle ?? ''));
  const hasSub = laneSubs.some((s) => s !== '');

  // Horizontal layout: a time column, then lanes evenly spaced, wide enough for the headers and for each label
  // (and detail) within the gaps its arrow spans.
  const timeW = showTime && placed.length > 0 ? Math.max(...placed.map((p) => textW(`${p.time} ms`))) + 16 : 0;
  const headerTextW = Math.max(0, ...laneTitles.map(textW), ...laneSubs.map(textW));
  let spacing = Math.max(MIN_SPACING, headerTextW + 28);
  for (const p of placed) {
    const gaps = Math.abs(p.toIndex - p.fromIndex);
    if (gaps === 0) continue;
    // Only the label sizes the lanes: details (address pairs) may spread wider than their arrow, on a backdrop.
    spacing = Math.max(spacing, (textW(p.label) + 24) / gaps);
  }
  spacing = Math.min(Math.ceil(spacing), MAX_SPACING);
  const boxW = Math.min(spacing - 12, headerTextW + 16);
  const laneX = lanes.map((_, i) => PAD + timeW + boxW / 2 + i * spacing);
  const maxChars = (gaps: number) => Math.floor((gaps * spacing - 24) / CHAR_W);
  // Free text (details, notes) stays between the time column and the right edge of the lanes (or of the widest note).
  const textLeft = PAD + timeW;
  const lanesRight = lanes.length > 0 ? laneX[lanes.length - 1]! + boxW / 2 : PAD;

  // Vertical layout.
  const titleH = title !== undefined ? 30 : 0;
  const boxTop = PAD + titleH;
  const boxH = hasSub ? 40 : 26;
  let y = boxTop + boxH + 18;
  let rightmost = lanesRight;
  const rows: Row[] = [];
  for (const p of placed) {
    const subs = subLines(p);
    const self = p.fromIndex === p.toIndex;
    const arrowY = y + 20;
    rows.push({ p, top: y, arrowY });
    if (self) {
      const x = laneX[p.fromIndex]! + NOTE_LOOP + 8;
      rightmost = Math.max(rightmost, x + Math.max(textW(p.label), ...subs.map(textW)));
      y = arrowY + 12 + 8 + subs.length * 15 + 6;
    } else {
      y = arrowY + 8 + subs.length * 15 + 6;
    }
  }
  if (placed.length === 0) y += 30;
  const lifelineEnd = y + 6;

  // Legend: the styles that appear, in a fixed order, then 'dropped' if anything was.
  const used = LADDER_STYLES.filter((s) => placed.some((p) => p.style === s));
  const anyDropped = placed.some((p) => p.dropped !== undefined);
  const legendTop = lifelineEnd + 20;
  const legend: string[] = [];
  let lx = PAD;
  for (const s of used) {
    legend.push(`<line x1="${n(lx)}" y1="${n(legendTop)}" x2="${n(lx + 36)}" y2="${n(legendTop)}"${strokeAttrs(s, false)} marker-end="url(#t6-head-${s})"/>`);
    legend.push(text(lx + 44, legendTop + 4, STYLE[s].legend));
    lx += 44 + textW(STYLE[s].legend) + 24;
  }
  if (anyDropped) {
    legend.push(`<line x1="${n(lx)}" y1="${n(legendTop)}" x2="${n(lx + 30)}" y2="${n(legendTop)}" stroke="${DROPPED_COLOUR}" stroke-width="1.5"/>`);
    legend.push(xMark(lx + 30, legendTop));
    legend.push(text(lx + 44, legendTop + 4, 'dropped', ` fill="${DROPPED_COLOUR}"`));
    lx += 44 + textW('dropped') + 24;
  }
  const legendH = legend.length > 0 ? 30 : 0;

  const width = Math.ceil(Math.max(rightmost + PAD, lx - 24 + PAD, title !== undefined ? PAD * 2 + textW(title) * 1.2 : 0, 2 * PAD + 40));
  const height = Math.ceil(lifelineEnd + legendH + PAD);

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT_FAMILY}" font-size="${FONT_SIZE}">`);
  out.push(`<title>${escapeXml(title ?? 'Ladder diagram')}</title>`);
  out.push('<defs>');
  for (const s of LADDER_STYLES) {
    out.push(`<marker id="t6-head-${s}" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="${STYLE[s].colour}"/></marker>`);
  }
  out.push('</defs>');
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  if (title !== undefined) out.push(text(PAD, PAD + 14, title, ' font-size="15" font-weight="bold"'));

  // Lanes.
  out.push('<g class="lanes">');
  lanes.forEach((_, i) => {
    const x = laneX[i]!;
    out.push(`<line x1="${n(x)}" y1="${n(boxTop + boxH)}" x2="${n(x)}" y2="${n(lifelineEnd)}" stroke="#9e9e9e" stroke-width="1" stroke-dasharray="4 4"/>`);
    out.push(`<rect x="${n(x - boxW / 2)}" y="${n(boxTop)}" width="${n(boxW)}" height="${boxH}" rx="4" fill="#f5f5f5" stroke="#616161"/>`);
    const cut = Math.floor((boxW - 8) / CHAR_W);
    out.push(text(x, boxTop + 17, truncate(laneTitles[i]!, cut), ' text-anchor="middle" font-weight="bold"', laneTitles[i]));
    if (laneSubs[i]) out.push(text(x, boxTop + 32, truncate(laneSubs[i]!, cut), ' text-anchor="middle" font-size="11" fill="#424242"', laneSubs[i]));
  });
  out.push('</g>');

  // Messages.
  out.push('<g class="messages">');
  if (placed.length === 0 && lanes.length > 0) {
    const mid = (laneX[0]! + laneX[lanes.length - 1]!) / 2;
    out.push(text(mid, boxTop + boxH + 36, '(no messages)', ' text-anchor="middle" fill="#757575"'));
  }
  for (const { p, arrowY } of rows) {
    const dropped = p.dropped !== undefined;
    const colour = dropped ? DROPPED_COLOUR : STYLE[p.style].colour;
    const fill = ` fill="${colour}"`;
    const subs = subLines(p);
    out.push(`<g class="message ${p.style}${dropped ? ' dropped' : ''}">`);
    if (showTime && p.newTime) out.push(text(PAD + timeW - 12, arrowY + 4, `${p.time} ms`, ' text-anchor="end" fill="#616161"'));
    const xa = laneX[p.fromIndex]!;
    if (p.fromIndex === p.toIndex) {
      // A note: a small loop back to the lane, the text beside it.
      const d = `M${n(xa)},${n(arrowY - 6)} H${n(xa + NOTE_LOOP)} V${n(arrowY + 6)} H${n(xa + 2)}`;
      out.push(`<path d="${d}" fill="none"${strokeAttrs(p.style, dropped)}${dropped ? '' : ` marker-end="url(#t6-head-${p.style})"`}/>`);
      const tx = xa + NOTE_LOOP + 8;
      out.push(text(tx, arrowY + 4, p.label, fill));
      subs.forEach((s, i) => out.push(text(tx, arrowY + 20 + i * 15, s, i === subs.length - 1 && dropped ? fill : ' fill="#424242"')));
    } else {
      const xb = laneX[p.toIndex]!;
      const dir = xb > xa ? 1 : -1;
      const end = dropped ? xb - dir * DROP_SHORT : xb - dir;
      const head = dropped ? '' : ` marker-end="url(#t6-head-${p.style})"`;
      out.push(`<line x1="${n(xa)}" y1="${n(arrowY)}" x2="${n(end)}" y2="${n(arrowY)}"${strokeAttrs(p.style, dropped)}${head}/>`);
      if (dropped) out.push(xMark(end, arrowY));
      const mid = (xa + xb) / 2;
      const cap = maxChars(Math.abs(p.toIndex - p.fromIndex));
      out.push(text(mid, arrowY - 6, truncate(p.label, cap), ` text-anchor="middle"${fill}`, p.label));
      subs.forEach((s, i) => {
        const attrs = i === subs.length - 1 && dropped ? fill : ' font-size="11" fill="#424242"';
        const t = truncate(s, Math.floor((lanesRight - textLeft) / CHAR_W));
        const w = textW(t);
        const x = Math.max(textLeft, Math.min(mid - w / 2, lanesRight - w));
        const by = arrowY + 16 + i * 15;
        out.push(`<rect x="${n(x - 3)}" y="${n(by - 11)}" width="${n(w + 6)}" height="14" fill="#ffffff" fill-opacity="0.85"/>`);
        out.push(text(x, by, t, attrs, s));
      });
    }
    out.push('</g>');
  }
  out.push('</g>');

  if (legend.length > 0) out.push(`<g class="legend">${legend.join('')}</g>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
