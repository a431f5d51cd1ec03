import { type Types } from 'mongoose';
import { type SyncCollectionName, type SyncErrorCode, type SyncStatus } from '../sync/vocabulary.js';
import { type WorkerStage } from './pause.js';

/** The caller's callbacks a worker times: embedding requests, store writes, store removals. */
export const SYNC_CALL_STAGES = ['embed', 'upsert', 'remove'] as const;
export type SyncCallStage = (typeof SYNC_CALL_STAGES)[number];

/** One tool × collection a worker works on. */
export interface PairOf {
  workerId: string;
  /** The tool document's `_id`. */
  toolId: Types.ObjectId;
  collection: SyncCollectionName;
}

/** What runSyncWorker resolves with: what it did, in pairs (tool × collection). */
export interface SyncWorkerSummary {
  workerId: string;
  claimed: number;
  synced: number;
  /** Recorded as failed (each is retried after its backoff, up to maxRetries). */
  failed: number;
  /** Embedded, but the content changed meanwhile: waiting again with its new hash. */
  contentChanged: number;
  /**
   * Pairs this worker stopped holding: a renewal found the claim gone, the lease ran out without a
   * renewal, or the mark found another worker's claim (the pair is theirs now, or back in line).
   */
  claimLost: number;
  /** Of those, the pairs put back in line because this worker's store write may have replaced a later one's (see the fencing rule). */
  reopened: number;
  /** Pairs whose tool was deleted while they were in work (a removal of the point is recorded when one was written). */
  deletedMeanwhile: number;
  /** Given back unfinished when the worker stopped (aborted calls, or a mark the database refused). */
  released: number;
  /** How many times a rate limit or an outage paused new calls. */
  pauses: number;
  /** Deleted tools' points removed (tombstone × collection). */
  removed: number;
  /** Removals that failed (retried after their backoff). */
  removeFailed: number;
  /** Database errors reported as `error` events (the worker went on). */
  errors: number;
  /** `signal`: stopped by its AbortSignal; `idle`: `stopWhenIdle` and no work was left. */
  stoppedBy: 'signal' | 'idle';
}

/** Everything a worker reports through `onEvent`. */
export type SyncWorkerEvent =
  /** A claim: the pairs now leased to this worker. */
  | { type: 'claimed'; workerId: string; pairs: (Omit<PairOf, 'workerId'> & { contentHash: string; status: SyncStatus })[] }
  | (PairOf & { type: 'synced'; contentHash: string; vectorVersion: number })
  | (PairOf & { type: 'failed'; stage: WorkerStage; errorCode: SyncErrorCode; retryCount: number; error: unknown })
  /** Embedded an older content: the pair waits again with `currentContentHash` (this or another worker re-embeds it). */
  | (PairOf & { type: 'content-changed'; contentHash: string; currentContentHash: string })
  /**
   * The pair is no longer this worker's: a renewal found the claim gone, or the lease ran out
   * without a renewal (`lease-end`) — the embedding is aborted and nothing is written; or the mark
   * found it lost after the write (another worker holds it now: `claimedBy`; nothing of the sync
   * was recorded, and `reopened` says the pair was put back in line because of that write).
   */
  | (PairOf & { type: 'claim-lost'; during: 'renewal' | 'lease-end' | 'mark'; claimedBy: string | null; reopened: boolean })
  /** The tool was deleted while the pair was in work; `removalOwed`: the point was (or may have been) written, and its removal is recorded. */
  | (PairOf & { type: 'deleted-meanwhile'; removalOwed: boolean })
  /** New calls at `stage` wait `pauseMs` (until `until`); `retryAfterMs` is what the service asked for, if it did. */
  | { type: 'paused'; workerId: string; stage: WorkerStage; errorCode: SyncErrorCode; pauseMs: number; until: Date; retryAfterMs: number | undefined }
  /** A deleted tool's point is gone from `collection`. */
  | { type: 'removed'; workerId: string; toolObjectId: Types.ObjectId; id: string | null; collection: SyncCollectionName }
  /** Removing it failed: recorded, retried after the backoff. */
  | { type: 'remove-failed'; workerId: string; toolObjectId: Types.ObjectId; id: string | null; collection: SyncCollectionName; errorCode: SyncErrorCode; retryCount: number; error: unknown }
  /**
   * One call of the caller's embed / upsert / remove callback (of the batch form, or of the
   * per-pair form: one event per pair), timed with performance.now(); `items`: the pairs (or
   * removals) it was given; `outcome`: `error` when it threw (a batch whose items came back
   * with Errors is `ok`: the request itself succeeded).
   */
  | { type: 'call'; workerId: string; stage: SyncCallStage; collection: SyncCollectionName; items: number; durationMs: number; outcome: 'ok' | 'error' }
  /** A claim found no work and nothing is in flight (once per stretch of idleness). */
  | { type: 'idle'; workerId: string }
  /** The database refused a claim, mark, renewal or release; the worker goes on (an unmarked pair's lease ends, and it is done again). */
  | {
    type: 'error';
    workerId: string;
    phase: 'claim' | 'mark' | 'renew' | 'release';
    error: unknown;
    /** The pair, for a mark or renewal. */
    toolId?: Types.ObjectId;
    collection?: SyncCollectionName;
  }
  | { type: 'stopped'; workerId: string; summary: SyncWorkerSummary };
