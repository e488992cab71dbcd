/**
 * A small XML well-formedness check for the SVG tests (no parser dependency): one root element, tags balanced and
 * properly nested, attributes quoted and unique, '&' only as an entity, no raw '<' or '>' in text or values.
 * Returns the problems found, [] for a well-formed document, with the root element's name and attributes.
 */
export interface XmlCheck {
  readonly errors: string[];
  readonly root?: { readonly name: string; readonly attrs: ReadonlyMap<string, string> };
  /** Every element name in document order. */
  readonly elements: string[];
  /** Text content with entities decoded, in document order. */
  readonly texts: string[];
}

const NAME = /^[A-Za-z_:][-A-Za-z0-9_.:]*/;
const ENTITY = /^&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/;

function checkChars(s: string, where: string, errors: string[]): void {
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '<' || c === '>') errors.push(`raw '${c}' in ${where}: ${JSON.stringify(s)}`);
    if (c === '&' && !ENTITY.test(s.slice(i))) errors.push(`bare '&' in ${where}: ${JSON.stringify(s)}`);
    const code = c.charCodeAt(0);
    if (code < 0x20 && c !== '\t' && c !== '\n' && c !== '\r') errors.push(`control character ${code} in ${where}`);
  }
}

function decode(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);/g, (_, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e]!;
  });
}

export function checkXml(doc: string): XmlCheck {
  const errors: string[] = [];
  const elements: string[] = [];
  const texts: string[] = [];
  let root: XmlCheck['root'];
  const stack: string[] = [];
  let i = 0;
  if (doc.startsWith('<?xml')) {
    const end = doc.indexOf('?>');
    if (end < 0) return { errors: ['unterminated XML declaration'], elements, texts };
    i = end + 2;
  }
  let rootsClosed = 0;
  while (i < doc.length) {
    const lt = doc.indexOf('<', i);
    const chunk = doc.slice(i, lt < 0 ? doc.length : lt);
    if (chunk.length > 0) {
      if (stack.length === 0) {
        if (chunk.trim() !== '') errors.push(`text outside the root element: ${JSON.stringify(chunk)}`);
      } else {
        checkChars(chunk, `text of <${stack[stack.length - 1]}>`, errors);
        if (chunk.trim() !== '') texts.push(decode(chunk));
      }
    }
    if (lt < 0) break;
    if (doc.startsWith('<!--', lt)) {
      const end = doc.indexOf('-->', lt);
      if (end < 0) { errors.push('unterminated comment'); break; }
      i = end + 3;
      continue;
    }
    if (doc.startsWith('</', lt)) {
      const m = NAME.exec(doc.slice(lt + 2));
      const name = m?.[0] ?? '';
      const close = doc.indexOf('>', lt);
      if (!m || close < 0 || doc.slice(lt + 2 + name.length, close).trim() !== '') errors.push(`bad closing tag at ${lt}`);
      const open = stack.pop();
      if (open !== name) errors.push(`</${name}> closes <${open ?? 'nothing'}> at ${lt}`);
      if (stack.length === 0) rootsClosed++;
      i = close < 0 ? doc.length : close + 1;
      continue;
    }
    const m = NAME.exec(doc.slice(lt + 1));
    if (!m) { errors.push(`bad tag at ${lt}: ${JSON.stringify(doc.slice(lt, lt + 20))}`); i = lt + 1; continue; }
    const name = m[0];
    if (stack.length === 0 && (root !== undefined || rootsClosed > 0)) errors.push(`a second root element <${name}>`);
    elements.push(name);
    let j = lt + 1 + name.length;
    const attrs = new Map<string, string>();
    let selfClosing = false;
    for (;;) {
      const ws = /^\s*/.exec(doc.slice(j))![0];
      j += ws.length;
      if (doc.startsWith('/>', j)) { selfClosing = true; j += 2; break; }
      if (doc[j] === '>') { j += 1; break; }
      if (j >= doc.length) { errors.push(`unterminated <${name}>`); break; }
      if (ws.length === 0) errors.push(`no space before an attribute of <${name}>`);
      const a = NAME.exec(doc.slice(j));
      if (!a) { errors.push(`bad attribute in <${name}> at ${j}: ${JSON.stringify(doc.slice(j, j + 20))}`); j = doc.length; break; }
      j += a[0].length;
      const q = doc[j + 1];
      if (doc[j] !== '=' || (q !== '"' && q !== "'")) { errors.push(`attribute ${a[0]} of <${name}> is not quoted`); j = doc.length; break; }
      const endQ = doc.indexOf(q, j + 2);
      if (endQ < 0) { errors.push(`unterminated attribute ${a[0]} of <${name}>`); j = doc.length; break; }
      const value = doc.slice(j + 2, endQ);
      checkChars(value, `attribute ${a[0]} of <${name}>`, errors);
      if (attrs.has(a[0])) errors.push(`attribute ${a[0]} repeated in <${name}>`);
      attrs.set(a[0], decode(value));
      j = endQ + 1;
    }
    if (root === undefined && stack.length === 0) root = { name, attrs };
    if (selfClosing) {
      if (stack.length === 0) rootsClosed++;
    } else {
      stack.push(name);
    }
    i = j;
  }
  if (stack.length > 0) errors.push(`unclosed elements: ${stack.join(' > ')}`);
  if (root === undefined) errors.push('no root element');
  return root === undefined ? { errors, elements, texts } : { errors, root, elements, texts };
}
