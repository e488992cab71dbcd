/**
 * A checker for the Prometheus text exposition format 0.0.4, strict enough to catch what breaks a scrape:
 * samples before their TYPE, a TYPE or HELP given twice, bad metric or label names, unescaped label values,
 * duplicate series, values that are not numbers, counters that are negative or not named *_total.
 * Throws an Error naming the line.
 */
export interface ExpoSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ExpoFamily {
  name: string;
  type: string;
  help: string;
  samples: ExpoSample[];
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseLabels(s: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 0;
  if (s[i] !== '{') return { labels, rest: s };
  i++;
  for (;;) {
    if (s[i] === '}') {
      i++;
      break;
    }
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name) || name.startsWith('__')) throw new Error(`${where}: bad label name '${name}'`);
    if (name in labels) throw new Error(`${where}: label '${name}' twice`);
    i = eq + 1;
    if (s[i] !== '"') throw new Error(`${where}: label value not quoted`);
    i++;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '\n') throw new Error(`${where}: raw newline in a label value`);
      if (c === '\\') {
        const n = s[i + 1];
        if (n === '\\') v += '\\';
        else if (n === '"') v += '"';
        else if (n === 'n') v += '\n';
        else throw new Error(`${where}: bad escape '\\${n ?? ''}' in a label value`);
        i += 2;
        continue;
      }
      if (c === '"') {
        i++;
        break;
      }
      v += c;
      i++;
    }
    labels[name] = v;
    if (s[i] === ',') i++;
    else if (s[i] !== '}') throw new Error(`${where}: expected ',' or '}' after a label`);
  }
  return { labels, rest: s.slice(i) };
}

export function parseExposition(text: string): Map<string, ExpoFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const fams = new Map<string, ExpoFamily>();
  const series = new Set<string>();
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, idx) => {
    const where = `line ${idx + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!METRIC.test(name)) throw new Error(`${where}: bad metric name '${name}'`);
      let f = fams.get(name);
      if (!f) fams.set(name, (f = { name, type: '', help: '', samples: [] }));
      if (kind === 'TYPE') {
        if (f.type) throw new Error(`${where}: TYPE of ${name} given twice`);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE of ${name} after its samples`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`${where}: unknown type '${rest}'`);
        f.type = rest;
      } else {
        if (f.help) throw new Error(`${where}: HELP of ${name} given twice`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest || ' ';
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${line}`);
    const name = m[1]!;
    const { labels, rest } = parseLabels(m[2]!, where);
    const vm = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!vm) throw new Error(`${where}: expected ' value [timestamp]' after the labels: '${rest}'`);
    const raw = vm[1]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
    if (!/^(\+Inf|-Inf|NaN|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/.test(raw)) throw new Error(`${where}: '${raw}' is not a number`);
    const f = fams.get(name);
    if (!f || !f.type) throw new Error(`${where}: sample of ${name} before its TYPE`);
    if (f.type === 'counter' && (!name.endsWith('_total') || value < 0)) throw new Error(`${where}: counter ${name} must end in _total and not be negative`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: series ${key} twice`);
    series.add(key);
    f.samples.push({ name, labels, value });
  });
  // A family's lines are contiguous: once another family starts, it must not come back (checked by order).
  let last = '';
  const closed = new Set<string>();
  for (const line of lines) {
    const name = line.startsWith('# ') ? line.split(' ')[2] ?? '' : /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '';
    if (name === '' || name === last) continue;
    if (closed.has(name)) throw new Error(`family ${name} is not contiguous`);
    if (last) closed.add(last);
    last = name;
  }
  return fams;
}
