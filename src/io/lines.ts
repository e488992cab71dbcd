/**
 * Lines of a byte stream (the privileged helper's pipe: one JSON object a line each way), without node:readline,
 * whose interface and stream machinery a daemon would otherwise load at start for two pipes.
 */
import type { Readable } from 'node:stream';

/** Calls `onLine` for every '\n'-terminated line of `input` (UTF-8), and `onEnd` once it ends (a last unterminated
 *  line is delivered first). */
export function onLines(input: Readable, onLine: (line: string) => void, onEnd?: () => void): void {
  let pending = '';
  input.setEncoding('utf8');
  input.on('data', (chunk: string) => {
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      onLine(line);
    }
  });
  input.on('end', () => {
    if (pending !== '') onLine(pending);
    pending = '';
    onEnd?.();
  });
}
