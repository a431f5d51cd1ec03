import { type DocumentType, type ReturnModelType } from '@typegoose/typegoose';
import { type Types } from 'mongoose';
import { planClaim, planExtendClaims, planReleaseClaims, type ClaimedCollection, type ClaimRequest } from '../sync/plans/claim.js';
import { type StoredTool } from '../sync/stored-tool.js';
import { collectionPath, METADATA_UPDATED_AT } from '../sync/sync-state.js';
import { type SyncCollectionName } from '../sync/vocabulary.js';
import { bulkSizeOf, toolCollection } from './change-tracking/settle-after-write.js';
import { applyPlans, withSetApplied } from './conditional-write.js';
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

function waitingQueue(model: ToolModelType, name: SyncCollectionName, now: Date, reads: { limit: number; batchSize: number }): Queue {
  const { filter, sort } = waitingQueueQuery(name, now);
  return { cursor: toolCollection(model).find<StoredTool>(filter, { sort, ...reads }), key: (tool) => timeAt(tool, METADATA_UPDATED_AT) };
}

/**
 * How a claim reads each queue: at most `limit` tools (each gives at least one pair), in replies
 * of a share of it (a tool waiting in every collection stands in every queue, so each queue gives
 * about `limit / collections` of the tools claimed, and the merge reads one ahead), at least a
 * QUEUE_BATCH: a claim costs one `find` per queue, about as many documents as it claims, and no
 * `getMore` in the common case.
 */
export function queueReads(limit: number, collections: number): { limit: number; batchSize: number } {
  return { limit, batchSize: Math.min(limit, Math.max(QUEUE_BATCH, Math.ceil(limit / collections) + 1)) };
}

/**
 * Claims on `tools` (as read from the queues) sent together: one unordered bulk of conditional
 * writes, each planned by planClaim on the state read; a tool whose write lost is read again and
 * planned again (applyPlans). No more than `request.limit` pairs in all: each tool is planned
 * with what the tools before it left. A tool that cannot be written or keeps changing is skipped.
 */
async function claimTools(model: ToolModelType, tools: StoredTool[], request: ClaimRequest, clock: () => Date): Promise<ClaimedTool[]> {
  const taken = new Map<number, number>();
  const room = (index: number): number => request.limit - [...taken].reduce((sum, [other, count]) => (other === index ? sum : sum + count), 0);
  const outcomes = await applyPlans(toolCollection(model), tools.map((first, index) => ({
    id: first._id,
    first,
    decide: (tool: StoredTool, at: Date) => {
      const decision = planClaim(tool, { ...request, limit: Math.max(0, room(index)) }, at);
      taken.set(index, decision.kind === 'done' ? decision.result.length : 0);
      return decision;
    },
    missing: (): ClaimedCollection[] => [],
  })), { bulkSize: bulkSizeOf(model), what: 'claimSyncWork', now: clock });
  const claimed: ClaimedTool[] = [];
  for (const outcome of outcomes) {
    // A tool the server or the driver cannot write, or that kept changing, is not a reason to stop.
    if (!outcome.ok || outcome.value.length === 0 || outcome.basis === null) continue;
    const set = (outcome.write?.update.$set ?? {}) as Record<string, unknown>;
    claimed.push({ tool: model.hydrate(withSetApplied(outcome.basis, set)), collections: outcome.value });
  }
  return claimed;
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
 * again and claims only what is still free. The claims go together: each queue is read once (see
 * queueReads), the tools holding `limit` pairs are claimed in one unordered bulk (split as the
 * engine needs) and only the tools whose writes lost are read again (see applyPlans). Legacy and
 * unsettled tools are settled first; a tool whose metadata cannot be used is quarantined and
 * skipped, one the server cannot write (or that keeps changing) is skipped.
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

  const request = { workerId, leaseMs, collections, maxRetries };
  const claimed: ClaimedTool[] = [];
  let pairs = 0;
  // Tools read from the queues, claimed together in one bulk once they hold enough work.
  let batch: StoredTool[] = [];
  let batchPairs = 0;
  const claimBatch = async (): Promise<void> => {
    const got = await claimTools(model, batch, { ...request, limit: limit - pairs }, clock);
    claimed.push(...got);
    pairs += got.reduce((sum, { collections: held }) => sum + held.length, 0);
    batch = [];
    batchPairs = 0;
  };
  // Each queue is read up to the limit: when reads went to tools that held no work (quarantined
  // or settled on the way), the work behind them is read in another pass, never left for an idle worker.
  for (let pass = 0; pass < MAX_CLAIM_PASSES && pairs < limit; pass += 1) {
    const now = clock();
    const queues = collections.flatMap((name) => {
      const reads = queueReads(limit, collections.length);
      return [waitingQueue(model, name, now, reads), dueQueue(collection, name, { now, maxRetries, ...reads })];
    });
    let withoutWork = 0;
    for await (const read of mergeQueues(queues)) {
      const decision = planClaim(read, { ...request, limit: limit - pairs - batchPairs }, clock());
      // Nothing to claim or to settle first: no write.
      if (decision.kind === 'done' && decision.write === null) continue;
      if (decision.kind !== 'done' || decision.result.length === 0) withoutWork += 1;
      batch.push(read);
      batchPairs += decision.kind === 'done' ? decision.result.length : 0;
      if (pairs + batchPairs < limit) continue;
      await claimBatch();
      if (pairs >= limit) break;
    }
    if (batch.length > 0) await claimBatch();
    if (withoutWork === 0) break;
  }
  return claimed;
}

/** Passes over the queues one claim makes at most, when tools without work used up its reads. */
const MAX_CLAIM_PASSES = 4;

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
 * Renews the leases `workerId` still holds among `claims` by `leaseMs` from now (`now`: the clock
 * its claims were made with); returns those renewed. One that is missing was lost (the lease ended
 * and another worker claimed it, or the tool was deleted): its work belongs to someone else now. A batch's claims are renewed together:
 * one `find` of their tools and one bulk of conditional writes (split as the engine needs); a tool
 * whose write lost is read and planned again. If any tool cannot be renewed (its write refused, or
 * it kept changing), the call throws after the others were renewed: the caller tries again, and
 * never takes a failed renewal for a lost claim.
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
  const tools = [...claimList(claims).values()];
  if (tools.length === 0) return [];
  const outcomes = await applyPlans(toolCollection(model), tools.map(({ id, collections }) => ({
    id,
    decide: (stored: StoredTool, now: Date) => planExtendClaims(stored, { workerId, leaseMs, collections }, now),
    missing: (): SyncCollectionName[] => [],
  })), { bulkSize: bulkSizeOf(model), what: 'extendClaims', ...(fixedNow === undefined ? {} : { now: () => fixedNow }) });
  const renewed: { toolId: Types.ObjectId; collection: SyncCollectionName }[] = [];
  let failure: Error | undefined;
  outcomes.forEach((outcome, index) => {
    const tool = tools[index];
    if (!outcome.ok) failure ??= outcome.error;
    else if (tool !== undefined) renewed.push(...outcome.value.map((collection) => ({ toolId: tool.id, collection })));
  });
  if (failure !== undefined) throw failure;
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
  const held = await toolCollection(model).find<StoredTool>(filter).toArray();
  // One bulk of conditional releases (a stopping worker's whole batch), not a command per tool.
  const outcomes = await applyPlans(toolCollection(model), held.map((tool) => {
    const collections = pairs?.get(String(tool._id))?.collections ?? collectionNames(undefined);
    return {
      id: tool._id,
      first: tool,
      decide: (stored: StoredTool, now: Date) => planReleaseClaims(stored, { workerId, collections }, now),
      missing: (): number => 0,
    };
  }), { bulkSize: bulkSizeOf(model), what: 'releaseClaims' });
  let failure: Error | undefined;
  for (const outcome of outcomes) {
    if (outcome.ok) released += outcome.value;
    else failure ??= outcome.error;
  }
  // Every other tool is released first: one that cannot be written never keeps the rest held.
  if (failure !== undefined) throw failure;
  return released;
}
