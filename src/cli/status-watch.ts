import { setTimeout as sleep } from 'node:timers/promises';
import { type SyncStats } from '../models/tool-queries.js';
import { describeFailure } from './errors.js';
import { type OutputStream } from './progress.js';
import { formatStatus } from './status-report.js';

/** Cursor home, then erase the screen: the next frame replaces the last on a terminal. */
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

export interface WatchOptions {
  read: () => Promise<SyncStats>;
  everyMs: number;
  stdout: OutputStream;
  colour: boolean;
  /** Ends the watch after the frame being drawn. */
  signal: AbortSignal;
}

/**
 * `tool-sync status --watch`: the dashboard, redrawn every `everyMs` until `signal` aborts. On a
 * terminal each frame replaces the last; elsewhere (a pipe, a log) frames follow one another, each
 * under a line with its time. The first read fails the command; a later failure is shown in place
 * of the frame, and the watch tries again.
 */
export async function watchStatus({ read, everyMs, stdout, colour, signal: interrupted }: WatchOptions): Promise<void> {
  // Also ends when nobody reads any more (`status --watch | head`: EPIPE): else it would read the database for ever, unseen.
  const stop = new AbortController();
  const end = (): void => { stop.abort(); };
  if (interrupted.aborted) end();
  interrupted.addEventListener('abort', end, { once: true });
  stdout.on('error', end);
  try {
    await frames({ read, everyMs, stdout, colour, signal: stop.signal });
  } finally {
    interrupted.removeEventListener('abort', end);
    stdout.off('error', end);
  }
}

async function frames({ read, everyMs, stdout, colour, signal }: WatchOptions): Promise<void> {
  let first = true;
  while (!signal.aborted) {
    let body: string;
    try {
      body = formatStatus(await read(), { colour });
    } catch (error) {
      if (first) throw error;
      body = `cannot read the status (trying again in ${everyMs} ms): ${describeFailure(error)}`;
    }
    first = false;
    const heading = `tool-sync status at ${new Date().toISOString()} (every ${everyMs} ms; Ctrl-C stops)`;
    stdout.write(stdout.isTTY === true ? `${CLEAR_SCREEN}${heading}\n\n${body}\n` : `=== ${heading}\n${body}\n`);
    try {
      await sleep(everyMs, undefined, { signal });
    } catch {
      // Aborted: the loop ends.
    }
  }
}
