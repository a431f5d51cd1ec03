/**
 * One side of the backfill benchmark in a process of its own, so that its peak RSS is its own:
 * `package` runs this package's backfill, `raw` the specification's one `updateMany`.
 * Prints one JSON line; stops at its time budget (a partial run reports what it did).
 */
import mongoose from 'mongoose';
import { backfill } from '../src/migrations/backfill.js';
import { ToolModel } from '../src/models/tool.js';

export interface BackfillChildArgs {
  uri: string;
  dbName: string;
  side: 'package' | 'raw';
  batchSize: number;
  budgetMs: number;
}

export interface BackfillChildReport {
  processed: number;
  ms: number;
  completed: boolean;
  startRssBytes: number;
  peakRssBytes: number;
}

/** The specification's backfill snippet: constant defaults, no content hashes. */
function specDefaults(now: Date): Record<string, unknown> {
  const pending = { status: 'pending', retryCount: 0, vectorVersion: 0 };
  return {
    overallStatus: 'pending',
    collections: { tools: pending, functionality: pending, usecases: pending, interface: pending },
    lastModifiedFields: [],
    createdAt: now,
    updatedAt: now,
  };
}

const args = JSON.parse(process.argv[2] ?? '{}') as BackfillChildArgs;
await mongoose.connect(args.uri, { dbName: args.dbName, autoIndex: false, autoCreate: false });
const startRssBytes = process.memoryUsage().rss;
const started = performance.now();
let processed = 0;
const report = (completed: boolean): void => {
  const result: BackfillChildReport = {
    processed,
    ms: performance.now() - started,
    completed,
    startRssBytes,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
};

if (args.side === 'package') {
  const budget = setTimeout(() => {
    report(false);
    process.exit(0);
  }, args.budgetMs);
  await backfill(ToolModel, {
    batchSize: args.batchSize,
    dryRun: false,
    progress: { start() { /* the parent knows the total */ }, update(done) { processed = done; }, stop() { /* nothing to draw */ } },
  });
  clearTimeout(budget);
} else {
  const result = await ToolModel.collection.updateMany({ syncMetadata: { $exists: false } }, { $set: { syncMetadata: specDefaults(new Date()) } });
  processed = result.modifiedCount;
}
report(true);
await mongoose.disconnect();
