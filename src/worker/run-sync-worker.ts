import { type Types } from 'mongoose';
import { pointIdOf } from '../models/point-id.js';
import { type ClaimedCollection, type ClaimedTool } from '../models/tool-claims.js';
import { type ClaimedDeletion } from '../models/tombstones.js';
import { type ITool } from '../models/types.js';
import { classifySyncError } from '../sync/error-classification.js';
import { type SyncCollectionName } from '../sync/vocabulary.js';
import { type SyncWorkerEvent, type SyncWorkerSummary } from './events.js';
import { holdLease, type HeldLease, type LeaseEnd } from './lease.js';
import { workerSettings, type SyncCallContext, type SyncWorkerOptions, type WorkerSettings } from './options.js';
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

/** Waits between the attempts of a mark the database refused: a short blip should not lose it. */
const MARK_RETRY_DELAYS_MS = [200, 1_000];

/**
 * A mark, tried again after a refusal: after a store write, the mark is what re-opens a pair whose
 * lease was lost meanwhile (see planReopen), so one network blip must not drop it. Each attempt is
 * planned afresh from a read (the marks are conditional writes), so a retry never applies twice.
 */
async function markedSoon<T>(mark: () => Promise<T>): Promise<T> {
  for (const delayMs of MARK_RETRY_DELAYS_MS) {
    try {
      return await mark();
    } catch {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
  return mark();
}

/**
 * Thrown inside a task when the worker is stopping or no longer holds the pair: the pair is then
 * released or left, never marked. Never told apart from other errors by `instanceof` (a value
 * thrown by the caller's code may be a Proxy that throws on it): the task checks its state instead.
 */
class NotHeld extends Error {
  override name = 'NotHeld';
}

/**
 * The signal `upsert` gets: never aborted. A store write the worker gave up on could land after
 * another worker's; one let finish has landed (or failed) before its mark, which re-opens the pair
 * if the claim was lost meanwhile (see planReopen).
 */
const NEVER_ABORTED = new AbortController().signal;

class SyncWorker<V> {
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<void>>();
  /** Per tool (hex `_id`): the last of its marks queued (see inTurn). */
  private readonly marking = new Map<string, Promise<void>>();
  /**
   * Pairs this worker claimed and did not write (a pair it wrote keeps its claim: the record that
   * a point may exist), and removals it did not finish: released when it stops.
   */
  private readonly unfinished = new Map<string, { toolId: Types.ObjectId; collection: SyncCollectionName }>();
  private readonly unfinishedRemovals = new Map<string, Types.ObjectId>();
  private readonly pauses: Record<WorkerStage, StagePause> = { embedding: NOT_PAUSED, qdrant: NOT_PAUSED };
  private readonly summary: SyncWorkerSummary;
  /** Ends the main loop's nap early: a task finished (a slot is free) or the worker is stopping. */
  private wake: (() => void) | undefined;
  private idle = false;
  /** Tasks ended so far (a claim that raced one's end looks again). */
  private finished = 0;
  private warned = false;

  constructor(private readonly settings: WorkerSettings<V>) {
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
    const { concurrency, pollIntervalMs, stopWhenIdle } = this.settings;
    while (!this.signal.aborted) {
      // Every claimed pair starts with an embedding: while embedding is paused, claim nothing.
      await this.whilePaused('embedding', this.signal);
      if (this.isStopping()) return;
      const free = concurrency - this.running.size;
      // A claim costs several queries: refill in batches, once at least half the slots are free.
      if (free === 0 || (this.running.size > 0 && free < Math.ceil(concurrency / 2))) {
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
      // A task that ended during the claim may have left work behind (its content changed): claim again first.
      if (this.running.size === 0 && this.finished !== finishedBefore) continue;
      if (this.running.size === 0) {
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
    this.wake = () => { if (until === 'slot' || this.running.size === 0) wake(); };
    this.signal.addEventListener('abort', wake, { once: true });
    try {
      if (!this.isStopping()) await sleep(ms, woken.signal);
    } finally {
      this.wake = undefined;
      this.signal.removeEventListener('abort', wake);
    }
  }

  /** Claims up to `limit` pairs and starts them; returns how many (undefined: the claim failed). */
  private async claimAndStart(limit: number): Promise<number | undefined> {
    const { model, workerId, leaseMs, collections, maxRetries, clock } = this.settings;
    let claimed: ClaimedTool[];
    const grantedAtMs = Date.now();
    try {
      claimed = await model.claimSyncWork({ workerId, limit, leaseMs, collections, maxRetries, ...(clock === undefined ? {} : { now: clock() }) });
    } catch (error) {
      this.reportError('claim', error);
      return undefined;
    }
    const pairs = claimed.flatMap(({ tool, collections: held }) => held.map((pair) => ({ tool, pair })));
    if (pairs.length > 0) {
      this.summary.claimed += pairs.length;
      this.emit({
        type: 'claimed',
        workerId,
        pairs: pairs.map(({ tool, pair: { collection, contentHash, status } }) => ({ toolId: tool._id, collection, contentHash, status })),
      });
      // The lease as the database set it (from this worker's clock as each tool was claimed; a
      // claim of many tools takes a while); under a simulated clock, from before the claim.
      for (const { tool, pair } of pairs) this.start(tool, pair, clock === undefined ? pair.claimedUntil.getTime() - leaseMs : grantedAtMs);
    }
    // Slots left: deleted tools' points to remove (quick calls; no lease renewal needed). Started
    // after the pairs, so a failed claim of removals never strands pairs already claimed.
    const removals = pairs.length < limit ? await this.claimAndStartRemovals(limit - pairs.length) : 0;
    if (removals === undefined) return pairs.length > 0 ? pairs.length : undefined;
    return pairs.length + removals;
  }

  /** Claims up to `limit` removals of deleted tools' points and starts them; returns how many (undefined: the claim failed). */
  private async claimAndStartRemovals(limit: number): Promise<number | undefined> {
    if (pauseRemainingMs(this.pauses.qdrant, Date.now()) > 0) return 0;
    const { model, workerId, leaseMs, collections, maxRetries, clock } = this.settings;
    let claimed: ClaimedDeletion[];
    try {
      claimed = await model.claimVectorDeletions({ workerId, limit, leaseMs, collections, maxRetries, ...(clock === undefined ? {} : { now: clock() }) });
    } catch (error) {
      this.reportError('claim', error);
      return undefined;
    }
    let started = 0;
    for (const deleted of claimed) {
      for (const collection of deleted.collections) {
        this.track(this.removal(deleted, collection).catch((error: unknown) => { this.reportError('mark', error); }));
        started += 1;
      }
    }
    return started;
  }

  /** One deleted tool's point in one collection: removed, then marked (or its failure recorded). */
  private async removal(deleted: ClaimedDeletion, collection: SyncCollectionName): Promise<void> {
    const { model, remove, workerId } = this.settings;
    const { toolObjectId, pointId, id } = deleted;
    try {
      await this.whilePaused('qdrant', this.signal);
      if (this.isStopping()) throw new NotHeld('the worker is stopping');
      await remove({ toolObjectId, pointId, id, deletedAt: deleted.deletedAt }, collection, { signal: this.signal, workerId });
      this.pauses.qdrant = afterSuccess(this.pauses.qdrant);
    } catch (error) {
      // Stopping (whatever was thrown): given back for another worker, not a failure.
      if (this.isStopping()) {
        this.unfinishedRemovals.set(String(toolObjectId), toolObjectId);
        return;
      }
      this.pauseAfter('qdrant', error);
      const result = await model.markVectorDeleteFailed(toolObjectId, collection, error, { workerId });
      if (result.recorded) {
        this.summary.removeFailed += 1;
        this.emit({ type: 'remove-failed', workerId, toolObjectId, id, collection, errorCode: result.errorCode, retryCount: result.retryCount, error });
      }
      return;
    }
    const result = await model.markVectorDeleted(toolObjectId, collection, { workerId });
    // Not this worker's any more (re-opened after a late upsert, or taken over): done again by whoever holds it.
    if (!result.done) return;
    this.summary.removed += 1;
    this.emit({ type: 'removed', workerId, toolObjectId, id, collection });
  }

  private start(tool: ITool, pair: ClaimedCollection, grantedAtMs: number): void {
    this.track(this.work(tool, pair, grantedAtMs).catch((error: unknown) => { this.reportError('mark', error, tool._id, pair.collection); }));
  }

  /** A task in work: it holds a slot until it ends. */
  private track(work: Promise<void>): void {
    const task: Promise<void> = work.finally(() => {
      this.finished += 1;
      this.running.delete(task);
      this.wake?.();
    });
    this.running.add(task);
  }

  /**
   * One pair: embed, upsert, mark; the lease renewed meanwhile. The store is written only while
   * the pair is held: a lost or expired lease aborts the embedding and the upsert is never sent.
   */
  private async work(tool: ITool, pair: ClaimedCollection, grantedAtMs: number): Promise<void> {
    const { embed, upsert, workerId, maxWriteMs } = this.settings;
    const { collection, contentHash } = pair;
    // Before the lease is held (claims hand out ObjectId tools only, so this never throws there).
    const pointId = pointIdOf(tool._id);
    const lease = this.hold(tool._id, collection, grantedAtMs);
    const context: SyncCallContext = { signal: lease.signal, contentHash, workerId, pointId };
    const stillHeld = (): void => {
      if (this.isStopping() || lease.ended() !== undefined) throw new NotHeld('the worker is stopping, or the pair is no longer held');
    };
    let stage: WorkerStage = 'embedding';
    let writing = false;
    try {
      try {
        await this.whilePaused('embedding', lease.signal);
        stillHeld();
        const vector = await embed(tool, collection, context);
        this.pauses.embedding = afterSuccess(this.pauses.embedding);
        stage = 'qdrant';
        await this.whilePaused('qdrant', lease.signal);
        stillHeld();
        // Sent only with enough lease left for it to land within the lease (see maxWriteMs).
        if (lease.remainingMs() < maxWriteMs) lease.expire();
        stillHeld();
        writing = true;
        await upsert(tool, collection, vector, { ...context, signal: NEVER_ABORTED });
        this.pauses.qdrant = afterSuccess(this.pauses.qdrant);
      } catch (error) {
        // Nothing was written: a pair no longer held (or whose lease has too little left to write)
        // is left to its holder or to its lease's end; stopping gives it back.
        if (!writing && lease.ended() !== undefined) return;
        if (!writing && this.isStopping()) {
          await lease.stop();
          this.giveBack(tool._id, collection);
          return;
        }
        // At once, before the mark: no new call of this stage starts meanwhile.
        this.pauseAfter(stage, error);
        await this.inTurn(tool._id, async () => {
          await lease.stop();
          await this.markFailed(tool, pair, error, stage, lease.ended() !== undefined);
        });
        return;
      }
      // Stored: marked even when stopping, since the work is done.
      await this.inTurn(tool._id, async () => {
        // Renewed until the mark's turn (which releases the claim), never during it.
        await lease.stop();
        await this.markSynced(tool, pair, lease.ended() !== undefined);
      });
    } finally {
      // Whatever happened (a mark that threw included), no renewal outlives the task.
      await lease.stop();
    }
  }

  /**
   * Marks of one tool write the same document: at once, all but one would miss their condition
   * and be read and planned again. One after another, each is one read and one write.
   */
  private async inTurn(toolId: Types.ObjectId, mark: () => Promise<void>): Promise<void> {
    const key = String(toolId);
    const turn = (this.marking.get(key) ?? Promise.resolve()).then(mark);
    this.marking.set(key, turn);
    try {
      await turn;
    } finally {
      if (this.marking.get(key) === turn) this.marking.delete(key);
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

  /** The pair's lease, renewed every third of it; its end (lost, or run out) is reported and counted once. */
  private hold(toolId: Types.ObjectId, collection: SyncCollectionName, grantedAtMs: number): HeldLease {
    const { model, workerId, leaseMs, clock } = this.settings;
    return holdLease({
      leaseMs,
      grantedAtMs,
      stopping: this.signal,
      renew: async () => {
        try {
          // On the clock the claims use: a simulated clock's lease is renewed on that clock, never into its past.
          return (await model.extendClaims(workerId, [{ toolId, collection }], { leaseMs, ...(clock === undefined ? {} : { now: clock() }) })).length > 0;
        } catch (error) {
          // Tried again at the next tick; the lease runs out by itself if none succeeds.
          this.reportError('renew', error, toolId, collection);
          return undefined;
        }
      },
      onEnd: (end: LeaseEnd) => {
        this.summary.claimLost += 1;
        this.emit({ type: 'claim-lost', workerId, toolId, collection, during: end === 'lost' ? 'renewal' : 'lease-end', claimedBy: null, reopened: false });
      },
    });
  }

  /** `lostBefore`: a renewal already reported the claim lost (the pair is counted once). */
  private async markSynced(tool: ITool, pair: ClaimedCollection, lostBefore: boolean): Promise<void> {
    const { model, workerId, embeddingModel } = this.settings;
    const { collection, contentHash } = pair;
    const toolId = tool._id;
    try {
      const result = await markedSoon(() => model.markCollectionSynced(toolId, collection, { contentHash, workerId, embeddingModel }));
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
    } catch (error) {
      // Not released: the claim is the database's trace of the write (a delete then owes a
      // removal); its lease ends and the pair is done again.
      this.reportError('mark', error, toolId, collection);
    }
  }

  private async markFailed(tool: ITool, pair: ClaimedCollection, error: unknown, stage: WorkerStage, lostBefore: boolean): Promise<void> {
    const { model, workerId } = this.settings;
    const { collection } = pair;
    const toolId = tool._id;
    try {
      const result = await markedSoon(() => model.markCollectionFailed(toolId, collection, error, stage, { workerId }));
      if (result.recorded) {
        this.summary.failed += 1;
        this.emit({ type: 'failed', workerId, toolId, collection, stage, errorCode: result.errorCode, retryCount: result.retryCount, error });
      } else if (result.reason === 'deleted') {
        this.toolDeleted(toolId, collection, stage === 'qdrant');
      } else {
        this.claimLostAtMark(toolId, collection, result, lostBefore);
      }
    } catch (thrown) {
      // After a store write, kept as the trace of it (see markSynced); before one, given back.
      if (stage === 'embedding') this.giveBack(toolId, collection);
      this.reportError('mark', thrown, toolId, collection);
    }
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

  /** A pair this worker holds and did not write: released when it stops. */
  private giveBack(toolId: Types.ObjectId, collection: SyncCollectionName): void {
    this.unfinished.set(`${String(toolId)}/${collection}`, { toolId, collection });
  }

  private async releaseUnfinished(): Promise<void> {
    if (this.unfinished.size === 0 && this.unfinishedRemovals.size === 0) return;
    const { model, workerId } = this.settings;
    try {
      // Pair by pair: a sibling pair of the same tool that was written keeps its claim.
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

export type { SyncCallContext, SyncWorkerOptions };
