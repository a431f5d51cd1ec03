/**
 * 4. The sync worker's and the dashboard's queries on collections of growing size, holding a
 * realistic mix of sync states.
 */
import mongoose from 'mongoose';
import { ToolModel } from '../src/models/tool.js';
import { recreateWithToolIndexes } from './collections.js';
import { applySyncStateMix, toolsAt, type Dataset } from './dataset.js';
import { round, sampleLatency, type LatencySummary } from './measure.js';

export const QUERY_NAMES = ['findNeedingSync({ limit: 100 })', 'findRetryable()', 'getSyncStats()'] as const;
export type QueryName = (typeof QUERY_NAMES)[number];

export interface QuerySize {
  tools: number;
  latency: Record<QueryName, LatencySummary>;
}

export interface QueriesResult {
  sizes: QuerySize[];
  /** Median latency at each size over that at the size before it. */
  growth: { from: number; to: number; factor: Record<QueryName, number> }[];
}

const BUILD_CHUNK = 2_000;

const QUERIES: Record<QueryName, () => Promise<unknown>> = {
  'findNeedingSync({ limit: 100 })': () => ToolModel.findNeedingSync({ limit: 100 }),
  'findRetryable()': () => ToolModel.findRetryable(),
  'getSyncStats()': () => ToolModel.getSyncStats(),
};

type Plain = Record<string, unknown>;

/**
 * Grows the collection to `count` tools in a mix of sync states. The model builds each tool of
 * the dataset once; copies differ only in `_id`, `id` and `url`, which feed no hash.
 */
async function growTo(dataset: Dataset, built: Map<number, Plain>, from: number, count: number, now: Date): Promise<void> {
  for (let start = from; start < count; start += BUILD_CHUNK) {
    const docs: Plain[] = [];
    for (const [offset, tool] of toolsAt(dataset, start, Math.min(BUILD_CHUNK, count - start)).entries()) {
      const index = start + offset;
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
    await ToolModel.collection.insertMany(docs);
  }
}

/** A copy of a built tool whose sync states can be changed without touching the original. */
function copyOf(base: Plain, fields: Plain): Plain {
  const meta = base.syncMetadata as Plain & { collections: Record<string, Plain> };
  const collections = Object.fromEntries(Object.entries(meta.collections).map(([name, state]) => [name, { ...state }]));
  return { ...base, ...fields, syncMetadata: { ...meta, collections } };
}

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
  let count = 0;
  for (const size of sizes) {
    await growTo(dataset, built, count, size, now);
    count = size;
    onSize(size);
    const latency = {} as Record<QueryName, LatencySummary>;
    for (const name of QUERY_NAMES) latency[name] = await sampleLatency(QUERIES[name], limits);
    measured.push({ tools: size, latency });
  }
  await ToolModel.collection.drop();
  const growth = measured.slice(1).map((size, index) => {
    const previous = measured[index] ?? size;
    const factor = {} as Record<QueryName, number>;
    for (const name of QUERY_NAMES) factor[name] = round(size.latency[name].medianMs / previous.latency[name].medianMs, 2);
    return { from: previous.tools, to: size.tools, factor };
  });
  return { sizes: measured, growth };
}
