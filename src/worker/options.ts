import { randomBytes } from 'node:crypto';
import { type Types } from 'mongoose';
import { hostname } from 'node:os';
import { type ToolModelType } from '../models/create-tool-model.js';
import { SyncArgumentError } from '../models/errors.js';
import { collectionNames, embeddingModelArgument, integerInRange } from '../models/sync-arguments.js';
import { leaseArgument, workerIdArgument } from '../models/tool-claims.js';
import { type ITool } from '../models/types.js';
import { type SyncCollectionName } from '../sync/vocabulary.js';
import { type SyncCallStage, type SyncWorkerEvent } from './events.js';
import { leaseMarginMs } from './lease.js';
import { type PausePolicy } from './pause.js';
import { createRateBudget, isRateBudget, type RateBudget, type RateLimits } from './rate-budget.js';
import { embeddingText } from '../sync/embedding-text.js';

/** A deleted tool whose points are to be removed (see claimVectorDeletions). */
export interface DeletedTool {
  toolObjectId: Types.ObjectId;
  /** The key of its points (pointIdOf its `_id`): the point to remove. */
  pointId: string;
  /** Its business `id` when it was deleted, for the record (null if unknown). */
  id: string | null;
  deletedAt: Date;
}

/** What embed and upsert are given besides the tool. */
export interface SyncCallContext {
  /**
   * For `embed`: aborted when the worker is asked to stop or no longer holds the pair; pass it to
   * your HTTP client. For `upsert`: never aborted (a store write the worker gave up on could land
   * after another worker's): give your store client a timeout instead.
   */
  signal: AbortSignal;
  /** The hash of the content being embedded (markCollectionSynced compares it); worth storing in the point's payload. */
  contentHash: string;
  /** The key of the tool's point in every collection: pointIdOf(tool), derived from its `_id` (which never changes). */
  pointId: string;
  workerId: string;
}

/** One pair of a batch to embed: all of one collection. */
export interface EmbedItem {
  tool: ITool;
  collection: SyncCollectionName;
  /** What to embed: `text(tool, collection)`, by default embeddingText (the fields its content hash is made of). */
  text: string;
  /** The hash of that content (markBatch compares it); worth storing in the point's payload. */
  contentHash: string;
  /** The key of the tool's point in every collection: pointIdOf(tool). */
  pointId: string;
}

/** One point of a batch to store. */
export interface UpsertItem<V> {
  tool: ITool;
  vector: V;
  contentHash: string;
  pointId: string;
}

/** What the batch callbacks are given besides their items. */
export interface BatchCallContext {
  /**
   * For `embedBatch` and `removeBatch`: aborted when the worker is asked to stop or holds none of
   * the batch's pairs any more. For `upsertBatch`: never aborted (see SyncCallContext.signal).
   */
  signal: AbortSignal;
  workerId: string;
  collection: SyncCollectionName;
}

export interface SyncWorkerOptions<V = number[]> {
  /** The Tool model to work on: `ToolModel`, or `createToolModel(connection)`. */
  model: ToolModelType;
  /** Your embedding API, one pair at a time: the vector of this tool's text for `collection` (or give `embedBatch`). */
  embed?: (tool: ITool, collection: SyncCollectionName, context: SyncCallContext) => Promise<V>;
  /**
   * Your embedding API, many pairs of one collection in one request: one result per item, in
   * order — its vector, or an Error for that item alone (an input the API refused). Throwing fails
   * the whole batch (a rate limit, an outage; a refused request that names no item is split until
   * the bad input is found). Give this or `embed`.
   */
  embedBatch?: (items: EmbedItem[], context: BatchCallContext) => Promise<(V | Error)[]>;
  /** Your vector store (Qdrant): stores the vector as this tool's point in `collection` (or give `upsertBatch`). */
  upsert?: (tool: ITool, collection: SyncCollectionName, vector: V, context: SyncCallContext) => Promise<unknown>;
  /** Your vector store, many points of one collection in one request; resolves once all are stored. Give this or `upsert`. */
  upsertBatch?: (collection: SyncCollectionName, items: UpsertItem<V>[], context: BatchCallContext) => Promise<unknown>;
  /**
   * Your vector store again: removes a deleted tool's point (`deleted.pointId`) from `collection`.
   * Resolves once the point is gone (also when there was none). Give this or `removeBatch`.
   */
  remove?: (deleted: DeletedTool, collection: SyncCollectionName, context: Pick<SyncCallContext, 'signal' | 'workerId'>) => Promise<unknown>;
  /** Removes many deleted tools' points from `collection` in one request; resolves once they are gone. Give this or `remove`. */
  removeBatch?: (collection: SyncCollectionName, deleted: DeletedTool[], context: BatchCallContext) => Promise<unknown>;
  /** The text `embedBatch` is given for a pair (default embeddingText). Made of the content fields only, or edits may not re-embed it. */
  text?: (tool: ITool, collection: SyncCollectionName) => string;
  /**
   * The embedding model `embed` uses (e.g. `text-embedding-3-small`): recorded with each vector, so
   * that `flagEmbeddingModelChange` finds the vectors another model made.
   */
  embeddingModel: string;
  /** The name its claims carry (default `hostname:pid:random`); unique per running worker. */
  workerId?: string;
  /**
   * Pairs per embedding request, of one collection (default 64 with `embedBatch`; 1, the only
   * value, with `embed`). Also the most points per store request and marks per database bulk.
   */
  batchSize?: number;
  /** At most this many embedding requests in flight (default 4); at most `concurrency × batchSize` pairs in work. */
  concurrency?: number;
  /** How long a claim holds before another worker may take it over (default 60,000 ms); renewed every third of it. */
  leaseMs?: number;
  /**
   * The longest a store write can take to land once sent (default a third of the lease, at most
   * 30,000 ms): a batch is written only while at least this much of its lease is left, so every
   * write lands before the lease ends and before any other worker may claim the pairs. Keep your
   * store client's timeout (and Qdrant's `timeout` parameter) below it.
   */
  maxWriteMs?: number;
  /** Stops the worker: it claims nothing more, aborts its calls, waits for them, and releases what it did not finish. */
  signal?: AbortSignal;
  /** Progress, one event at a time; what it throws is ignored (with a process warning). */
  onEvent?: (event: SyncWorkerEvent) => void;
  /** Only these vector collections (default all four). */
  collections?: SyncCollectionName[];
  /** A failed collection is retried until it has failed this many times (default 5). */
  maxRetries?: number;
  /** How long to wait before asking again when there is no work (default 1,000 ms). */
  pollIntervalMs?: number;
  /** Resolve once a claim finds no work and nothing is in flight (batch jobs, tests); default false. */
  stopWhenIdle?: boolean;
  /**
   * The time claims are made at (default the real time): for a simulation whose clock jumps past
   * backoffs. Marks and renewals use the real time, so keep it for simulations.
   */
  clock?: () => Date;
  /** The first pause of new calls after a rate limit or outage without a retry-after hint (default 1,000 ms). */
  pauseBaseMs?: number;
  /** The longest such pause, also for a retry-after hint (default 60,000 ms). */
  pauseMaxMs?: number;
  /**
   * Client-side limits: the worker paces its requests to stay under them. Each is a plain
   * `{ requestsPerMinute, tokensPerMinute, countTokens }` (this worker's own budget) or a budget
   * from createRateBudget (shared by every worker given it).
   */
  rateLimits?: { embedding?: RateLimits | RateBudget; store?: Pick<RateLimits, 'requestsPerMinute'> | RateBudget };
}

/** One item's outcome from a store call: undefined when done, else its error. */
export type ItemFailure = { error: unknown } | undefined;

/** Times one call of the caller's callback, of `items` pairs (the worker reports it as a `call` event). */
export type CallTimer = <T>(stage: SyncCallStage, collection: SyncCollectionName, items: number, run: () => Promise<T>) => Promise<T>;

/** The caller's callbacks, in batch form: a per-pair callback is a batch of one. Each call of the caller's function is timed with `timed`. */
export interface WorkerCallbacks<V> {
  /** One result per item (a vector or an Error); throws for the whole batch. */
  embed: (items: EmbedItem[], context: BatchCallContext, timed: CallTimer) => Promise<unknown[]>;
  /** One outcome per item; throws for the whole batch. */
  upsert: (collection: SyncCollectionName, items: UpsertItem<V>[], context: BatchCallContext, timed: CallTimer) => Promise<ItemFailure[]>;
  remove: (collection: SyncCollectionName, deleted: DeletedTool[], context: BatchCallContext, timed: CallTimer) => Promise<ItemFailure[]>;
  text: (tool: ITool, collection: SyncCollectionName) => string;
}

/** The options, checked, with their defaults. */
export interface WorkerSettings<V> {
  model: ToolModelType;
  callbacks: WorkerCallbacks<V>;
  embeddingModel: string;
  workerId: string;
  batchSize: number;
  concurrency: number;
  leaseMs: number;
  maxWriteMs: number;
  signal: AbortSignal | undefined;
  onEvent: ((event: SyncWorkerEvent) => unknown) | undefined;
  collections: SyncCollectionName[];
  maxRetries: number;
  pollIntervalMs: number;
  stopWhenIdle: boolean;
  clock: (() => Date) | undefined;
  pause: PausePolicy;
  budgets: { embedding: RateBudget | undefined; store: RateBudget | undefined };
}

const OPTION_NAMES = new Set([
  'model', 'embed', 'embedBatch', 'upsert', 'upsertBatch', 'remove', 'removeBatch', 'text', 'embeddingModel', 'workerId', 'batchSize',
  'concurrency', 'leaseMs', 'maxWriteMs', 'signal', 'onEvent', 'collections', 'maxRetries', 'pollIntervalMs', 'stopWhenIdle', 'clock', 'pauseBaseMs',
  'pauseMaxMs', 'rateLimits',
]);
/**
 * Pairs per embedding request with `embedBatch`. Batching pays while the request's fixed cost
 * dominates: at 100 ms + 0.5 ms an input, 64 inputs cost 1.6 ms each (1 input: 100.5 ms; 256:
 * 0.9 ms), while a batch's failure, retry and lease stay those of a few seconds of work; 64 inputs
 * of a tool's texts (a few hundred tokens each) stay far under providers' limits per request
 * (OpenAI: 2,048 inputs, 300,000 tokens), and a batch's marks are 3 bulks of FerretDB 1.x's 25.
 */
export const DEFAULT_BATCH_SIZE = 64;
export const MAX_BATCH_SIZE = 2048;
const HOUR_MS = 60 * 60 * 1000;
const MODEL_STATICS = ['claimSyncWork', 'markBatch', 'extendClaims', 'releaseClaims', 'claimVectorDeletions', 'markDeletionBatch'] as const;

/** `host:pid:random`: readable in the stored claims, unique per process and run. */
export function defaultWorkerId(): string {
  return `${hostname().slice(0, 100)}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

function isFunction(value: unknown): value is (...args: never[]) => unknown {
  return typeof value === 'function';
}

type AnyFunction = (...args: never[]) => unknown;

function optionalFunction(value: unknown, name: string, expected: string): AnyFunction | undefined {
  if (value === undefined) return undefined;
  if (isFunction(value)) return value;
  throw new SyncArgumentError(name, value, expected);
}

function modelArgument(value: unknown): ToolModelType {
  const statics = value as Partial<Record<(typeof MODEL_STATICS)[number], unknown>> | undefined;
  const isModel = isFunction(value) && statics !== undefined && MODEL_STATICS.every((name) => isFunction(statics[name]));
  if (isModel) return value as unknown as ToolModelType;
  throw new SyncArgumentError('model', value, 'a Tool model (ToolModel, or createToolModel(connection))');
}

function clockArgument(value: unknown): (() => Date) | undefined {
  const clock = optionalFunction(value, 'clock', 'a function returning the current Date');
  if (clock === undefined) return undefined;
  // Asked once now, so a clock that gives no Date is refused before anything is claimed.
  let now: unknown;
  try {
    now = clock();
  } catch (error) {
    throw new SyncArgumentError('clock()', String(error), 'a valid Date, not an error');
  }
  if (now instanceof Date && !Number.isNaN(now.getTime())) return clock as () => Date;
  throw new SyncArgumentError('clock()', now, 'a valid Date');
}

/** One of two callbacks, exactly: the per-pair one or the batch one. */
function oneOf(given: Record<string, unknown>, single: string, batch: string, expected: string): { single?: AnyFunction; batch?: AnyFunction } {
  const one = optionalFunction(given[single], single, expected);
  const many = optionalFunction(given[batch], batch, expected);
  if (one !== undefined && many !== undefined) throw new SyncArgumentError(batch, given[batch], `not both ${single} and ${batch}: one of them`);
  if (one === undefined && many === undefined) throw new SyncArgumentError(single, given[single], `a function (${expected}), or ${batch}`);
  return { ...(one === undefined ? {} : { single: one }), ...(many === undefined ? {} : { batch: many }) };
}

/** Per item: undefined once its call succeeded, else its error (calls of a per-pair callback run side by side). */
async function eachItem<T>(items: T[], call: (item: T) => Promise<unknown>): Promise<ItemFailure[]> {
  return Promise.all(items.map(async (item) => {
    try {
      await call(item);
      return undefined;
    } catch (error) {
      return { error };
    }
  }));
}

/** The callbacks in batch form: a per-pair `embed` embeds a batch of one; per-pair `upsert`/`remove` are called per item. */
function callbacks<V>(given: Record<string, unknown>): WorkerCallbacks<V> {
  const embeds = oneOf(given, 'embed', 'embedBatch', 'the vectors of the pairs given');
  const upserts = oneOf(given, 'upsert', 'upsertBatch', 'storing the vectors given');
  const removes = oneOf(given, 'remove', 'removeBatch', "removing the deleted tools' points");
  const text = (optionalFunction(given.text, 'text', 'a function (tool, collection) => the text to embed') ?? embeddingText) as WorkerCallbacks<V>['text'];
  const embed = embeds.single as SyncWorkerOptions<V>['embed'];
  const upsert = upserts.single as SyncWorkerOptions<V>['upsert'];
  const remove = removes.single as SyncWorkerOptions<V>['remove'];
  return {
    text,
    embed: embed === undefined
      ? async (items, context, timed) => timed('embed', context.collection, items.length, () => (embeds.batch as NonNullable<SyncWorkerOptions<V>['embedBatch']>)(items, context))
      : async (items, { signal, workerId }, timed) => Promise.all(items.map(async ({ tool, collection, contentHash, pointId }) => (
        timed('embed', collection, 1, () => embed(tool, collection, { signal, workerId, contentHash, pointId }))
      ))),
    upsert: upsert === undefined
      ? async (collection, items, context, timed) => {
        await timed('upsert', collection, items.length, () => (upserts.batch as NonNullable<SyncWorkerOptions<V>['upsertBatch']>)(collection, items, context));
        return items.map(() => undefined);
      }
      : async (collection, items, { signal, workerId }, timed) => eachItem(items, ({ tool, vector, contentHash, pointId }) => (
        timed('upsert', collection, 1, () => upsert(tool, collection, vector, { signal, workerId, contentHash, pointId }))
      )),
    remove: remove === undefined
      ? async (collection, deleted, context, timed) => {
        await timed('remove', collection, deleted.length, () => (removes.batch as NonNullable<SyncWorkerOptions<V>['removeBatch']>)(collection, deleted, context));
        return deleted.map(() => undefined);
      }
      : async (collection, deleted, { signal, workerId }, timed) => eachItem(deleted, (one) => timed('remove', collection, 1, () => remove(one, collection, { signal, workerId }))),
  };
}

function budgetArgument(value: unknown, name: string, allowTokens: boolean): RateBudget | undefined {
  if (value === undefined || isRateBudget(value)) return value;
  if (typeof value !== 'object' || value === null) throw new SyncArgumentError(name, value, 'limits { requestsPerMinute, ... } or a budget from createRateBudget');
  const limits = value as RateLimits;
  if (!allowTokens && (limits.tokensPerMinute !== undefined || limits.countTokens !== undefined)) {
    throw new SyncArgumentError(`${name}.tokensPerMinute`, limits.tokensPerMinute ?? 'countTokens', 'nothing: a store is limited by requests per minute');
  }
  return createRateBudget(limits, name);
}

function rateBudgets(value: unknown): WorkerSettings<unknown>['budgets'] {
  if (value === undefined) return { embedding: undefined, store: undefined };
  if (typeof value !== 'object' || value === null) throw new SyncArgumentError('rateLimits', value, 'an object { embedding?, store? }');
  const given = value as Record<string, unknown>;
  const stray = Object.keys(given).find((key) => key !== 'embedding' && key !== 'store');
  if (stray !== undefined) throw new SyncArgumentError(`rateLimits.${stray}`, given[stray], 'no such service (known: embedding, store)');
  return { embedding: budgetArgument(given.embedding, 'rateLimits.embedding', true), store: budgetArgument(given.store, 'rateLimits.store', false) };
}

/** Every option checked, before anything is read or written: a bad one is a SyncArgumentError naming it. */
export function workerSettings<V>(options: SyncWorkerOptions<V>): WorkerSettings<V> {
  if (typeof options !== 'object' || (options as unknown) === null) throw new SyncArgumentError('options', options, 'an object');
  const given = options as unknown as Record<string, unknown>;
  // A misspelt option would otherwise be a default taken silently.
  const stray = Object.keys(given).find((key) => !OPTION_NAMES.has(key));
  if (stray !== undefined) throw new SyncArgumentError(stray, given[stray], `no such option (known: ${[...OPTION_NAMES].join(', ')})`);
  const calls = callbacks<V>(given);
  // One pair per request with `embed`: its requests are its pairs, and `concurrency` counts requests.
  const batchSize = integerInRange(given.batchSize ?? (given.embed === undefined ? DEFAULT_BATCH_SIZE : 1), 'batchSize', 1, MAX_BATCH_SIZE);
  if (given.embed !== undefined && batchSize !== 1) throw new SyncArgumentError('batchSize', batchSize, '1 with embed (one pair per request): give embedBatch to embed batches');
  if (given.signal !== undefined && !(given.signal instanceof AbortSignal)) {
    throw new SyncArgumentError('signal', given.signal, 'an AbortSignal');
  }
  if (given.stopWhenIdle !== undefined && typeof given.stopWhenIdle !== 'boolean') {
    throw new SyncArgumentError('stopWhenIdle', given.stopWhenIdle, 'true or false');
  }
  const leaseMs = leaseArgument(given.leaseMs);
  // A write needs this much lease left; renewed every third, a lease has two thirds (less the margin) at worst.
  const longestWrite = Math.floor((leaseMs * 2) / 3) - leaseMarginMs(leaseMs);
  const maxWriteMs = integerInRange(given.maxWriteMs ?? Math.min(30_000, Math.floor(leaseMs / 3)), `maxWriteMs (with leaseMs ${leaseMs})`, 1, longestWrite);
  return {
    model: modelArgument(given.model),
    callbacks: calls,
    embeddingModel: embeddingModelArgument(given.embeddingModel),
    workerId: given.workerId === undefined ? defaultWorkerId() : workerIdArgument(given.workerId),
    batchSize,
    concurrency: integerInRange(given.concurrency ?? 4, 'concurrency', 1, 1000),
    leaseMs,
    maxWriteMs,
    signal: given.signal,
    onEvent: optionalFunction(given.onEvent, 'onEvent', 'a function (event) => void') as WorkerSettings<V>['onEvent'],
    collections: collectionNames(given.collections),
    maxRetries: integerInRange(given.maxRetries ?? 5, 'maxRetries', 1, 1000),
    pollIntervalMs: integerInRange(given.pollIntervalMs ?? 1_000, 'pollIntervalMs', 1, HOUR_MS),
    stopWhenIdle: given.stopWhenIdle ?? false,
    clock: clockArgument(given.clock),
    pause: {
      baseMs: integerInRange(given.pauseBaseMs ?? 1_000, 'pauseBaseMs', 0, HOUR_MS),
      maxMs: integerInRange(given.pauseMaxMs ?? 60_000, 'pauseMaxMs', 0, 24 * HOUR_MS),
    },
    budgets: rateBudgets(given.rateLimits),
  };
}
