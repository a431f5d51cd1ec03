import { type ToolModelType } from '../../models/create-tool-model.js';
import { pointIdOf } from '../../models/point-id.js';
import { engineFromBuildInfo } from '../../db/engine.js';
import { SYNC_COLLECTION_NAMES } from '../../sync/vocabulary.js';
import { runSyncWorker } from '../../worker/run-sync-worker.js';
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
  /** Only the phase headings and the final state (default false). */
  quiet?: boolean;
}

/** What a phase prints: its heading always; its details (tables, worker rounds) unless quiet. */
interface Output {
  heading: Print;
  detail: Print;
}

function output({ print, quiet }: DemoContext): Output {
  return { heading: (title) => { print(`\n== ${title}`); }, detail: quiet === true ? () => undefined : print };
}

async function dashboard(context: DemoContext, title: string, options: { final?: boolean } = {}): Promise<void> {
  const { heading, detail } = output(context);
  heading(title);
  const table = formatStatus(await context.model.getSyncStats({ full: true }), context.format);
  if (options.final === true) context.print(table);
  else detail(table);
}

/** A line at least every this often while workers run: no phase is silent for longer. */
const HEARTBEAT_MS = 4_000;

const WORKER_IDS = ['worker-a', 'worker-b', 'worker-c'];
const SIX_HOURS_MS = 6 * 60 * 60 * 1000;

/**
 * Whether the server applies concurrent updates of one document atomically. FerretDB 1.x does
 * not (an update is a read, a change in memory and a write): concurrent ones overwrite each other.
 */
async function updatesAtomic(model: ToolModelType): Promise<{ atomic: boolean; engine: string }> {
  try {
    const engine = engineFromBuildInfo(await model.db.db?.admin().command({ buildInfo: 1 }));
    const ferretDbV1 = engine.name === 'FerretDB' && /^v?1\./.test(engine.version);
    return { atomic: !ferretDbV1, engine: `${engine.name} ${engine.version}` };
  } catch {
    // buildInfo only chooses how the workers share the server; one that refuses it is taken as MongoDB.
    return { atomic: true, engine: 'the server' };
  }
}

/** The model, with the statics the workers call taking turns (one at a time, in call order). */
function takingTurns(model: ToolModelType): ToolModelType {
  const serialized = new Set([
    'claimSyncWork', 'markCollectionSynced', 'markCollectionFailed', 'extendClaims', 'releaseClaims',
    'claimVectorDeletions', 'markVectorDeleted', 'markVectorDeleteFailed',
  ]);
  let last: Promise<unknown> = Promise.resolve();
  return new Proxy(model, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof key !== 'string' || !serialized.has(key) || typeof value !== 'function') return value;
      return (...args: unknown[]): Promise<unknown> => {
        const turn = last.then(() => Reflect.apply(value, receiver, args) as unknown);
        last = turn.catch(() => undefined);
        return turn;
      };
    },
  });
}

/**
 * Three runSyncWorkers at once against the simulated embedder and vector store, until none finds
 * work. Each round ends when all three are idle; failed collections wait for their backoff, so the
 * next round's clock (the workers' `clock`, for their claims) is past it instead of the demo waiting
 * for real. While a round runs, a line every few seconds says how far it is.
 */
async function runWorkers(context: DemoContext, target: SimulatedSyncTarget, embeddingModel: string = SimulatedSyncTarget.MODEL): Promise<void> {
  const { model } = context;
  const { detail } = output(context);
  const { atomic, engine } = await updatesAtomic(model);
  if (!atomic) {
    detail(`(${engine} does not apply concurrent updates of one document atomically: the workers' database calls`);
    detail(' take turns here; their embeddings and upserts still overlap)');
  }
  const workerModel = atomic ? model : takingTurns(model);
  const startedAt = Date.now();
  for (let round = 1; round <= 25; round += 1) {
    // Each round six hours (and a minute) later than the last, in the workers' eyes: past every backoff.
    const offsetMs = (round - 1) * (SIX_HOURS_MS + 60_000);
    const done = { synced: 0, failed: 0, removed: 0 };
    const heartbeat = setInterval(() => {
      const seconds = Math.round((Date.now() - startedAt) / 1000);
      detail(`  … round ${round}: ${done.synced} synced, ${done.failed} failed, ${done.removed} points removed so far (${seconds} s)`);
    }, HEARTBEAT_MS);
    let summaries;
    try {
      summaries = await Promise.all(WORKER_IDS.map((workerId) => runSyncWorker({
        model: workerModel,
        workerId,
        // Batches of 16 pairs, four requests in flight: each worker holds 64 pairs, so it claims
        // rarely (a claim is several queries), and marks each batch in one bulk.
        batchSize: 16,
        concurrency: 4,
        stopWhenIdle: true,
        pollIntervalMs: 1_000,
        // The simulation fails often on purpose: more retries than the default (5) keep every
        // recoverable tool recoverable.
        maxRetries: 10,
        // Real pauses after a rate limit or outage, but short: the simulation's services recover at once.
        pauseBaseMs: 5,
        pauseMaxMs: 20,
        clock: () => new Date(Date.now() + offsetMs),
        embeddingModel,
        embedBatch: (items) => target.embedBatch(items.map(({ text }) => text)),
        // Points keyed by pointIdOf(tool): the _id never changes (the business id may).
        upsertBatch: (collection, items) => target.upsertBatch(collection, items.map(({ pointId, vector }) => ({ id: pointId, vector }))),
        removeBatch: (collection, deleted) => target.removeBatch(collection, deleted.map(({ pointId }) => pointId)),
        onEvent: (event) => {
          if (event.type === 'synced') done.synced += 1;
          else if (event.type === 'failed' || event.type === 'remove-failed') done.failed += 1;
          else if (event.type === 'removed') done.removed += 1;
        },
      })));
    } finally {
      clearInterval(heartbeat);
    }
    // Removals of deleted tools' points are work too: a round that only removed points was not idle.
    if (summaries.every((summary) => summary.claimed + summary.removed + summary.removeFailed === 0)) {
      const rounds = round - 1;
      detail(`workers: done, nothing left to do after ${rounds} round${rounds === 1 ? '' : 's'} of work`);
      return;
    }
    const pauses = summaries.reduce((sum, summary) => sum + summary.pauses, 0);
    detail(`workers round ${round} (${pauses} pauses after rate limits and outages):`);
    for (const { workerId, synced, failed, contentChanged, removed, removeFailed } of summaries) {
      const removals = removed + removeFailed > 0 ? `, ${removed} deleted tools' points removed, ${removeFailed} removals failed` : '';
      detail(`  ${workerId}: ${synced} synced, ${failed} failed, ${contentChanged} changed meanwhile${removals}`);
    }
  }
}

/** Legacy documents as a production collection has them before this package: no sync metadata. */
function legacyTools(count: number, random: () => number): Record<string, unknown>[] {
  return generateTools(count, random, 'legacy-').map((tool) => ({ ...tool }));
}

/** The main job, on the database it is given: every phase of a tool's sync life, with the dashboard after each. */
export async function runDemo(context: DemoContext): Promise<void> {
  const { model } = context;
  const { heading, detail } = output(context);
  const random = seededRandom(20261124);
  const target = new SimulatedSyncTarget(random, { embeddingTimeout: 0.08, rateLimit: 0.06, qdrantOutage: 0.03 });
  detail('The embedding API and Qdrant below are a SIMULATION inside the demo: no network calls are made;');
  detail('they fail on purpose with timeouts, rate limits and outages so that the real transitions are exercised.');

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

  heading('phase 3: tool-sync backfill');
  detail(formatSummary(await backfill(model, { batchSize: 10, dryRun: false })));
  await dashboard(context, 'after the backfill');

  heading('phase 4: three sync workers at once, runSyncWorker (SIMULATED embedder and Qdrant)');
  await runWorkers(context, target);
  await dashboard(context, 'after the workers');

  const edited = await model.find({ syncMetadata: { $exists: true } }).sort({ id: 1 }).limit(6);
  for (const [i, tool] of edited.entries()) {
    if (i % 2 === 0) await model.updateOne({ _id: tool._id }, { $push: { useCases: 'onboard a new team' } });
    else {
      tool.name = `${tool.name} Pro`;
      await tool.save();
    }
  }
  await dashboard(context, 'phase 5: 6 tools edited (3 use cases through updateOne, 3 renamed through save)');

  heading('phase 6: the sync workers again');
  await runWorkers(context, target);
  await dashboard(context, 'after the workers');

  // Three synced tools deleted, three ways: each leaves a tombstone naming the collections holding its points.
  const doomed = await model.find({ 'syncMetadata.overallStatus': 'synced' }).sort({ id: -1 }).limit(3);
  const [first, second, third] = doomed;
  if (first !== undefined) await model.deleteOne({ _id: first._id });
  if (second !== undefined) await model.findByIdAndDelete(second._id);
  if (third !== undefined) await third.deleteOne();
  const pointIds = doomed.map((tool) => pointIdOf(tool));
  const points = (): number => [...target.stored.keys()].filter((key) => pointIds.some((pointId) => key.endsWith(`/${pointId}`))).length;
  await dashboard(context, `phase 7: 3 synced tools deleted (deleteOne, findByIdAndDelete, doc.deleteOne()); ${points()} of their points still in the simulated Qdrant`);
  heading('phase 8: the workers remove the deleted tools\' points');
  await runWorkers(context, target);
  await dashboard(context, `after the workers: ${points()} points of the deleted tools left, no tombstone waiting`);

  // The embedding model changes: every vector the old one made is flagged, then re-embedded gradually.
  const flagged = await model.flagEmbeddingModelChange('usecases', SimulatedSyncTarget.NEXT_MODEL);
  await dashboard(context, `phase 9: the usecases embedding model changes to ${SimulatedSyncTarget.NEXT_MODEL}: flagEmbeddingModelChange flagged ${flagged} vectors stale`);
  heading(`phase 10: the workers re-embed them with ${SimulatedSyncTarget.NEXT_MODEL}`);
  await runWorkers(context, target, SimulatedSyncTarget.NEXT_MODEL);
  await dashboard(context, 'final: every recoverable tool is synced, usecases all by the new model; the one with refused text waits for an edit (VALIDATION_ERROR)', { final: true });
}
