/**
 * 4. The sync worker's and the dashboard's queries on collections of growing size, holding a
 * realistic mix of sync states: latency, and for the three queues the documents each call reads
 * (and, where the engine's explain says, examines).
 */
import mongoose from 'mongoose';
import { ToolModel } from '../src/models/tool.js';
import { recreateWithToolIndexes } from './collections.js';
import { CursorRecorder, documentsIn, examinedBy, type Examined } from './commands.js';
import { applySyncStateMix, toolsAt, type Dataset } from './dataset.js';
import { median, round, sampleLatency, type LatencySummary, type SampleHooks } from './measure.js';

export const QUEUE_NAMES = ['claimSyncWork({ limit: 100 })', 'findNeedingSync({ limit: 100 })', 'findRetryable()'] as const;
export const QUERY_NAMES = [...QUEUE_NAMES, 'getSyncStats()'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];
export type QueryName = (typeof QUERY_NAMES)[number];

/** What one call of a queue read, over the samples of one size. */
export interface QueueReads {
  /** What a call returned: tool × collection pairs claimed, or tools (median). */
  returned: number;
  /** Documents the server sent back in the call's find and getMore replies (median, max). */
  documentsRead: { median: number; max: number };
  /**
   * The server's count for the finds of one call (the first sample), each replayed as explain;
   * null where the engine's explain gives no executionStats.
   */
  examined: Examined | null;
}

export interface QuerySize {
  tools: number;
  latency: Record<QueryName, LatencySummary>;
  reads: Record<QueueName, QueueReads>;
}

/** Each figure at a size over the same figure at the size before it (null where that was 0). */
export interface QueryGrowth {
  from: number;
  to: number;
  /** Median latency. */
  factor: Record<QueryName, number>;
  documentsRead: Record<QueueName, number | null>;
  docsExamined: Record<QueueName, number | null>;
}

export interface QueriesResult {
  sizes: QuerySize[];
  growth: QueryGrowth[];
  /** How documents examined were had, or why they were not. */
  examinedBy: string;
}

const WORKER_ID = 'bench-worker';

/** What a call returned, for the figures: pairs for a claim, tools for the others. */
type Returned = (value: unknown) => number;
const length: Returned = (value) => (Array.isArray(value) ? value.length : 0);

interface Query {
  run: () => Promise<unknown>;
  returned: Returned;
  /** Puts back what the call changed, untimed (a claim's leases), so every sample sees the same queue. */
  undo?: (value: unknown) => Promise<void>;
}

type Claimed = Awaited<ReturnType<typeof ToolModel.claimSyncWork>>;

const QUERIES: Record<QueryName, Query> = {
  'claimSyncWork({ limit: 100 })': {
    run: () => ToolModel.claimSyncWork({ workerId: WORKER_ID, limit: 100 }),
    returned: (value) => (value as Claimed).reduce((sum, { collections }) => sum + collections.length, 0),
    // The claimed tools keep their new metadata time (at the back of the waiting queue), by design.
    undo: async (value) => {
      const toolIds = (value as Claimed).map(({ tool }) => tool._id);
      if (toolIds.length > 0) await ToolModel.releaseClaims(WORKER_ID, { toolIds });
    },
  },
  'findNeedingSync({ limit: 100 })': { run: () => ToolModel.findNeedingSync({ limit: 100 }), returned: length },
  'findRetryable()': { run: () => ToolModel.findRetryable(), returned: length },
  'getSyncStats()': { run: () => ToolModel.getSyncStats(), returned: () => 0 },
};

const isQueue = (name: QueryName): name is QueueName => (QUEUE_NAMES as readonly string[]).includes(name);

const BUILD_CHUNK = 2_000;

export type Plain = Record<string, unknown>;

/**
 * Tools `from` to `from + count` of the dataset's endless sequence, in a mix of sync states, as
 * stored documents. The model builds each tool of the dataset once (kept in `built`); copies
 * differ only in `_id`, `id` and `url`, which feed no hash.
 */
export async function mixedTools(dataset: Dataset, built: Map<number, Plain>, from: number, count: number, now: Date): Promise<Plain[]> {
  const docs: Plain[] = [];
  for (const [offset, tool] of toolsAt(dataset, from, count).entries()) {
    const index = from + offset;
    const key = index % dataset.tools.length;
    let base = built.get(key);
    if (base === undefined) {
      const doc = new ToolModel(tool);
      await doc.validate();
      base = doc.toObject<Plain>();
      built.set(key, base);
    }
    const plain = copyOf(base, { _id: new mongoose.Types.ObjectId(), id: tool.id, url: tool.url });
    applySyncStateMix(plain, index, now);
    docs.push(plain);
  }
  return docs;
}

/** Grows the collection to `count` tools in a mix of sync states. */
async function growTo(dataset: Dataset, built: Map<number, Plain>, from: number, count: number, now: Date): Promise<void> {
  for (let start = from; start < count; start += BUILD_CHUNK) {
    await ToolModel.collection.insertMany(await mixedTools(dataset, built, start, Math.min(BUILD_CHUNK, count - start), now));
  }
}

/** A copy of a built tool whose sync states can be changed without touching the original. */
function copyOf(base: Plain, fields: Plain): Plain {
  const meta = base.syncMetadata as Plain & { collections: Record<string, Plain> };
  const collections = Object.fromEntries(Object.entries(meta.collections).map(([name, state]) => [name, { ...state }]));
  return { ...base, ...fields, syncMetadata: { ...meta, collections } };
}

/** Explain's figures, tried once: an engine without executionStats is not asked again. */
interface ExplainState { supported: boolean | undefined }

/**
 * Samples one query at the current size. A queue's calls are watched for the documents their
 * cursors return; the first call's finds are replayed as explain for what the server examined.
 */
async function measureQuery(
  name: QueryName,
  limits: { minSamples: number; maxSamples: number; budgetMs: number },
  recorder: CursorRecorder,
  explain: ExplainState,
): Promise<{ latency: LatencySummary; reads: QueueReads | undefined }> {
  const query = QUERIES[name];
  let value: unknown;
  const run = async (): Promise<void> => { value = await query.run(); };
  const read: number[] = [];
  const returned: number[] = [];
  let examined: Examined | null = null;
  const hooks: SampleHooks = {
    before: () => { recorder.begin(); },
    after: async () => {
      const reads = recorder.end();
      read.push(documentsIn(reads));
      returned.push(query.returned(value));
      await query.undo?.(value);
      // Once, after the undo: the queue holds again what the call met.
      if (read.length === 1 && explain.supported !== false) {
        examined = await examinedBy(mongoose.connection.getClient(), reads);
        explain.supported = examined !== null;
      }
    },
  };
  const latency = await sampleLatency(run, limits, isQueue(name) ? hooks : {});
  if (!isQueue(name)) return { latency, reads: undefined };
  return {
    latency,
    reads: { returned: median(returned), documentsRead: { median: median(read), max: Math.max(...read) }, examined },
  };
}

const ratio = (to: number | undefined, from: number | undefined): number | null =>
  (to === undefined || from === undefined || from === 0 ? null : round(to / from, 2));

export async function benchQueries(
  dataset: Dataset,
  sizes: number[],
  limits: { minSamples: number; maxSamples: number; budgetMs: number },
  onSize: (tools: number) => void,
): Promise<QueriesResult> {
  await recreateWithToolIndexes(ToolModel.collection);
  const now = new Date();
  const measured: QuerySize[] = [];
  const built = new Map<number, Plain>();
  const recorder = new CursorRecorder(mongoose.connection.getClient());
  const explain: ExplainState = { supported: undefined };
  let count = 0;
  try {
    for (const size of sizes) {
      await growTo(dataset, built, count, size, now);
      count = size;
      onSize(size);
      const latency = {} as Record<QueryName, LatencySummary>;
      const reads = {} as Record<QueueName, QueueReads>;
      for (const name of QUERY_NAMES) {
        const figures = await measureQuery(name, limits, recorder, explain);
        latency[name] = figures.latency;
        if (isQueue(name) && figures.reads !== undefined) reads[name] = figures.reads;
      }
      measured.push({ tools: size, latency, reads });
    }
  } finally {
    recorder.detach();
  }
  await ToolModel.collection.drop();
  const growth = measured.slice(1).map((size, index): QueryGrowth => {
    const previous = measured[index] ?? size;
    const factor = {} as Record<QueryName, number>;
    for (const name of QUERY_NAMES) factor[name] = round(size.latency[name].medianMs / previous.latency[name].medianMs, 2);
    const documentsRead = {} as Record<QueueName, number | null>;
    const docsExamined = {} as Record<QueueName, number | null>;
    for (const name of QUEUE_NAMES) {
      documentsRead[name] = ratio(size.reads[name].documentsRead.median, previous.reads[name].documentsRead.median);
      docsExamined[name] = ratio(size.reads[name].examined?.totalDocsExamined, previous.reads[name].examined?.totalDocsExamined);
    }
    return { from: previous.tools, to: size.tools, factor, documentsRead, docsExamined };
  });
  const examinedNote = explain.supported === true
    ? 'explain (executionStats) of every find one call sent (the first sample);'
      + ' a cursor the call closed early replayed with a limit of what it returned'
    : "not given: the engine's explain has no executionStats";
  return { sizes: measured, growth, examinedBy: examinedNote };
}
