import { type mongo } from 'mongoose';
import { type StoredTool } from '../sync/stored-tool.js';

/** One queue of tools, read in its index's order; `key` is where a tool stands in it. */
export interface Queue {
  cursor: mongo.FindCursor<StoredTool>;
  key: (tool: StoredTool) => number;
}

/** The stored Date at `path` (dotted) as milliseconds; 0 when missing (first in line). */
export function timeAt(tool: StoredTool, path: string): number {
  let value: unknown = tool;
  for (const part of path.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
  return value instanceof Date ? value.getTime() : 0;
}

/**
 * Several queues merged into one, lowest key first, each tool once: the tools are read as the
 * merge reaches them, so a caller that stops after `n` reads about `n` (plus a batch per queue),
 * however long the queues are. The cursors are closed when the caller stops.
 */
export async function* mergeQueues(queues: Queue[]): AsyncGenerator<StoredTool> {
  const seen = new Set<string>();
  try {
    const heads = await Promise.all(queues.map(async ({ cursor }) => cursor.next()));
    for (;;) {
      let pick = -1;
      let best = Number.POSITIVE_INFINITY;
      heads.forEach((head, index) => {
        const key = head === null ? undefined : queues[index]?.key(head);
        if (key !== undefined && (pick === -1 || key < best)) {
          pick = index;
          best = key;
        }
      });
      const head = heads[pick];
      const queue = queues[pick];
      if (head === undefined || head === null || queue === undefined) return;
      heads[pick] = await queue.cursor.next();
      const id = String(head._id);
      if (seen.has(id)) continue;
      seen.add(id);
      yield head;
    }
  } finally {
    await Promise.all(queues.map(async ({ cursor }) => cursor.close()));
  }
}
