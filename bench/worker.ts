/**
 * 5. The sync worker end to end, one pair at a time against batches: runSyncWorker with per-pair
 * callbacks, and with batches of 1, 16 and 64, for 1, 2 and 4 workers (in this process, each at
 * its default concurrency) over the same tools' first sync (every collection pending, laid anew
 * before each run), with a simulated embedding API whose request
 * takes 100 ms + 0.5 ms per input and a vector store that takes none. Pairs marked synced per
 * second (until the queue is empty or the run's time budget ends), the embedder's ceiling,
 * database commands per pair (the driver's command events), embedding and store requests per pair.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import mongoose from 'mongoose';
import { TOMBSTONE_COLLECTION } from '../src/models/tombstones.js';
import { ToolModel } from '../src/models/tool.js';
import { SYNC_COLLECTION_NAMES } from '../src/sync/vocabulary.js';
import { runSyncWorker } from '../src/worker/run-sync-worker.js';
import { type SyncWorkerEvent, type SyncWorkerSummary } from '../src/worker/events.js';
import { type SyncWorkerOptions } from '../src/worker/options.js';
import { dropIfExists, recreateWithToolIndexes } from './collections.js';
import { toolsAt, type Dataset } from './dataset.js';
import { perSecond, round } from './measure.js';
import { type Plain } from './queries.js';

export const WORKER_COUNTS = [1, 2, 4] as const;
/** The simulated embedding request: a fixed part, and a part per input. */
export const WORKER_EMBED_MS = 100;
export const WORKER_EMBED_PER_INPUT_MS = 0.5;
/** runSyncWorker's default: embedding requests in flight per worker. */
const CONCURRENCY = 4;
const MAX_RETRIES = 5;
const INSERT_CHUNK = 2_000;

/** Side by side: per-pair callbacks (`embed`, `upsert`), then batches of these sizes (`embedBatch`, `upsertBatch`). */
export const WORKER_MODES = [
  { mode: 'per pair', batchSize: null },
  { mode: 'batch 1', batchSize: 1 },
  { mode: 'batch 16', batchSize: 16 },
  { mode: 'batch 64', batchSize: 64 },
] as const;

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
  /** What the embedder alone allows: workers × concurrency × batch / one request's time. */
  ceiling: number;
  /** Over one worker's pairs per second (same mode). */
  speedup: number;
  /** Every worker stopped because no work was left (not by the time budget). */
  completed: boolean;
  /** Database commands the workers sent, per pair synced, and by command name. */
  commandsPerPair: number;
  commandsByName: Record<string, number>;
  embedRequestsPerPair: number;
  storeRequestsPerPair: number;
}

export interface WorkerMode {
  mode: string;
  /** Pairs per embedding request (null: per-pair callbacks, one pair a request). */
  batchSize: number | null;
  runs: WorkerRun[];
}

export interface WorkerResult {
  tools: number;
  /** The embedding request's fixed time and time per input (ms). */
  embedMs: number;
  embedPerInputMs: number;
  concurrency: number;
  /** Batches of 64, the default (also under `modes`). */
  runs: WorkerRun[];
  modes: WorkerMode[];
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

/** The simulated embedding request's time for `inputs` inputs. */
const requestMs = (inputs: number): number => WORKER_EMBED_MS + WORKER_EMBED_PER_INPUT_MS * inputs;

/** The callbacks of a mode, counting requests: per pair, or batches. */
function callbacks(batchSize: number | null, requests: { embed: number; store: number }): Partial<SyncWorkerOptions> {
  if (batchSize === null) {
    return {
      embed: async () => {
        requests.embed += 1;
        await sleep(requestMs(1));
        return [0];
      },
      upsert: () => { requests.store += 1; return Promise.resolve(); },
      remove: () => { requests.store += 1; return Promise.resolve(); },
    };
  }
  return {
    batchSize,
    embedBatch: async (items) => {
      requests.embed += 1;
      await sleep(requestMs(items.length));
      return items.map(() => [0]);
    },
    upsertBatch: () => { requests.store += 1; return Promise.resolve(); },
    removeBatch: () => { requests.store += 1; return Promise.resolve(); },
  };
}

type RunFigures = Omit<WorkerRun, 'speedup' | 'waitingPairs' | 'ceiling'>;

async function runWorkers(workers: number, batchSize: number | null, budgetMs: number): Promise<RunFigures> {
  const stop = new AbortController();
  const timer = setTimeout(() => { stop.abort(); }, budgetMs);
  const marks = new Map<string, number>();
  const onEvent = (event: SyncWorkerEvent): void => {
    if (event.type !== 'synced') return;
    const key = `${String(event.toolId)}:${event.collection}`;
    marks.set(key, (marks.get(key) ?? 0) + 1);
  };
  // Every command of the run is a worker's: nothing else runs meanwhile.
  const commands = new Map<string, number>();
  const client = mongoose.connection.getClient();
  const count = (event: mongoose.mongo.CommandStartedEvent): void => { commands.set(event.commandName, (commands.get(event.commandName) ?? 0) + 1); };
  client.on('commandStarted', count);
  const requests = { embed: 0, store: 0 };
  const started = performance.now();
  let summaries: SyncWorkerSummary[];
  try {
    summaries = await Promise.all(Array.from({ length: workers }, (_, index) => runSyncWorker({
      model: ToolModel,
      workerId: `bench-worker-${index + 1}`,
      concurrency: CONCURRENCY,
      maxRetries: MAX_RETRIES,
      // A worker that finds nothing while others still work asks again soon, not after a second (its own
      // batches' ends wake it at once); not so often that idle workers' claims load the database.
      pollIntervalMs: 100,
      stopWhenIdle: true,
      signal: stop.signal,
      onEvent,
      embeddingModel: 'bench-embedder',
      ...callbacks(batchSize, requests),
    })));
  } finally {
    clearTimeout(timer);
    client.off('commandStarted', count);
  }
  const seconds = (performance.now() - started) / 1000;
  const sum = (key: 'synced' | 'failed' | 'claimLost' | 'errors'): number => summaries.reduce((total, summary) => total + summary[key], 0);
  const synced = sum('synced');
  const per = (value: number): number => (synced === 0 ? 0 : round(value / synced, 3));
  const commandCount = [...commands.values()].reduce((total, n) => total + n, 0);
  return {
    workers,
    synced,
    syncedAgain: [...marks.values()].reduce((total, times) => total + times - 1, 0),
    failed: sum('failed'),
    claimLost: sum('claimLost'),
    errors: sum('errors'),
    seconds: round(seconds, 2),
    pairsPerSecond: perSecond(synced, seconds * 1000),
    completed: summaries.every((summary) => summary.stoppedBy === 'idle'),
    commandsPerPair: per(commandCount),
    commandsByName: Object.fromEntries([...commands].sort(([a], [b]) => a.localeCompare(b))),
    embedRequestsPerPair: per(requests.embed),
    storeRequestsPerPair: per(requests.store),
  };
}

/** The first sync: `count` new tools of the dataset, every collection pending (as the model creates them). */
async function newTools(dataset: Dataset, count: number): Promise<Plain[]> {
  const docs: Plain[] = [];
  for (const tool of toolsAt(dataset, 0, count)) {
    const doc = new ToolModel(tool);
    await doc.validate();
    docs.push(doc.toObject<Plain>());
  }
  return docs;
}

export async function benchWorker(
  dataset: Dataset,
  options: { tools: number; budgetMs: number },
  onRun: (mode: string, workers: number) => void,
): Promise<WorkerResult> {
  const docs = await newTools(dataset, options.tools);
  const modes: WorkerMode[] = [];
  for (const { mode, batchSize } of WORKER_MODES) {
    const runs: WorkerRun[] = [];
    for (const workers of WORKER_COUNTS) {
      onRun(mode, workers);
      await reset(docs);
      const at = new Date();
      const waitingPairs = docs.reduce((total, doc) => total + pairsWaiting(doc, at), 0);
      const run = await runWorkers(workers, batchSize, options.budgetMs);
      const single = runs[0]?.pairsPerSecond ?? run.pairsPerSecond;
      const inputs = batchSize ?? 1;
      const ceiling = round((workers * CONCURRENCY * inputs * 1000) / requestMs(inputs), 1);
      runs.push({ ...run, waitingPairs, ceiling, speedup: single === 0 ? 0 : round(run.pairsPerSecond / single, 2) });
    }
    modes.push({ mode, batchSize, runs });
  }
  await ToolModel.collection.drop();
  const batch64 = modes.find(({ batchSize }) => batchSize === 64)?.runs ?? [];
  return { tools: options.tools, embedMs: WORKER_EMBED_MS, embedPerInputMs: WORKER_EMBED_PER_INPUT_MS, concurrency: CONCURRENCY, runs: batch64, modes };
}
