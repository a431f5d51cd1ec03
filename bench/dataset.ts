/** The tools the benchmarks write: real package names and summaries, made as many as needed. */
import { existsSync, readFileSync } from 'node:fs';
import { generateTools, seededRandom, type SeedTool } from '../src/cli/seed-data.js';
import { nextRetryAt, retryJitterKey } from '../src/sync/backoff.js';
import { aggregateSyncStatus } from '../src/sync/status-order.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, type SyncStatus } from '../src/sync/vocabulary.js';

export interface Dataset {
  /** Where the tools came from (the shared file, or the seeded generator when it is absent). */
  source: string;
  tools: SeedTool[];
}

/**
 * The legacy tool documents of `path` (JSON lines), or, where the file is not there (a clone
 * outside this workspace), tools from the seeded generator of `tool-sync seed`.
 */
export function loadDataset(path: string, fallbackCount = 10_000): Dataset {
  if (!existsSync(path)) {
    return { source: `generated (seed 1; ${path} not found)`, tools: generateTools(fallbackCount, seededRandom(1)) };
  }
  const lines = readFileSync(path, 'utf8').split('\n').filter((line) => line.trim() !== '');
  const tools = lines.map((line) => JSON.parse(line) as SeedTool);
  const clash = tools.find((tool) => COPY_SUFFIX.test(tool.id));
  if (clash !== undefined) throw new Error(`${path}: id "${clash.id}" ends like the benchmark's copies (-copyN); ids would collide`);
  return { source: path, tools };
}

const COPY_SUFFIX = /-copy\d+$/;

/**
 * The `index`-th tool of an endless sequence over the dataset: copy k of a tool gets the id
 * suffix `-copyk` (ids stay unique and kebab-case), the text stays real.
 */
export function toolAt(dataset: Dataset, index: number): SeedTool {
  const base = dataset.tools[index % dataset.tools.length];
  if (base === undefined) throw new Error('the benchmark dataset is empty');
  const copy = Math.floor(index / dataset.tools.length);
  if (copy === 0) return { ...base };
  const id = `${base.id.slice(0, 88)}-copy${copy}`;
  return { ...base, id, url: `${base.url}-copy${copy}` };
}

export function toolsAt(dataset: Dataset, from: number, count: number): SeedTool[] {
  return Array.from({ length: count }, (_, offset) => toolAt(dataset, from + offset));
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * A sync state a live collection might hold, seeded by the tool's index: most tools synced,
 * some stale after an edit, some new, some failed with a categorized error and the time its
 * retry is due. Applied to the plain object of a document the model built.
 */
export function applySyncStateMix(doc: Record<string, unknown>, index: number, now: Date): void {
  const random = seededRandom(index + 1);
  const meta = doc.syncMetadata as { collections: Record<string, Record<string, unknown>>; overallStatus: SyncStatus; updatedAt: Date };
  const roll = random();
  const statuses: SyncStatus[] = [];
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = meta.collections[name];
    if (state === undefined) continue;
    let status: SyncStatus = 'synced';
    if (roll >= 0.7 && roll < 0.85 && random() < 0.5) status = 'stale';
    else if (roll >= 0.85 && roll < 0.95) status = 'pending';
    else if (roll >= 0.95 && random() < 0.5) status = 'failed';
    const syncedAt = new Date(now.getTime() - Math.floor(random() * 30 * DAY_MS));
    state.status = status;
    if (status !== 'pending') {
      state.lastSyncedAt = syncedAt;
      state.lastSyncAttemptAt = syncedAt;
      state.vectorVersion = 1 + Math.floor(random() * 3);
    }
    if (status === 'failed') {
      const code = SYNC_ERROR_CODES[Math.floor(random() * SYNC_ERROR_CODES.length)] ?? 'UNKNOWN';
      const retryCount = 1 + Math.floor(random() * 6);
      const attemptAt = new Date(now.getTime() - Math.floor(random() * DAY_MS));
      state.errorCode = code;
      state.lastError = `${code}: the embedding request failed`;
      state.retryCount = retryCount;
      state.lastSyncAttemptAt = attemptAt;
      // As markCollectionFailed stores it (the backoff after the attempt): most are due by now.
      state.nextRetryAt = nextRetryAt(attemptAt, retryCount, code, retryJitterKey(doc._id, name));
    }
    statuses.push(status);
  }
  meta.overallStatus = aggregateSyncStatus(statuses);
  meta.updatedAt = new Date(now.getTime() - Math.floor(random() * 30 * DAY_MS));
}
