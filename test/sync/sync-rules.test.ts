import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { maxRetryDelayMs, RETRY_POLICY, retryDelayMs } from '../../src/sync/backoff.js';
import { classifySyncError, errorMessage } from '../../src/sync/error-classification.js';
import { aggregateSyncStatus, SYNC_STATUS_ORDER } from '../../src/sync/status-order.js';
import { afterContentChange, afterRequeue } from '../../src/sync/transitions.js';
import { type SyncStatus } from '../../src/index.js';

describe('aggregateSyncStatus', () => {
  it('orders synced < stale < pending < failed', () => {
    expect(SYNC_STATUS_ORDER).toEqual(['synced', 'stale', 'pending', 'failed']);
  });

  it('is the worst of the statuses', () => {
    expect(aggregateSyncStatus(['synced', 'synced', 'synced', 'synced'])).toBe('synced');
    expect(aggregateSyncStatus(['synced', 'stale', 'synced', 'synced'])).toBe('stale');
    expect(aggregateSyncStatus(['stale', 'pending', 'synced', 'stale'])).toBe('pending');
    expect(aggregateSyncStatus(['pending', 'stale', 'failed', 'synced'])).toBe('failed');
    for (const [i, worse] of SYNC_STATUS_ORDER.entries()) {
      for (const better of SYNC_STATUS_ORDER.slice(0, i)) {
        expect(aggregateSyncStatus([better, worse])).toBe(worse);
        expect(aggregateSyncStatus([worse, better])).toBe(worse);
      }
    }
  });

  it('rejects no statuses and unknown statuses', () => {
    expect(() => aggregateSyncStatus([])).toThrow(RangeError);
    expect(() => aggregateSyncStatus(['synced', 'done' as SyncStatus])).toThrow(/unknown sync status "done"/);
  });
});

describe('afterContentChange', () => {
  const at = new Date('2026-01-01T00:00:00Z');
  it.each([
    [{ status: 'synced', lastSyncedAt: at, retryCount: 0 }, { status: 'stale', retryCount: 0 }],
    [{ status: 'failed', lastSyncedAt: at, retryCount: 4 }, { status: 'stale', retryCount: 0 }],
    [{ status: 'failed', lastSyncedAt: null, retryCount: 4 }, { status: 'pending', retryCount: 0 }],
    [{ status: 'pending', lastSyncedAt: null, retryCount: 0 }, { status: 'pending', retryCount: 0 }],
    [{ status: 'stale', lastSyncedAt: at, retryCount: 2 }, { status: 'stale', retryCount: 2 }],
  ] as const)('%j -> %j', (state, expected) => {
    expect(afterContentChange(state)).toEqual(expected);
  });

  it('requeues only failed collections', () => {
    expect(afterRequeue({ status: 'failed', lastSyncedAt: at, retryCount: 5 })).toEqual({ status: 'stale', retryCount: 0 });
    expect(afterRequeue({ status: 'failed', lastSyncedAt: null, retryCount: 5 })).toEqual({ status: 'pending', retryCount: 0 });
    expect(afterRequeue({ status: 'stale', lastSyncedAt: at, retryCount: 1 })).toBeNull();
  });
});

function httpError(status: number, message = `HTTP ${status}`): Error {
  return Object.assign(new Error(message), { status });
}

describe('classifySyncError', () => {
  const abort = new DOMException('This operation was aborted', 'AbortError');
  const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
  const fetchFailed = (code: string): Error => new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ${code}`), { code }) });

  it.each(([
    [abort, 'embedding', 'EMBEDDING_TIMEOUT'],
    [timeout, 'embedding', 'EMBEDDING_TIMEOUT'],
    [timeout, 'qdrant', 'QDRANT_TIMEOUT'],
    [Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:443'), { code: 'ETIMEDOUT' }), 'embedding', 'EMBEDDING_TIMEOUT'],
    [Object.assign(new Error('socket timed out'), { code: 'ESOCKETTIMEDOUT' }), 'qdrant', 'QDRANT_TIMEOUT'],
    [httpError(408), 'embedding', 'EMBEDDING_TIMEOUT'],
    [{ response: { status: 504 }, message: 'Gateway Timeout' }, 'qdrant', 'QDRANT_TIMEOUT'],
    [httpError(429, 'Too Many Requests'), 'embedding', 'EMBEDDING_RATE_LIMIT'],
    [{ statusCode: '429' }, 'embedding', 'EMBEDDING_RATE_LIMIT'],
    [fetchFailed('ECONNREFUSED'), 'qdrant', 'QDRANT_UNAVAILABLE'],
    [fetchFailed('ECONNRESET'), 'qdrant', 'QDRANT_UNAVAILABLE'],
    [Object.assign(new Error('getaddrinfo ENOTFOUND qdrant'), { code: 'ENOTFOUND' }), 'qdrant', 'QDRANT_UNAVAILABLE'],
    [httpError(502), 'qdrant', 'QDRANT_UNAVAILABLE'],
    [httpError(503), 'qdrant', 'QDRANT_UNAVAILABLE'],
    [httpError(503), 'embedding', 'UNKNOWN'],
    [new mongoose.Error.ValidationError(), 'qdrant', 'VALIDATION_ERROR'],
    [new Error('vector has 1024 dimensions, expected 768'), 'validation', 'VALIDATION_ERROR'],
    [new Error('something odd'), 'embedding', 'UNKNOWN'],
    ['a thrown string', 'embedding', 'UNKNOWN'],
    ['request timed out', 'embedding', 'EMBEDDING_TIMEOUT'],
    [{ some: 'object' }, 'qdrant', 'UNKNOWN'],
    [undefined, 'embedding', 'UNKNOWN'],
    [null, 'qdrant', 'UNKNOWN'],
    [42, 'embedding', 'UNKNOWN'],
  ] as const).map(([error, stage, code]) => [stage, code, error] as const))('at the %s stage -> %s (case %#)', (stage, code, error) => {
    expect(classifySyncError(error, stage)).toBe(code);
  });

  it('accepts a self-referencing error without throwing', () => {
    const loop: Record<string, unknown> = { message: 'loop' };
    loop.cause = loop;
    expect(classifySyncError(loop, 'qdrant')).toBe('UNKNOWN');
    expect(typeof errorMessage(loop)).toBe('string');
  });

  it('gives a message for anything thrown', () => {
    expect(errorMessage(new TypeError('bad'))).toBe('TypeError: bad');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage(undefined)).toBe('undefined was thrown');
    expect(errorMessage({ status: 500 })).toBe('{"status":500}');
  });
});

describe('retryDelayMs', () => {
  it('grows exponentially, is capped, and is longer after a rate limit', () => {
    expect(maxRetryDelayMs(1, 'UNKNOWN')).toBe(RETRY_POLICY.baseDelayMs);
    expect(maxRetryDelayMs(2, 'UNKNOWN')).toBe(2 * RETRY_POLICY.baseDelayMs);
    expect(maxRetryDelayMs(4, 'QDRANT_TIMEOUT')).toBe(8 * RETRY_POLICY.baseDelayMs);
    expect(maxRetryDelayMs(2, 'EMBEDDING_RATE_LIMIT')).toBe(RETRY_POLICY.rateLimitMultiplier * maxRetryDelayMs(2, 'UNKNOWN'));
    expect(maxRetryDelayMs(60, 'UNKNOWN')).toBe(RETRY_POLICY.maxDelayMs);
  });

  it('jitters between half and all of the delay, the same way for the same tool and attempt', () => {
    const delays = Array.from({ length: 200 }, (_, i) => retryDelayMs(3, 'UNKNOWN', `tool-${i}:tools`));
    const max = maxRetryDelayMs(3, 'UNKNOWN');
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(max / 2);
    expect(Math.max(...delays)).toBeLessThanOrEqual(max);
    expect(new Set(delays).size).toBeGreaterThan(150);
    expect(retryDelayMs(3, 'UNKNOWN', 'tool-7:tools')).toBe(delays[7]);
  });
});
