import { type ToolModelType } from '../../models/create-tool-model.js';
import { type ITool } from '../../models/types.js';
import { type SyncStage } from '../../sync/error-classification.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName } from '../../sync/vocabulary.js';
import { backfill } from '../../migrations/backfill.js';
import { formatSummary } from '../progress.js';
import { generateTools, seededRandom } from '../seed-data.js';
import { formatStatus, type StatusFormat } from '../status-report.js';
import { INVALID_MARKER, SimulatedSyncTarget } from './simulated-target.js';

type Print = (text: string) => void;

/** What the demo runs on: where it prints, the Tool model of its collection, and how tables look. */
export interface DemoContext {
  print: Print;
  model: ToolModelType;
  format: StatusFormat;
}

async function dashboard({ print, model, format }: DemoContext, title: string): Promise<void> {
  print(`\n== ${title}`);
  print(formatStatus(await model.getSyncStats(), format));
}

/** One collection through the simulated pipeline, reported with the real transitions. */
async function syncCollection(model: ToolModelType, target: SimulatedSyncTarget, tool: ITool, collection: SyncCollectionName): Promise<'synced' | 'failed' | 'changed'> {
  const { contentHash } = tool.syncMetadata.collections[collection];
  let stage: SyncStage = 'validation';
  try {
    const text = SimulatedSyncTarget.textFor(tool, collection);
    target.validate(text);
    stage = 'embedding';
    const vector = await target.embed(text);
    stage = 'qdrant';
    await target.upsert(collection, tool.id, vector);
    const result = await model.markCollectionSynced(tool._id, collection, { contentHash });
    return result.synced ? 'synced' : 'changed';
  } catch (error) {
    await model.markCollectionFailed(tool._id, collection, error, stage);
    return 'failed';
  }
}

/**
 * The worker loop, against the simulated target: what needs sync, then what may be retried. Time
 * runs on a simulated clock that jumps past each backoff, so the demo does not wait for real.
 */
async function runWorker({ print, model }: DemoContext, target: SimulatedSyncTarget, clock: { now: Date }): Promise<void> {
  for (let pass = 1; pass <= 25; pass += 1) {
    const counts = { synced: 0, failed: 0, changed: 0 };
    const work: [ITool, SyncCollectionName][] = [];
    for (const tool of await model.findNeedingSync({ limit: 1000 })) {
      for (const name of SYNC_COLLECTION_NAMES) {
        const { status } = tool.syncMetadata.collections[name];
        if (status === 'pending' || status === 'stale') work.push([tool, name]);
      }
    }
    for (const { tool, collections } of await model.findRetryable({ now: clock.now, limit: 1000 })) {
      for (const name of collections) work.push([tool, name]);
    }
    if (work.length === 0) {
      print(`worker: nothing left to do after ${pass - 1} passes`);
      return;
    }
    for (const [tool, name] of work) counts[await syncCollection(model, target, tool, name)] += 1;
    print(`worker pass ${pass}: ${work.length} collections tried: ${counts.synced} synced, ${counts.failed} failed, ${counts.changed} changed meanwhile`);
    clock.now = new Date(clock.now.getTime() + 6 * 60 * 60 * 1000);
  }
}

/** Legacy documents as a production collection has them before this package: no sync metadata. */
function legacyTools(count: number, random: () => number): Record<string, unknown>[] {
  return generateTools(count, random, 'legacy-').map((tool) => ({ ...tool }));
}

/** The main job, on the database it is given: every phase of a tool's sync life, with the dashboard after each. */
export async function runDemo(context: DemoContext): Promise<void> {
  const { print, model } = context;
  const random = seededRandom(20261124);
  const target = new SimulatedSyncTarget(random, { embeddingTimeout: 0.08, rateLimit: 0.06, qdrantOutage: 0.03 });
  const clock = { now: new Date() };
  print('The embedding API and Qdrant below are a SIMULATION (see SimulatedSyncTarget): no network calls are made;');
  print('they fail on purpose with timeouts, rate limits and Qdrant outages so that the real transitions are exercised.');

  const seeded = generateTools(40, random).map((input) => new model(input));
  seeded[0]?.set('description', `${seeded[0].description}${INVALID_MARKER}`);
  await model.insertMany(seeded);
  await dashboard(context, 'phase 1: 40 tools created with new ToolModel() (one carries text the embedder refuses)');

  const legacy = legacyTools(15, random);
  await model.collection.insertMany(legacy);
  const partial = legacyTools(5, random).map((tool, i) => ({
    ...tool,
    id: `partial-${i + 1}`,
    syncMetadata: {
      overallStatus: 'pending',
      collections: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, { status: 'pending', retryCount: 0, vectorVersion: 0 }])),
      lastModifiedFields: [],
      createdAt: new Date(),
      updatedAt: new Date(),
    },
  }));
  await model.collection.insertMany(partial);
  await dashboard(context, 'phase 2: 15 legacy tools without metadata and 5 with the spec snippet\'s partial metadata inserted raw');

  print('\n== phase 3: tool-sync backfill');
  print(formatSummary(await backfill(model, { batchSize: 10, dryRun: false })));
  await dashboard(context, 'after the backfill');

  print('\n== phase 4: the sync worker (SIMULATED embedder and Qdrant)');
  await runWorker(context, target, clock);
  await dashboard(context, 'after the worker');

  const edited = await model.find({ syncMetadata: { $exists: true } }).sort({ id: 1 }).limit(6);
  for (const [i, tool] of edited.entries()) {
    if (i % 2 === 0) await model.updateOne({ _id: tool._id }, { $push: { useCases: 'onboard a new team' } });
    else {
      tool.name = `${tool.name} Pro`;
      await tool.save();
    }
  }
  await dashboard(context, 'phase 5: 6 tools edited (3 use cases through updateOne, 3 renamed through save)');

  print('\n== phase 6: the sync worker again');
  await runWorker(context, target, clock);
  await dashboard(context, 'final: every recoverable tool is synced; the one with refused text waits for an edit (VALIDATION_ERROR)');
}
