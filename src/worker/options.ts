import { randomBytes } from 'node:crypto';
import { type Types } from 'mongoose';
import { hostname } from 'node:os';
import { type ToolModelType } from '../models/create-tool-model.js';
import { SyncArgumentError } from '../models/errors.js';
import { collectionNames, embeddingModelArgument, integerInRange } from '../models/sync-arguments.js';
import { leaseArgument, workerIdArgument } from '../models/tool-claims.js';
import { type ITool } from '../models/types.js';
import { type SyncCollectionName } from '../sync/vocabulary.js';
import { type SyncWorkerEvent } from './events.js';
import { type PausePolicy } from './pause.js';

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

export interface SyncWorkerOptions<V = number[]> {
  /** The Tool model to work on: `ToolModel`, or `createToolModel(connection)`. */
  model: ToolModelType;
  /** Your embedding API: the vector of this tool's text for `collection`. */
  embed: (tool: ITool, collection: SyncCollectionName, context: SyncCallContext) => Promise<V>;
  /** Your vector store (Qdrant): stores the vector as this tool's point in `collection`. */
  upsert: (tool: ITool, collection: SyncCollectionName, vector: V, context: SyncCallContext) => Promise<unknown>;
  /**
   * Your vector store again: removes a deleted tool's point (`deleted.pointId`) from `collection`.
   * Resolves once the point is gone (also when there was none).
   */
  remove: (deleted: DeletedTool, collection: SyncCollectionName, context: Pick<SyncCallContext, 'signal' | 'workerId'>) => Promise<unknown>;
  /**
   * The embedding model `embed` uses (e.g. `text-embedding-3-small`): recorded with each vector, so
   * that `flagEmbeddingModelChange` finds the vectors another model made.
   */
  embeddingModel: string;
  /** The name its claims carry (default `hostname:pid:random`); unique per running worker. */
  workerId?: string;
  /** At most this many tool × collection pairs in work at once (default 4). */
  concurrency?: number;
  /** How long a claim holds before another worker may take it over (default 60,000 ms); renewed every third of it. */
  leaseMs?: number;
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
}

/** The options, checked, with their defaults. */
export interface WorkerSettings<V> {
  model: ToolModelType;
  embed: SyncWorkerOptions<V>['embed'];
  upsert: SyncWorkerOptions<V>['upsert'];
  remove: SyncWorkerOptions<V>['remove'];
  embeddingModel: string;
  workerId: string;
  concurrency: number;
  leaseMs: number;
  signal: AbortSignal | undefined;
  onEvent: ((event: SyncWorkerEvent) => unknown) | undefined;
  collections: SyncCollectionName[];
  maxRetries: number;
  pollIntervalMs: number;
  stopWhenIdle: boolean;
  clock: (() => Date) | undefined;
  pause: PausePolicy;
}

const OPTION_NAMES = new Set([
  'model', 'embed', 'upsert', 'remove', 'embeddingModel', 'workerId', 'concurrency', 'leaseMs', 'signal', 'onEvent', 'collections',
  'maxRetries', 'pollIntervalMs', 'stopWhenIdle', 'clock', 'pauseBaseMs', 'pauseMaxMs',
]);
const HOUR_MS = 60 * 60 * 1000;
const MODEL_STATICS = ['claimSyncWork', 'markBatch', 'extendClaims', 'releaseClaims'] as const;

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

function requiredFunction(value: unknown, name: string, expected: string): AnyFunction {
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

/** Every option checked, before anything is read or written: a bad one is a SyncArgumentError naming it. */
export function workerSettings<V>(options: SyncWorkerOptions<V>): WorkerSettings<V> {
  if (typeof options !== 'object' || (options as unknown) === null) throw new SyncArgumentError('options', options, 'an object');
  const given = options as unknown as Record<string, unknown>;
  // A misspelt option would otherwise be a default taken silently.
  const stray = Object.keys(given).find((key) => !OPTION_NAMES.has(key));
  if (stray !== undefined) throw new SyncArgumentError(stray, given[stray], `no such option (known: ${[...OPTION_NAMES].join(', ')})`);
  const embed = requiredFunction(given.embed, 'embed', 'a function (tool, collection, { signal }) returning the vector');
  const upsert = requiredFunction(given.upsert, 'upsert', 'a function (tool, collection, vector, { signal }) storing it');
  const remove = requiredFunction(given.remove, 'remove', "a function (deleted, collection, { signal }) removing a deleted tool's point");
  if (given.signal !== undefined && !(given.signal instanceof AbortSignal)) {
    throw new SyncArgumentError('signal', given.signal, 'an AbortSignal');
  }
  if (given.stopWhenIdle !== undefined && typeof given.stopWhenIdle !== 'boolean') {
    throw new SyncArgumentError('stopWhenIdle', given.stopWhenIdle, 'true or false');
  }
  return {
    model: modelArgument(given.model),
    embed: embed as SyncWorkerOptions<V>['embed'],
    upsert: upsert as SyncWorkerOptions<V>['upsert'],
    remove: remove as SyncWorkerOptions<V>['remove'],
    embeddingModel: embeddingModelArgument(given.embeddingModel),
    workerId: given.workerId === undefined ? defaultWorkerId() : workerIdArgument(given.workerId),
    concurrency: integerInRange(given.concurrency ?? 4, 'concurrency', 1, 1000),
    leaseMs: leaseArgument(given.leaseMs),
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
  };
}
