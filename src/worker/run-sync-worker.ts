import { types } from 'node:util';
import { type Types } from 'mongoose';
import { pointIdOf } from '../models/point-id.js';
import { type ClaimedCollection, type ClaimedTool } from '../models/tool-claims.js';
import { type ClaimedDeletion, type DeletionMarkOutcome } from '../models/tombstones.js';
import { type MarkBatchItem, type MarkBatchOutcome } from '../models/tool-transitions.js';
import { type ITool } from '../models/types.js';
import { classifySyncError, errorMessage, isInputRefusal } from '../sync/error-classification.js';
import { type SyncCollectionName } from '../sync/vocabulary.js';
import { type SyncWorkerEvent, type SyncWorkerSummary } from './events.js';
import { holdBatchLease, type HeldBatchLease, type LeaseEnd } from './lease.js';
import { fitToBudget } from './rate-budget.js';
import {
  workerSettings, type BatchCallContext, type CallTimer, type DeletedTool, type EmbedItem, type ItemFailure, type SyncCallContext, type SyncWorkerOptions, type UpsertItem,
  type WorkerSettings,
} from './options.js';
import {
  afterSuccess, NOT_PAUSED, pauseAfterFailure, pauseRemainingMs, retryAfterHintMs, type StagePause, type WorkerStage,
} from './pause.js';

/** Waits `ms`, or less if `signal` aborts first; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

type ErrorPhase = Extract<SyncWorkerEvent, { type: 'error' }>['phase'];

/**
 * The signal store writes get: never aborted. A store write the worker gave up on could land
 * after another worker's; one let finish has landed (or failed) before its mark, which re-opens the
 * pair if the claim was lost meanwhile (see planReopen).
 */
const NEVER_ABORTED = new AbortController().signal;

/** Waits between the attempts of a batch's marks the database refused: a short blip should not lose them. */
const MARK_RETRY_DELAYS_MS = [200, 1_000];

/** One pair of a batch in work, and what happened to it. */
interface Pair {
  tool: ITool;
  claimed: ClaimedCollection;
  item: EmbedItem;
  vector?: unknown;
  /** A store write for it was sent: it may have landed, whatever the call said, so it is marked whatever happens. */
  sent: boolean;
  written: boolean;
  failure?: { error: unknown; stage: WorkerStage };
}

/** An item's result that is an error (a Proxy whose traps throw counts as a vector: never thrown at). */
function isErrorResult(value: unknown): boolean {
  if (types.isNativeError(value)) return true;
  try {
    return value instanceof Error;
  } catch {
    return false;
  }
}

/**
 * An input the service refused, isolated (alone in its request): recorded as `VALIDATION_ERROR`,
 * which waits for the content to change, whatever the service called it (a 400, a 422).
 */
function refusedInput(error: unknown, what: string): unknown {
  if (classifySyncError(error, 'embedding') === 'VALIDATION_ERROR') return error;
  return Object.assign(new Error(`${what} refused this input: ${errorMessage(error)}`, { cause: error }), { name: 'ValidationError' });
}

/** At most `size` calls at once; the others wait their turn, in order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }

  /** Resolves true once a slot is taken, or false if `signal` aborts first (no slot taken). */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const take = (): void => {
        signal.removeEventListener('abort', give);
        resolve(true);
      };
      const give = (): void => {
        const index = this.waiting.indexOf(take);
        if (index >= 0) this.waiting.splice(index, 1);
        resolve(false);
      };
      this.waiting.push(take);
      signal.addEventListener('abort', give, { once: true });
    });
  }

  release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.free += 1;
    else next();
  }
}

/** `items` in two halves (a refused batch is sent again as two, until the bad input is alone). */
const halves = <T>(items: T[]): [T[], T[]] => [items.slice(0, Math.ceil(items.length / 2)), items.slice(Math.ceil(items.length / 2))];

class SyncWorker<V> {
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<void>>();
  /** Pairs (and removals) claimed and not finished: at most concurrency × batchSize. */
  private inWork = 0;
  /** Tasks finished so far: a claim that found nothing while one finished may have missed what it left. */
  private finished = 0;
  /** Embedding requests in flight. */
  private readonly slots: Slots;
  /** Marks go one batch at a time: batches of one worker share tools, and marks of one tool met in a bulk would be planned again. */
  private markLane: Promise<void> = Promise.resolve();
    /**
   * Pairs this worker claimed and did not write, and tools whose removals it did not finish:
   * released when it stops. A pair it wrote keeps its claim (the record that a point may exist),
   * so pairs are released one by one, never a tool's all at once.
   */
  private readonly unfinished = new Map<string, { toolId: Types.ObjectId; collection: SyncCollectionName }>();
  private readonly unfinishedRemovals = new Map<string, Types.ObjectId>();
  private readonly pauses: Record<WorkerStage, StagePause> = { embedding: NOT_PAUSED, qdrant: NOT_PAUSED };
  private readonly summary: SyncWorkerSummary;
  /** Ends the main loop's nap early: a task finished (a slot is free) or the worker is stopping. */
  private wake: (() => void) | undefined;
  private idle = false;
  private warned = false;
  /** Where the next claim starts in the collections (see claimAndStart). */
  private turn = 0;
  /** Collections a claim found without work, passed over until then (epoch ms). */
  private readonly emptyUntil = new Map<SyncCollectionName, number>();

  constructor(private readonly settings: WorkerSettings<V>) {
    this.slots = new Slots(settings.concurrency);
    this.summary = {
      workerId: settings.workerId,
      claimed: 0, synced: 0, failed: 0, contentChanged: 0, claimLost: 0, reopened: 0, deletedMeanwhile: 0, released: 0, pauses: 0, removed: 0,
      removeFailed: 0, errors: 0,
      stoppedBy: 'signal',
    };
  }

  private get signal(): AbortSignal {
    return this.stopping.signal;
  }

  async run(): Promise<SyncWorkerSummary> {
    const outer = this.settings.signal;
    const stop = (): void => { this.stopping.abort(); };
    if (outer?.aborted === true) stop();
    outer?.addEventListener('abort', stop, { once: true });
    try {
      await this.loop();
      // In-flight calls have the aborted signal (or finish on their own when the worker is idle).
      await Promise.allSettled([...this.running]);
      await this.releaseUnfinished();
    } finally {
      outer?.removeEventListener('abort', stop);
    }
    const summary = { ...this.summary };
    this.emit({ type: 'stopped', workerId: this.settings.workerId, summary });
    return summary;
  }

  private async loop(): Promise<void> {
    const { concurrency, batchSize, pollIntervalMs, stopWhenIdle } = this.settings;
    const capacity = concurrency * batchSize;
    while (!this.signal.aborted) {
      // Every claimed pair starts with an embedding: while embedding is paused, claim nothing.
      await this.whilePaused('embedding', this.signal);
      if (this.isStopping()) return;
      const free = capacity - this.inWork;
      // A claim costs several queries: refill in batches, once at least half the room is free.
      if (free === 0 || (this.inWork > 0 && free < Math.ceil(capacity / 2))) {
        await this.nap(pollIntervalMs);
        continue;
      }
      const finishedBefore = this.finished;
      const started = await this.claimAndStart(free);
      if (started === undefined) {
        await this.nap(pollIntervalMs);
        continue;
      }
      if (started > 0) {
        this.idle = false;
        continue;
      }
      if (this.inWork === 0) {
        // Work finished while the claim looked (a content changed meanwhile leaves its pair waiting again): look once more.
        if (this.finished !== finishedBefore) continue;
        if (!this.idle) this.emit({ type: 'idle', workerId: this.settings.workerId });
        this.idle = true;
        if (stopWhenIdle) {
          this.summary.stoppedBy = 'idle';
          return;
        }
      }
      // No work waiting: look again after the interval, or once the work in flight is done (a
      // finished task may leave work behind: content changed meanwhile), not at every task's end.
      await this.nap(pollIntervalMs, 'drained');
    }
  }

  /** Waits `ms`, or less: until a task finishes (`slot`) or the last one does (`drained`), or the worker stops. */
  private async nap(ms: number, until: 'slot' | 'drained' = 'slot'): Promise<void> {
    const woken = new AbortController();
    const wake = (): void => { woken.abort(); };
    this.wake = () => { if (until === 'slot' || this.inWork === 0) wake(); };
    this.signal.addEventListener('abort', wake, { once: true });
    try {
      if (!this.isStopping()) await sleep(ms, woken.signal);
    } finally {
      this.wake = undefined;
      this.signal.removeEventListener('abort', wake);
    }
  }

  /**
   * Claims up to `limit` pairs and starts them in batches; returns how many (undefined: the claim
   * failed). A claim takes each tool's waiting collections together, so room for `k` batches is
   * claimed in `k` collections (taken in turn): a tool waiting everywhere then fills a batch of
   * each, not a fraction of all four. A collection found without work is passed over for a poll
   * interval; the others are claimed too when the first claim finds too little.
   */
  private async claimAndStart(limit: number): Promise<number | undefined> {
    const { collections, batchSize, pollIntervalMs } = this.settings;
    const now = Date.now();
    const active = collections.filter((name) => (this.emptyUntil.get(name) ?? 0) <= now);
    const pool = active.length > 0 ? active : collections;
    const turns = Math.min(pool.length, Math.max(1, Math.floor(limit / batchSize)));
    const start = this.turn % pool.length;
    const first = [...pool.slice(start), ...pool.slice(0, start)].slice(0, turns);
    this.turn = start + turns;
    const got = await this.claimPairs(first, limit);
    if (got === undefined) return undefined;
    let pairs = [...got.values()].reduce((sum, count) => sum + count, 0);
    for (const name of first) {
      if ((got.get(name) ?? 0) > 0) this.emptyUntil.delete(name);
      else if (pairs < limit) this.emptyUntil.set(name, now + pollIntervalMs);
    }
    const rest = collections.filter((name) => !first.includes(name));
    let failed = false;
    if (pairs < limit && rest.length > 0) {
      const more = await this.claimPairs(rest, limit - pairs);
      if (more === undefined) failed = true;
      for (const [name, count] of more ?? []) {
        pairs += count;
        if (count > 0) this.emptyUntil.delete(name);
      }
    }
    // Room left: deleted tools' points to remove (quick calls; no lease renewal needed). Started
    // after the pairs, so a failed claim of removals never strands pairs already claimed.
    const removals = pairs < limit ? await this.claimAndStartRemovals(limit - pairs) : 0;
    if (removals === undefined || failed) return pairs > 0 ? pairs : undefined;
    return pairs + removals;
  }

  /** Claims up to `limit` pairs of `collections` and starts them, a batch per collection and `batchSize`; returns how many per collection. */
  private async claimPairs(collections: SyncCollectionName[], limit: number): Promise<Map<SyncCollectionName, number> | undefined> {
    const { model, workerId, leaseMs, maxRetries, clock, batchSize } = this.settings;
    let claimed: ClaimedTool[];
    const grantedAtMs = Date.now();
    try {
      claimed = await model.claimSyncWork({ workerId, limit, leaseMs, collections, maxRetries, ...(clock === undefined ? {} : { now: clock() }) });
    } catch (error) {
      this.reportError('claim', error);
      return undefined;
    }
    const pairs = claimed.flatMap(({ tool, collections: held }) => held.map((claimedPair) => ({ tool, claimed: claimedPair })));
    const counts = new Map<SyncCollectionName, number>();
    if (pairs.length === 0) return counts;
    this.summary.claimed += pairs.length;
    this.emit({
      type: 'claimed',
      workerId,
      pairs: pairs.map(({ tool, claimed: { collection, contentHash, status } }) => ({ toolId: tool._id, collection, contentHash, status })),
    });
    // Batches of one collection, in the order claimed.
    for (const name of collections) {
      const ofCollection = pairs.filter(({ claimed: { collection } }) => collection === name);
      counts.set(name, ofCollection.length);
      for (let start = 0; start < ofCollection.length; start += batchSize) {
        const batch = ofCollection.slice(start, start + batchSize).map(({ tool, claimed: claimedPair }) => this.pairOf(tool, claimedPair));
        // The lease as the database set it (from this worker's clock as each tool was claimed; a
        // claim of many tools takes a while); under a simulated clock, from before the claim.
        const granted = clock === undefined ? Math.min(...batch.map(({ claimed: { claimedUntil } }) => claimedUntil.getTime() - leaseMs)) : grantedAtMs;
        this.track(batch.length, this.batch(name, batch, granted).catch((error: unknown) => { this.reportError('mark', error); }));
      }
    }
    return counts;
  }

  private pairOf(tool: ITool, claimed: ClaimedCollection): Pair {
    const { collection, contentHash } = claimed;
    // Claims hand out ObjectId tools only, so this never throws.
    const pointId = pointIdOf(tool._id);
    let text = '';
    try {
      text = this.settings.callbacks.text(tool, collection);
    } catch {
      // A `text` that throws leaves the text empty: the embedding API refuses it, and the pair is recorded as such.
    }
    return { tool, claimed, item: { tool, collection, text: typeof text === 'string' ? text : String(text), contentHash, pointId }, sent: false, written: false };
  }

  /** Claims up to `limit` removals of deleted tools' points and starts them, a batch per collection; returns how many (undefined: the claim failed). */
  private async claimAndStartRemovals(limit: number): Promise<number | undefined> {
    if (pauseRemainingMs(this.pauses.qdrant, Date.now()) > 0) return 0;
    const { model, workerId, leaseMs, collections, maxRetries, clock, batchSize } = this.settings;
    let claimed: ClaimedDeletion[];
    try {
      claimed = await model.claimVectorDeletions({ workerId, limit, leaseMs, collections, maxRetries, ...(clock === undefined ? {} : { now: clock() }) });
    } catch (error) {
      this.reportError('claim', error);
      return undefined;
    }
    let started = 0;
    for (const name of collections) {
      const ofCollection = claimed.filter((deleted) => deleted.collections.includes(name));
      for (let start = 0; start < ofCollection.length; start += batchSize) {
        const batch = ofCollection.slice(start, start + batchSize);
        this.track(batch.length, this.removals(name, batch).catch((error: unknown) => { this.reportError('mark', error); }));
        started += batch.length;
      }
    }
    return started;
  }

  /** Deleted tools' points in one collection: removed in one call, then marked in one bulk (or their failures recorded). */
  private async removals(collection: SyncCollectionName, batch: ClaimedDeletion[]): Promise<void> {
    const { model, callbacks, workerId, budgets } = this.settings;
    const deleted: DeletedTool[] = batch.map(({ toolObjectId, pointId, id, deletedAt }) => ({ toolObjectId, pointId, id, deletedAt }));
    const giveBack = (): void => { for (const { toolObjectId } of batch) this.unfinishedRemovals.set(String(toolObjectId), toolObjectId); };
    await this.whilePaused('qdrant', this.signal);
    if (this.isStopping() || (budgets.store !== undefined && !(await budgets.store.acquire(0, this.signal)))) {
      giveBack();
      return;
    }
    let failures: ItemFailure[];
    try {
      failures = await callbacks.remove(collection, deleted, { signal: this.signal, workerId, collection }, this.timed);
      if (!Array.isArray(failures) || failures.length !== deleted.length) throw new Error(`the store's removal gave ${String(failures.length)} results for ${deleted.length} points`);
    } catch (error) {
      // Stopping (whatever was thrown): given back for another worker, not a failure.
      if (this.isStopping()) {
        giveBack();
        return;
      }
      failures = deleted.map(() => ({ error }));
    }
    for (const failure of new Set(failures.map((one) => one?.error))) if (failure !== undefined) this.pauseAfter('qdrant', failure);
    if (failures.some((failure) => failure === undefined)) this.pauses.qdrant = afterSuccess(this.pauses.qdrant);
    const items = batch.map(({ toolObjectId }, index) => {
      const failure = failures[index];
      return failure === undefined ? { toolObjectId, collection, outcome: 'removed' as const } : { toolObjectId, collection, outcome: 'failed' as const, error: failure.error };
    });
    let outcomes: DeletionMarkOutcome[];
    try {
      outcomes = await model.markDeletionBatch(items, { workerId });
    } catch (error) {
      for (const { toolObjectId } of batch) this.reportError('mark', error, toolObjectId, collection);
      return;
    }
    outcomes.forEach((outcome, index) => {
      const { toolObjectId, id } = batch[index] ?? { toolObjectId: outcome.toolObjectId, id: null };
      if ('error' in outcome) this.reportError('mark', outcome.error, toolObjectId, collection);
      else if (outcome.outcome === 'removed') {
        // Not this worker's any more (re-opened after a late upsert, or taken over): done again by whoever holds it.
        if (!outcome.result.done) return;
        this.summary.removed += 1;
        this.emit({ type: 'removed', workerId, toolObjectId, id, collection });
      } else if (outcome.result.recorded) {
        this.summary.removeFailed += 1;
        this.emit({ type: 'remove-failed', workerId, toolObjectId, id, collection, errorCode: outcome.result.errorCode, retryCount: outcome.result.retryCount, error: failures[index]?.error });
      }
    });
  }

  /** A task in work: it holds `pairs` of the room until it ends. */
  private track(pairs: number, work: Promise<void>): void {
    this.inWork += pairs;
    const task: Promise<void> = work.finally(() => {
      this.running.delete(task);
      this.inWork -= pairs;
      this.finished += 1;
      this.wake?.();
    });
    this.running.add(task);
  }

  /** Still this worker's to write: not stopping, and its lease not ended. */
  private holds(lease: HeldBatchLease<Pair>, pair: Pair): boolean {
    return !this.isStopping() && lease.ended(pair) === undefined;
  }

  /**
   * One batch of one collection: embedded in one request (split when the API refuses an input or
   * the batch's tokens exceed the budget), written in one store request, marked in one bulk; its
   * lease renewed meanwhile, for all its pairs at once. The store is written only for pairs still
   * held: a lost or expired lease drops its pair (and aborts the request once none is left).
   */
  private async batch(collection: SyncCollectionName, pairs: Pair[], grantedAtMs: number): Promise<void> {
    const lease = this.hold(pairs, grantedAtMs);
    try {
      if (await this.slots.acquire(lease.signal)) {
        try {
          await this.embed(collection, pairs, lease);
        } finally {
          this.slots.release();
        }
      }
      await this.write(collection, pairs.filter((pair) => pair.vector !== undefined && pair.failure === undefined), lease);
      // Renewed until the mark's turn (which releases the claims), never during it.
      await this.inLane(async () => {
        await lease.stop();
        await this.mark(pairs, lease);
      });
    } finally {
      // Whatever happened (a mark that threw included), no renewal outlives the task.
      await lease.stop();
    }
  }

  /**
   * Embeds the pairs still held: in one request, or in as few as the token budget allows (see
   * fitToBudget); a refused request is split until the refused input is alone.
   */
  private async embed(collection: SyncCollectionName, pairs: Pair[], lease: HeldBatchLease<Pair>): Promise<void> {
    const budget = this.settings.budgets.embedding;
    const tokens = new Map(pairs.map((pair) => [pair, budget === undefined ? 0 : budget.countTokens(pair.item.text)]));
    const { requests, tooLarge } = fitToBudget(pairs, (pair) => tokens.get(pair) ?? 0, budget?.tokensPerMinute);
    for (const pair of tooLarge) {
      const error = new Error(`its ${tokens.get(pair) ?? 0} tokens exceed rateLimits.embedding.tokensPerMinute (${budget?.tokensPerMinute ?? 0}): it can never be sent within the budget`);
      pair.failure = { error: refusedInput(error, 'the rate budget'), stage: 'embedding' };
    }
    for (const request of requests) await this.embedRequest(collection, request, lease, (ready) => ready.reduce((sum, pair) => sum + (tokens.get(pair) ?? 0), 0));
  }

  /** One embedding request for the pairs still held; a refused request is split until the refused input is alone. */
  private async embedRequest(collection: SyncCollectionName, pairs: Pair[], lease: HeldBatchLease<Pair>, tokensOf: (pairs: Pair[]) => number): Promise<void> {
    const { callbacks, workerId, budgets } = this.settings;
    const budget = budgets.embedding;
    await this.whilePaused('embedding', lease.signal);
    const ready = pairs.filter((pair) => this.holds(lease, pair));
    if (ready.length === 0) return;
    const tokens = tokensOf(ready);
    if (budget !== undefined && !(await budget.acquire(tokens, lease.signal))) return;
    const sending = ready.filter((pair) => this.holds(lease, pair));
    if (sending.length === 0) return;
    let results: unknown[];
    try {
      results = await callbacks.embed(sending.map(({ item }) => item), { signal: lease.signal, workerId, collection }, this.timed);
      if (!Array.isArray(results) || results.length !== sending.length) {
        const count = Array.isArray(results) ? String(results.length) : typeof results;
        throw new Error(`embedBatch gave ${count} results for ${sending.length} inputs`);
      }
    } catch (error) {
      // Nothing to record of pairs no longer held (an aborted request): left to their holder, or given back.
      const still = sending.filter((pair) => this.holds(lease, pair));
      if (still.length === 0) return;
      if (isInputRefusal(error) && still.length > 1) {
        for (const half of halves(still)) await this.embedRequest(collection, half, lease, tokensOf);
        return;
      }
      // At once, before the marks: no new call of this stage starts meanwhile.
      this.pauseAfter('embedding', error);
      for (const pair of still) pair.failure = { error: still.length === 1 && isInputRefusal(error) ? refusedInput(error, 'the embedding API') : error, stage: 'embedding' };
      return;
    }
    const refused = results.map(isErrorResult);
    if (refused.includes(false)) this.pauses.embedding = afterSuccess(this.pauses.embedding);
    results.forEach((result, index) => {
      const pair = sending[index];
      if (pair === undefined) return;
      if (refused[index] !== true) {
        pair.vector = result;
        return;
      }
      this.pauseAfter('embedding', result);
      pair.failure = { error: isInputRefusal(result) ? refusedInput(result, 'the embedding API') : result, stage: 'embedding' };
    });
  }

  /** Writes the embedded pairs still held to the store, in one request; a refused request is split like an embedding. */
  private async write(collection: SyncCollectionName, pairs: Pair[], lease: HeldBatchLease<Pair>): Promise<void> {
    const { callbacks, workerId, budgets, maxWriteMs } = this.settings;
    if (pairs.length === 0) return;
    await this.whilePaused('qdrant', lease.signal);
    if (budgets.store !== undefined && !(await budgets.store.acquire(0, lease.signal))) return;
    // Sent only with enough lease left for it to land within the lease (see maxWriteMs): else the
    // pairs are left to their lease's end, and claimed again then.
    if (lease.remainingMs() < maxWriteMs) lease.expire();
    // A pair sent before (its write failed: it may have landed) may be sent again whoever holds it: it is marked either way.
    const sending = pairs.filter((pair) => this.holds(lease, pair));
    if (sending.length === 0) return;
    for (const pair of sending) pair.sent = true;
    const items: UpsertItem<V>[] = sending.map(({ tool, vector, item: { contentHash, pointId } }) => ({ tool, vector: vector as V, contentHash, pointId }));
    let failures: ItemFailure[];
    try {
      failures = await callbacks.upsert(collection, items, { signal: NEVER_ABORTED, workerId, collection }, this.timed);
      if (!Array.isArray(failures) || failures.length !== items.length) throw new Error(`the store's upsert gave ${String(failures.length)} results for ${items.length} points`);
    } catch (error) {
      for (const pair of sending) pair.failure = { error, stage: 'qdrant' };
      if (isInputRefusal(error) && sending.length > 1) {
        for (const half of halves(sending)) {
          for (const pair of half) pair.failure = undefined;
          await this.write(collection, half, lease);
          for (const pair of half) if (!pair.written) pair.failure ??= { error, stage: 'qdrant' };
        }
        return;
      }
      failures = sending.map(() => ({ error }));
    }
    sending.forEach((pair, index) => {
      const failure = failures[index];
      if (failure === undefined) {
        pair.written = true;
        pair.failure = undefined;
      } else {
        pair.failure = { error: sending.length === 1 && isInputRefusal(failure.error) ? refusedInput(failure.error, 'the vector store') : failure.error, stage: 'qdrant' };
      }
    });
    for (const failure of new Set(failures.map((one) => one?.error))) if (failure !== undefined) this.pauseAfter('qdrant', failure);
    if (sending.some((pair) => pair.written)) this.pauses.qdrant = afterSuccess(this.pauses.qdrant);
  }

  /** The turn of a batch's marks: one batch at a time (see markLane). */
  private inLane(marks: () => Promise<void>): Promise<void> {
    const turn = this.markLane.then(marks);
    this.markLane = turn.catch(() => undefined);
    return turn;
  }

  /**
   * The batch's marks, in one bulk: a pair written is marked synced, one whose write failed is
   * marked failed at the store (it may have landed: a lost claim re-opens it), one whose embedding
   * failed is marked failed while still held. A pair not written and no longer held is left to its
   * holder; one not done because the worker is stopping is given back.
   */
  private async mark(pairs: Pair[], lease: HeldBatchLease<Pair>): Promise<void> {
    const { model, workerId, embeddingModel } = this.settings;
    const toMark: Pair[] = [];
    for (const pair of pairs) {
      if (pair.sent || (lease.ended(pair) === undefined && !this.isStopping() && pair.failure !== undefined)) toMark.push(pair);
      else if (lease.ended(pair) === undefined) this.giveBack(pair);
    }
    if (toMark.length === 0) return;
    const items: MarkBatchItem[] = toMark.map(({ tool, claimed: { collection, contentHash }, written, failure }) => (written || failure === undefined
      ? { toolId: tool._id, collection, outcome: 'synced', contentHash }
      : { toolId: tool._id, collection, outcome: 'failed', error: failure.error, stage: failure.stage }));
    // A mark the database refused is tried again (see markedSoon): after a store write, the mark is
    // what re-opens a pair whose lease was lost meanwhile, so one blip must not drop it.
    let pending = toMark.map((pair, index) => ({ pair, item: items[index] })).filter((entry): entry is { pair: Pair; item: MarkBatchItem } => entry.item !== undefined);
    // The last attempt has no delay after it: what it refuses is reported.
    for (const delayMs of [...MARK_RETRY_DELAYS_MS, undefined]) {
      let outcomes: (MarkBatchOutcome | { error: unknown })[];
      try {
        outcomes = await model.markBatch(pending.map(({ item }) => item), { workerId, embeddingModel });
      } catch (error) {
        outcomes = pending.map(() => ({ error }));
      }
      const refused: typeof pending = [];
      outcomes.forEach((outcome, index) => {
        const entry = pending[index];
        if (entry === undefined) return;
        if (!('error' in outcome)) this.marked(entry.pair, outcome, lease.ended(entry.pair) !== undefined);
        else if (delayMs === undefined) this.notMarked(entry.pair, outcome.error);
        else refused.push(entry);
      });
      pending = refused;
      if (pending.length === 0 || delayMs === undefined) break;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  /**
   * A mark the database refused. After a store write, the claim is kept (not released): it is
   * the database's trace of the write (a delete then owes a removal); its lease ends and the pair
   * is done again. Before one, it is given back when the worker stops.
   */
  private notMarked(pair: Pair, error: unknown): void {
    if (!pair.sent) this.giveBack(pair);
    this.reportError('mark', error, pair.tool._id, pair.claimed.collection);
  }

  /** A pair this worker holds and did not write: released when it stops. */
  private giveBack(pair: Pair): void {
    const { tool: { _id: toolId }, claimed: { collection } } = pair;
    this.unfinished.set(`${String(toolId)}/${collection}`, { toolId, collection });
  }

  /** `lostBefore`: a renewal already reported the claim lost (the pair is counted once). */
  private marked(pair: Pair, outcome: Exclude<MarkBatchOutcome, { error: Error }>, lostBefore: boolean): void {
    const { workerId } = this.settings;
    const { collection, contentHash } = pair.claimed;
    const toolId = pair.tool._id;
    if (outcome.outcome === 'synced') {
      const { result } = outcome;
      if (result.synced) {
        this.summary.synced += 1;
        this.emit({ type: 'synced', workerId, toolId, collection, contentHash, vectorVersion: result.vectorVersion });
      } else if (result.reason === 'content-changed') {
        this.summary.contentChanged += 1;
        this.emit({ type: 'content-changed', workerId, toolId, collection, contentHash, currentContentHash: result.currentContentHash });
      } else if (result.reason === 'deleted') {
        this.toolDeleted(toolId, collection, true);
      } else {
        this.claimLostAtMark(toolId, collection, result, lostBefore);
      }
      return;
    }
    const { result } = outcome;
    const stage = pair.failure?.stage ?? 'embedding';
    if (result.recorded) {
      this.summary.failed += 1;
      this.emit({ type: 'failed', workerId, toolId, collection, stage, errorCode: result.errorCode, retryCount: result.retryCount, error: pair.failure?.error });
    } else if (result.reason === 'deleted') {
      this.toolDeleted(toolId, collection, pair.sent);
    } else {
      this.claimLostAtMark(toolId, collection, result, lostBefore);
    }
  }

  /** A method, not a property read: the signal may abort during any await. */
  private isStopping(): boolean {
    return this.signal.aborted;
  }

  /** Until the stage's pause ends (it may grow meanwhile), or `signal` aborts (stopping, or the pair is no longer held). */
  private async whilePaused(stage: WorkerStage, signal: AbortSignal): Promise<void> {
    const remaining = (): number => pauseRemainingMs(this.pauses[stage], Date.now());
    while (remaining() > 0 && !signal.aborted) await sleep(remaining(), signal);
  }

  private pauseAfter(stage: WorkerStage, error: unknown): void {
    const errorCode = classifySyncError(error, stage);
    const now = Date.now();
    const retryAfterMs = retryAfterHintMs(error, now);
    const next = pauseAfterFailure(this.pauses[stage], { stage, errorCode, hintMs: retryAfterMs }, now, this.settings.pause);
    if (next === undefined) return;
    this.pauses[stage] = next.pause;
    this.summary.pauses += 1;
    const until = new Date(next.pause.untilMs);
    this.emit({ type: 'paused', workerId: this.settings.workerId, stage, errorCode, pauseMs: next.pauseMs, until, retryAfterMs });
  }

  /** The batch's lease, renewed every third of it in one call; each pair's end (lost, or run out) is reported and counted once. */
  private hold(pairs: Pair[], grantedAtMs: number): HeldBatchLease<Pair> {
    const { model, workerId, leaseMs, clock } = this.settings;
    return holdBatchLease({
      keys: pairs,
      leaseMs,
      grantedAtMs,
      stopping: this.signal,
      renew: async (held) => {
        try {
          // On the clock the claims use: a simulated clock's lease is renewed on that clock, never into its past.
          const claims = held.map(({ tool, claimed: { collection } }) => ({ toolId: tool._id, collection }));
          const renewed = await model.extendClaims(workerId, claims, { leaseMs, ...(clock === undefined ? {} : { now: clock() }) });
          const keys = new Set(renewed.map(({ toolId, collection }) => `${String(toolId)}/${collection}`));
          return new Set(held.filter(({ tool, claimed: { collection } }) => keys.has(`${String(tool._id)}/${collection}`)));
        } catch (error) {
          // Tried again at the next tick; the lease runs out by itself if none succeeds.
          for (const { tool, claimed: { collection } } of held) this.reportError('renew', error, tool._id, collection);
          return undefined;
        }
      },
      onEnd: ({ tool, claimed: { collection } }: Pair, end: LeaseEnd) => {
        this.summary.claimLost += 1;
        this.emit({ type: 'claim-lost', workerId, toolId: tool._id, collection, during: end === 'lost' ? 'renewal' : 'lease-end', claimedBy: null, reopened: false });
      },
    });
  }

  private claimLostAtMark(
    toolId: Types.ObjectId,
    collection: SyncCollectionName,
    { claimedBy, reopened }: { claimedBy: string | null; reopened: boolean },
    lostBefore: boolean,
  ): void {
    if (!lostBefore) this.summary.claimLost += 1;
    if (reopened) this.summary.reopened += 1;
    this.emit({ type: 'claim-lost', workerId: this.settings.workerId, toolId, collection, during: 'mark', claimedBy, reopened });
  }

  /** The tool was deleted while its pair was in work; `removalOwed`: a store write was made (or may have been), so its removal was recorded. */
  private toolDeleted(toolId: Types.ObjectId, collection: SyncCollectionName, removalOwed: boolean): void {
    this.summary.deletedMeanwhile += 1;
    this.emit({ type: 'deleted-meanwhile', workerId: this.settings.workerId, toolId, collection, removalOwed });
  }

  private async releaseUnfinished(): Promise<void> {
    if (this.unfinished.size === 0 && this.unfinishedRemovals.size === 0) return;
    const { model, workerId } = this.settings;
    try {
      if (this.unfinished.size > 0) this.summary.released += await model.releaseClaims(workerId, { claims: [...this.unfinished.values()] });
      if (this.unfinishedRemovals.size > 0) this.summary.released += await model.releaseClaims(workerId, { toolIds: [...this.unfinishedRemovals.values()] });
    } catch (error) {
      // Not released: the leases end by themselves and the work is claimed again then.
      this.reportError('release', error);
    }
  }

  private reportError(phase: ErrorPhase, error: unknown, toolId?: Types.ObjectId, collection?: SyncCollectionName): void {
    this.summary.errors += 1;
    const pair = toolId === undefined || collection === undefined ? {} : { toolId, collection };
    this.emit({ type: 'error', workerId: this.settings.workerId, phase, error, ...pair });
  }

  /** Times one call of the caller's callback and reports it (a `call` event), whether it resolved or threw. */
  private readonly timed: CallTimer = async (stage, collection, items, run) => {
    const { workerId } = this.settings;
    const started = performance.now();
    try {
      const result = await run();
      this.emit({ type: 'call', workerId, stage, collection, items, durationMs: performance.now() - started, outcome: 'ok' });
      return result;
    } catch (error) {
      this.emit({ type: 'call', workerId, stage, collection, items, durationMs: performance.now() - started, outcome: 'error' });
      throw error;
    }
  };

  /** The caller's handler; whatever it throws (or rejects with) never stops the worker. */
  private emit(event: SyncWorkerEvent): void {
    const { onEvent } = this.settings;
    if (onEvent === undefined) return;
    try {
      const returned = onEvent(event);
      if (returned instanceof Promise) returned.catch((error: unknown) => { this.warn(error); });
    } catch (error) {
      this.warn(error);
    }
  }

  /** Once per worker, so a broken handler is seen without flooding the log. */
  private warn(error: unknown): void {
    if (this.warned) return;
    this.warned = true;
    const message = `runSyncWorker ${this.settings.workerId}: onEvent threw ${String(error)}; the worker goes on (this is said once)`;
    process.emitWarning(message, 'SyncWorkerWarning');
  }
}

/**
 * Runs a sync worker until `signal` aborts (or, with `stopWhenIdle`, until no work is left):
 * claims pending, stale and due failed tool × collection pairs (claimSyncWork), embeds each with
 * `embed`, stores it with `upsert`, and marks it synced (recording `embeddingModel`) or failed (by
 * stage: `embedding` or `qdrant`); with slots to spare, removes deleted tools' points with `remove`
 * (claimVectorDeletions) and marks each removal. At most `concurrency` pairs at once; leases renewed while a call takes long; new
 * calls paused after a rate limit or an outage, honouring `Retry-After`. Stopping aborts the calls
 * in flight, waits for them and releases what was not finished. Resolves with what it did; rejects
 * only for bad options (a SyncArgumentError naming the option), before anything is read or written.
 */
export async function runSyncWorker<V = number[]>(options: SyncWorkerOptions<V>): Promise<SyncWorkerSummary> {
  return new SyncWorker(workerSettings(options)).run();
}

export type { BatchCallContext, EmbedItem, SyncCallContext, SyncWorkerOptions, UpsertItem };
