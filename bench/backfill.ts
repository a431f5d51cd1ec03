/**
 * 3. Backfill of legacy documents: `tool-sync backfill`'s engine against the specification's
 * `updateMany` of constant defaults, each in its own process over the same documents.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import mongoose, { type mongo } from 'mongoose';
import { ToolModel } from '../src/models/tool.js';
import { computeContentHashes, type ToolContent } from '../src/sync/content-hash.js';
import { SYNC_COLLECTION_NAMES } from '../src/sync/vocabulary.js';
import type { BackfillChildArgs, BackfillChildReport } from './backfill-child.js';
import { recreateWithToolIndexes } from './collections.js';
import { toolsAt, type Dataset } from './dataset.js';
import { megabytes, perSecond, round } from './measure.js';

export interface BackfillSide {
  processed: number;
  seconds: number;
  docsPerSecond: number;
  /** RSS of the process when it had connected, and its peak during the run. */
  startRssMb: number;
  peakRssMb: number;
  completed: boolean;
}

export interface BackfillResult {
  documents: number;
  batchSize: number;
  package: BackfillSide;
  raw: BackfillSide;
  /** Package time per document over raw time per document (null when the package did none in its budget). */
  ratio: number | null;
  /** Backfilled documents checked against hashes computed here (a sample, read by `_id`). */
  verifiedSample: number;
}

const INSERT_CHUNK = 1_000;
const CHILD = fileURLToPath(new URL('./backfill-child.js', import.meta.url));

/** Inserts `count` legacy documents (no sync metadata) under the model's indexes; returns every 997th `_id` as a sample. */
async function insertLegacy(dataset: Dataset, count: number): Promise<mongo.ObjectId[]> {
  await recreateWithToolIndexes(ToolModel.collection);
  const sample: mongo.ObjectId[] = [];
  for (let from = 0; from < count; from += INSERT_CHUNK) {
    const chunk = toolsAt(dataset, from, Math.min(INSERT_CHUNK, count - from)).map((tool) => ({ _id: new mongoose.Types.ObjectId(), ...tool }));
    await ToolModel.collection.insertMany(chunk);
    chunk.forEach((doc, offset) => { if ((from + offset) % 997 === 0) sample.push(doc._id); });
  }
  return sample;
}

function runChild(args: BackfillChildArgs): Promise<BackfillChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || line === '') reject(new Error(`the ${args.side} backfill process exited with ${String(code)}`));
      else resolve(JSON.parse(line) as BackfillChildReport);
    });
  });
}

function side(report: BackfillChildReport): BackfillSide {
  return {
    processed: report.processed,
    seconds: round(report.ms / 1000, 1),
    docsPerSecond: perSecond(report.processed, report.ms),
    startRssMb: megabytes(report.startRssBytes),
    peakRssMb: megabytes(report.peakRssBytes),
    completed: report.completed,
  };
}

/** The sampled documents the backfill reached carry the hashes of their own content. */
async function verify(sample: mongo.ObjectId[], processed: number, total: number): Promise<number> {
  const reached = sample.slice(0, Math.floor((sample.length * processed) / total));
  for (const _id of reached) {
    const doc = await ToolModel.collection.findOne<ToolContent & { syncMetadata?: { collections?: Record<string, { contentHash?: string }> } }>({ _id });
    if (doc === null) throw new Error(`tool ${_id.toHexString()} vanished during the backfill`);
    const collections = doc.syncMetadata?.collections;
    const expected = computeContentHashes(doc);
    for (const name of SYNC_COLLECTION_NAMES) {
      if (collections?.[name]?.contentHash !== expected[name]) throw new Error(`backfill left tool ${_id.toHexString()} without the right ${name} hash`);
    }
  }
  return reached.length;
}

export async function benchBackfill(
  dataset: Dataset,
  target: { uri: string; dbName: string },
  options: { documents: number; batchSize: number; budgetMs: number },
): Promise<BackfillResult> {
  const sample = await insertLegacy(dataset, options.documents);
  const ours = await runChild({ ...target, side: 'package', batchSize: options.batchSize, budgetMs: options.budgetMs });
  const verifiedSample = await verify(sample, ours.processed, options.documents);
  await insertLegacy(dataset, options.documents);
  const raw = await runChild({ ...target, side: 'raw', batchSize: options.batchSize, budgetMs: options.budgetMs });
  await ToolModel.collection.drop();
  return {
    documents: options.documents,
    batchSize: options.batchSize,
    package: side(ours),
    raw: side(raw),
    ratio: ours.processed === 0 || raw.processed === 0 ? null : round((ours.ms / ours.processed) / (raw.ms / raw.processed), 2),
    verifiedSample,
  };
}
