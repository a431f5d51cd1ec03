/**
 * 5. The sync worker end to end: 1, 2 and 4 runSyncWorker instances (in this process, each at
 * its default concurrency) over the same tools, with an embedder that takes a fixed time and a
 * vector store that takes none. Pairs marked synced per second, until the queue is empty or
 * the run's time budget ends.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TOMBSTONE_COLLECTION } from '../src/models/tombstones.js';
import { ToolModel } from '../src/models/tool.js';
import { SYNC_COLLECTION_NAMES } from '../src/sync/vocabulary.js';
import { runSyncWorker } from '../src/worker/run-sync-worker.js';
import { type SyncWorkerEvent, type SyncWorkerSummary } from '../src/worker/events.js';
import { dropIfExists, recreateWithToolIndexes } from './collections.js';
import { type Dataset } from './dataset.js';
import { perSecond, round } from './measure.js';
import { mixedTools, type Plain } from './queries.js';

export const WORKER_COUNTS = [1, 2, 4] as const;
/** The simulated embedding call's latency. */
export const WORKER_EMBED_MS = 20;
/** runSyncWorker's default: pairs in work at once per worker. */
const CONCURRENCY = 4;
const MAX_RETRIES = 5;
const INSERT_CHUNK = 2_000;

export interface WorkerRun {
  workers: number;
  /** Pairs needing work when the run starts: pending, stale, or failed and due. */
  waitingPairs: number;
  /** Pairs marked synced, failed, and found claimed by another worker at their mark, over all workers. */
  synced: number;
  /** Of those marked synced, how many marks were of a pair already marked synced in the run: work done again. */
  syncedAgain: number;
  failed: number;
  claimLost: number;
  /** Database errors the workers reported and went on from. */
  errors: number;
  seconds: number;
  pairsPerSecond: number;
  /** Over one worker's pairs per second. */
  speedup: number;
  /** Every worker stopped because no work was left (not by the time budget). */
  completed: boolean;
}

export interface WorkerResult {
  tools: number;
  embedMs: number;
  concurrency: number;
  runs: WorkerRun[];
}

interface StoredState { status?: unknown; errorCode?: unknown; retryCount?: unknown; nextRetryAt?: unknown }

/** Work a claim would take from this document now (as isWork decides it). */
function pairsWaiting(doc: Plain, now: Date): number {
  const collections = (doc.syncMetadata as { collections: Record<string, StoredState> }).collections;
  return SYNC_COLLECTION_NAMES.filter((name) => {
    const state = collections[name];
    if (state?.status === 'pending' || state?.status === 'stale') return true;
    return state?.status === 'failed' && state.errorCode !== 'VALIDATION_ERROR' && Number(state.retryCount) < MAX_RETRIES
      && state.nextRetryAt instanceof Date && state.nextRetryAt.getTime() <= now.getTime();
  }).length;
}

/**
 * The same documents, afresh: the collection as the run before found it, and no deleted tools'
 * points waiting (the write path's deletes leave tombstones: the first run alone would remove them).
 */
async function reset(docs: Plain[]): Promise<void> {
  await dropIfExists(ToolModel.db.collection(TOMBSTONE_COLLECTION));
  await recreateWithToolIndexes(ToolModel.collection);
  for (let start = 0; start < docs.length; start += INSERT_CHUNK) {
    // They carry their `_id`: the driver adds nothing to them.
    await ToolModel.collection.insertMany(docs.slice(start, start + INSERT_CHUNK));
  }
}

async function runWorkers(workers: number, embedMs: number, budgetMs: number): Promise<Omit<WorkerRun, 'speedup' | 'waitingPairs'>> {
  const stop = new AbortController();
  const timer = setTimeout(() => { stop.abort(); }, budgetMs);
  const started = performance.now();
  const marks = new Map<string, number>();
  const onEvent = (event: SyncWorkerEvent): void => {
    if (event.type !== 'synced') return;
    const key = `${String(event.toolId)}:${event.collection}`;
    marks.set(key, (marks.get(key) ?? 0) + 1);
  };
  let summaries: SyncWorkerSummary[];
  try {
    summaries = await Promise.all(Array.from({ length: workers }, (_, index) => runSyncWorker({
      model: ToolModel,
      workerId: `bench-worker-${index + 1}`,
      concurrency: CONCURRENCY,
      maxRetries: MAX_RETRIES,
      // A claim that finds nothing while others still work is asked again soon, not after a second.
      pollIntervalMs: 20,
      stopWhenIdle: true,
      signal: stop.signal,
      onEvent,
      embed: async () => {
        await sleep(embedMs);
        return [0];
      },
      upsert: () => Promise.resolve(),
      remove: () => Promise.resolve(),
      embeddingModel: 'bench-embedder',
    })));
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - started) / 1000;
  const sum = (key: 'synced' | 'failed' | 'claimLost' | 'errors'): number => summaries.reduce((total, summary) => total + summary[key], 0);
  return {
    workers,
    synced: sum('synced'),
    syncedAgain: [...marks.values()].reduce((total, times) => total + times - 1, 0),
    failed: sum('failed'),
    claimLost: sum('claimLost'),
    errors: sum('errors'),
    seconds: round(seconds, 2),
    pairsPerSecond: perSecond(sum('synced'), seconds * 1000),
    completed: summaries.every((summary) => summary.stoppedBy === 'idle'),
  };
}

export async function benchWorker(
  dataset: Dataset,
  options: { tools: number; embedMs: number; budgetMs: number },
  onRun: (workers: number) => void,
): Promise<WorkerResult> {
  const now = new Date();
  const docs = await mixedTools(dataset, new Map(), 0, options.tools, now);
  const runs: WorkerRun[] = [];
  for (const workers of WORKER_COUNTS) {
    onRun(workers);
    await reset(docs);
    const at = new Date();
    const waitingPairs = docs.reduce((total, doc) => total + pairsWaiting(doc, at), 0);
    const run = await runWorkers(workers, options.embedMs, options.budgetMs);
    const single = runs[0]?.pairsPerSecond ?? run.pairsPerSecond;
    runs.push({ ...run, waitingPairs, speedup: single === 0 ? 0 : round(run.pairsPerSecond / single, 2) });
  }
  await ToolModel.collection.drop();
  return { tools: options.tools, embedMs: options.embedMs, concurrency: CONCURRENCY, runs };
}
