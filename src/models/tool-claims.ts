import { type DocumentType, type ReturnModelType } from '@typegoose/typegoose';
import { type Types } from 'mongoose';
import { planClaim, planExtendClaims, planReleaseClaims, type ClaimedCollection } from '../sync/plans/claim.js';
import { type StoredTool } from '../sync/stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT } from '../sync/sync-state.js';
import { type SyncCollectionName } from '../sync/vocabulary.js';
import { toolCollection } from './change-tracking/settle-after-write.js';
import { applyPlan, isUnsendable, withSetApplied } from './conditional-write.js';
import { SyncArgumentError } from './errors.js';
import { mergeQueues, timeAt, type Queue } from './queue-merge.js';
import { collectionName, collectionNames, dateArgument, integerInRange, toolObjectId } from './sync-arguments.js';
import { type Tool } from './tool.js';
import { releaseDeletionClaims } from './tombstones.js';
import {
  dueQueue, LEGACY, limitArgument, NEEDS_SYNC, QUEUE_BATCH, settledForWorker, UNSETTLED, WITHOUT_RETRY_TIME,
} from './tool-queries.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export type { ClaimedCollection };

/** A tool and the collections of it a worker now holds. */
export interface ClaimedTool {
  tool: DocumentType<Tool>;
  collections: ClaimedCollection[];
}

export const DEFAULT_LEASE_MS = 60_000;
const MAX_LEASE_MS = 24 * 60 * 60 * 1000;

/** A worker's name: it is stored in the tools it claims and compared, never read as an operator. */
export function workerIdArgument(value: unknown): string {
  if (typeof value === 'string' && value.trim() !== '' && value.length <= 200) return value;
  throw new SyncArgumentError('workerId', value, 'a non-empty string of at most 200 characters naming the worker');
}

/** The optional `workerId` of a mark's options (options a JavaScript caller may pass as anything): checked, or undefined. */
export function workerIdOption(options: unknown): string | undefined {
  const given = typeof options === 'object' && options !== null ? (options as { workerId?: unknown }).workerId : undefined;
  return given === undefined ? undefined : workerIdArgument(given);
}

export const leaseArgument = (value: unknown): number => integerInRange(value ?? DEFAULT_LEASE_MS, 'leaseMs', 1000, MAX_LEASE_MS);

/**
 * One collection's waiting work (`pending` or `stale`, not held by a live lease), the oldest
 * metadata change first, through `sync_<collection>_waiting_idx`. A claim moves a tool's metadata
 * time to now, so tools in flight are behind the ones waiting, not in the way.
 */
export function waitingQueueQuery(name: SyncCollectionName, now: Date): { filter: Record<string, unknown>; sort: Record<string, 1> } {
  const claimedUntil = collectionPath(name, 'claimedUntil');
  const filter = { [collectionPath(name, 'status')]: { $in: NEEDS_SYNC }, $or: [{ [claimedUntil]: null }, { [claimedUntil]: { $lte: now } }] };
  // One key: the index has no `_id` after it, and a tie-break on `_id` would make the server sort the whole queue.
  return { filter, sort: { [METADATA_UPDATED_AT]: 1 } };
}

function waitingQueue(model: ToolModelType, name: SyncCollectionName, now: Date, batchSize: number): Queue {
  const { filter, sort } = waitingQueueQuery(name, now);
  return { cursor: toolCollection(model).find<StoredTool>(filter, { sort, batchSize }), key: (tool) => timeAt(tool, METADATA_UPDATED_AT) };
}

export interface ClaimOptions {
  workerId?: unknown;
  limit?: unknown;
  leaseMs?: unknown;
  collections?: unknown;
  maxRetries?: unknown;
  now?: unknown;
}

/**
 * Claims up to `limit` tool × collection pairs that need work — `pending` or `stale`, or `failed`
 * and due for retry — oldest first (waiting ones by their metadata time, failed ones by their
 * retry time), each with a lease of `leaseMs`. Each tool's claim is one conditional write on its
 * state as read, so two workers never hold the same pair: one whose write loses reads the tool
 * again and claims only what is still free. Legacy and unsettled tools are settled first; a tool
 * whose metadata cannot be used is quarantined and skipped, one the server cannot write is skipped.
 */
export async function claimSyncWork(model: ToolModelType, options: ClaimOptions = {}): Promise<ClaimedTool[]> {
  const workerId = workerIdArgument(options.workerId);
  const limit = limitArgument(options.limit, 10);
  const leaseMs = leaseArgument(options.leaseMs);
  const collections = collectionNames(options.collections);
  const maxRetries = integerInRange(options.maxRetries ?? 5, 'maxRetries', 1, 1000);
  const fixedNow = options.now === undefined ? undefined : dateArgument(options.now, 'now');
  const clock = (): Date => fixedNow ?? new Date();
  const collection = toolCollection(model);

  // Tools not settled yet are not in the queues' terms: settle a limit's worth, so they join them.
  const unsettled = await collection.find<StoredTool>({ $or: [LEGACY, UNSETTLED, ...WITHOUT_RETRY_TIME] }, { limit }).toArray();
  if (unsettled.length > 0) await settledForWorker(model, unsettled);

  const now = clock();
  const batchSize = Math.min(limit, QUEUE_BATCH);
  const queues = collections.flatMap((name) => [waitingQueue(model, name, now, batchSize), dueQueue(collection, name, { now, maxRetries, batchSize })]);
  const claimed: ClaimedTool[] = [];
  let pairs = 0;
  for await (const read of mergeQueues(queues)) {
    let basis = read;
    let set: Record<string, unknown> = {};
    const request = { workerId, leaseMs, collections, maxRetries, limit: limit - pairs };
    let got: ClaimedCollection[];
    try {
      got = await applyPlan(collection, read._id, (tool, at) => {
        const decision = planClaim(tool, request, at);
        basis = tool;
        set = decision.kind === 'done' && decision.write !== null ? (decision.write.update.$set as Record<string, unknown>) : {};
        return decision;
      }, { what: `claimSyncWork(${String(read._id)})`, first: read, now: clock });
    } catch (error) {
      // A tool the driver cannot write (its settle is too large to send) is not a reason to stop.
      if (isUnsendable(error)) continue;
      throw error;
    }
    if (got.length === 0) continue;
    claimed.push({ tool: model.hydrate(withSetApplied(basis, set)), collections: got });
    pairs += got.length;
    if (pairs >= limit) break;
  }
  return claimed;
}

/** `[{ toolId, collection }]` as given, checked. */
function claimList(value: unknown): Map<string, { id: Types.ObjectId; collections: SyncCollectionName[] }> {
  if (!Array.isArray(value)) throw new SyncArgumentError('claims', value, 'an array of { toolId, collection }');
  const byTool = new Map<string, { id: Types.ObjectId; collections: SyncCollectionName[] }>();
  value.forEach((item: unknown, index) => {
    const entry = (typeof item === 'object' && item !== null ? item : {}) as { toolId?: unknown; collection?: unknown };
    const id = toolObjectId(entry.toolId, `claims[${index}].toolId`);
    const name = collectionName(entry.collection, `claims[${index}].collection`);
    const known = byTool.get(id.toHexString()) ?? { id, collections: [] };
    if (!known.collections.includes(name)) known.collections.push(name);
    byTool.set(id.toHexString(), known);
  });
  return byTool;
}

/**
 * Renews the leases `workerId` still holds among `claims` by `leaseMs` from now (`now`: the same
 * clock its claims were made with); returns those renewed. One that is missing was lost (the lease
 * ended and another worker claimed it, or the tool was deleted): its work belongs to someone else now.
 */
export async function extendClaims(
  model: ToolModelType,
  workerIdArg: unknown,
  claims: unknown,
  options: { leaseMs?: unknown; now?: unknown } = {},
): Promise<{ toolId: Types.ObjectId; collection: SyncCollectionName }[]> {
  const workerId = workerIdArgument(workerIdArg);
  const leaseMs = leaseArgument(options.leaseMs);
  const fixedNow = options.now === undefined ? undefined : dateArgument(options.now, 'now');
  const renewed: { toolId: Types.ObjectId; collection: SyncCollectionName }[] = [];
  for (const { id, collections } of claimList(claims).values()) {
    const tool = await toolCollection(model).findOne<StoredTool>({ _id: id });
    if (tool === null) continue;
    const names = await applyPlan(toolCollection(model), id, (stored, now) => planExtendClaims(stored, { workerId, leaseMs, collections }, now), {
      what: `extendClaims(${id.toHexString()})`, first: tool, ...(fixedNow === undefined ? {} : { now: () => fixedNow }),
    });
    renewed.push(...names.map((collection) => ({ toolId: id, collection })));
  }
  return renewed;
}

/**
 * Gives back the claims of `workerId` (a worker shutting down, or one replaced after a crash):
 * the pairs of `claims` (`[{ toolId, collection }]`) if given, else every collection of the tools
 * of `toolIds` if given, else of every tool (a read of the whole collection: a worker knows what it
 * holds and passes that). Returns how many pairs it released. A worker passes only pairs it did not
 * write: the claim of a written pair is the record that a point may exist (see collectionsWithVectors).
 */
export async function releaseClaims(model: ToolModelType, workerIdArg: unknown, options: { toolIds?: unknown; claims?: unknown } = {}): Promise<number> {
  const workerId = workerIdArgument(workerIdArg);
  const pairs = options.claims === undefined ? undefined : claimList(options.claims);
  const ids = pairs !== undefined ? [...pairs.values()].map(({ id }) => id) : options.toolIds === undefined ? undefined : Array.isArray(options.toolIds)
    ? options.toolIds.map((id, index) => toolObjectId(id, `toolIds[${index}]`))
    : (() => { throw new SyncArgumentError('toolIds', options.toolIds, 'an array of tool _ids'); })();
  const heldBy = { $or: collectionNames(undefined).map((name) => ({ [collectionPath(name, 'claimedBy')]: workerId })) };
  const filter = ids === undefined ? heldBy : { _id: { $in: ids }, ...heldBy };
  // Removals of deleted tools' points it held, too (few: a worker's in-flight work).
  let released = pairs === undefined ? await releaseDeletionClaims(model, workerId, ids) : 0;
  for (const tool of await toolCollection(model).find<StoredTool>(filter).toArray()) {
    const collections = pairs?.get(String(tool._id))?.collections ?? collectionNames(undefined);
    released += await applyPlan(toolCollection(model), tool._id, (stored, now) => planReleaseClaims(stored, { workerId, collections }, now), {
      what: `releaseClaims(${String(tool._id)})`, first: tool,
    });
  }
  return released;
}
