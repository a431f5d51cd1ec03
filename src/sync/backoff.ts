import { createHash } from 'node:crypto';
import { type SyncErrorCode } from './vocabulary.js';

/** Retry policy of failed collections: exponential backoff with deterministic jitter. */
export const RETRY_POLICY = {
  /** Delay before the first retry. */
  baseDelayMs: 30_000,
  /** A rate limit asks us to slow down: its backoff starts this much later. */
  rateLimitMultiplier: 4,
  /** No delay grows beyond this. */
  maxDelayMs: 6 * 60 * 60 * 1000,
  /** The jitter takes the delay down to at most this fraction (equal jitter: 0.5 to 1). */
  minJitterFraction: 0.5,
} as const;

/** The delay before the retry after `retryCount` failures, before jitter. */
export function maxRetryDelayMs(retryCount: number, errorCode: SyncErrorCode | null): number {
  const multiplier = errorCode === 'EMBEDDING_RATE_LIMIT' ? RETRY_POLICY.rateLimitMultiplier : 1;
  const exponent = Math.max(0, retryCount - 1);
  return Math.min(RETRY_POLICY.maxDelayMs, RETRY_POLICY.baseDelayMs * multiplier * 2 ** Math.min(exponent, 30));
}

/**
 * The delay before retrying a failed collection: exponential in the retry count, four times as
 * long after a rate limit, capped at six hours, with jitter that spreads retries of many tools
 * failing at once. The jitter is derived from the tool, collection and attempt, so the same
 * query asked twice gives the same answer.
 */
export function retryDelayMs(retryCount: number, errorCode: SyncErrorCode | null, jitterKey: string): number {
  const max = maxRetryDelayMs(retryCount, errorCode);
  const digest = createHash('sha256').update(`${jitterKey}#${retryCount}`).digest();
  const unit = digest.readUInt32BE(0) / 0x1_0000_0000;
  const fraction = RETRY_POLICY.minJitterFraction + (1 - RETRY_POLICY.minJitterFraction) * unit;
  return Math.round(max * fraction);
}

/** The jitter key of one tool's collection: the same tool and collection always get the same spread. */
export const retryJitterKey = (toolId: unknown, collection: string): string => `${String(toolId)}:${collection}`;

/**
 * When a collection that failed at `attemptAt` is due for its next retry: `retryDelayMs` after
 * it; null for `VALIDATION_ERROR`, which is never retried by itself (the content has to change).
 */
export function nextRetryAt(attemptAt: Date, retryCount: number, errorCode: SyncErrorCode | null, jitterKey: string): Date | null {
  if (errorCode === 'VALIDATION_ERROR') return null;
  return new Date(attemptAt.getTime() + retryDelayMs(retryCount, errorCode, jitterKey));
}
