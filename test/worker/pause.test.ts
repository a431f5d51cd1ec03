import { describe, expect, it } from 'vitest';
import {
  afterSuccess, DEFAULT_PAUSE_POLICY, NOT_PAUSED, pauseAfterFailure, pauseRemainingMs, retryAfterHintMs, stagePausedBy,
} from '../../src/worker/pause.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const policy = { baseMs: 1_000, maxMs: 8_000 };

describe('retryAfterHintMs', () => {
  it('reads retryAfterMs (milliseconds) and retryAfter (seconds, or an HTTP date) properties', () => {
    expect(retryAfterHintMs({ retryAfterMs: 250 }, NOW)).toBe(250);
    expect(retryAfterHintMs({ retryAfterMs: '250' }, NOW)).toBe(250);
    expect(retryAfterHintMs({ retryAfter: 3 }, NOW)).toBe(3_000);
    expect(retryAfterHintMs({ retryAfter: '1.5' }, NOW)).toBe(1_500);
    expect(retryAfterHintMs({ retryAfter: new Date(NOW + 7_000).toUTCString() }, NOW)).toBe(7_000);
  });

  it('reads the retry-after-ms and retry-after headers, as a plain object (any case) or a Headers', () => {
    expect(retryAfterHintMs({ headers: { 'retry-after': '2' } }, NOW)).toBe(2_000);
    expect(retryAfterHintMs({ headers: { 'Retry-After': '2' } }, NOW)).toBe(2_000);
    expect(retryAfterHintMs({ headers: new Headers({ 'Retry-After': '4' }) }, NOW)).toBe(4_000);
    // OpenAI's millisecond header is the more precise one.
    expect(retryAfterHintMs({ headers: new Headers({ 'retry-after': '1', 'retry-after-ms': '640' }) }, NOW)).toBe(640);
    expect(retryAfterHintMs({ response: { headers: { 'retry-after': '5' } } }, NOW)).toBe(5_000);
    expect(retryAfterHintMs({ response: { headers: new Headers({ 'retry-after': new Date(NOW + 9_000).toUTCString() }) } }, NOW)).toBe(9_000);
  });

  it('follows the cause chain', () => {
    const error = new Error('embedding failed', { cause: Object.assign(new Error('429'), { status: 429, headers: { 'retry-after': '3' } }) });
    expect(retryAfterHintMs(error, NOW)).toBe(3_000);
  });

  it('gives 0 for a date already past, and nothing for no hint or one it cannot read', () => {
    expect(retryAfterHintMs({ retryAfter: new Date(NOW - 60_000).toUTCString() }, NOW)).toBe(0);
    for (const error of [
      new Error('429'), undefined, null, 'Too Many Requests', 429, { retryAfter: 'soon' }, { retryAfterMs: -5 }, { retryAfter: Number.NaN },
      { headers: { 'retry-after': 'later' } }, { headers: null }, { headers: { get: () => { throw new Error('no'); } } },
    ]) {
      expect(retryAfterHintMs(error, NOW), JSON.stringify(error)).toBeUndefined();
    }
  });

  it('never throws, whatever was thrown', () => {
    const hostile = new Proxy({}, { get: () => { throw new Error('trap'); }, ownKeys: () => { throw new Error('trap'); } });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(retryAfterHintMs(hostile, NOW)).toBeUndefined();
    expect(retryAfterHintMs(proxy, NOW)).toBeUndefined();
    expect(retryAfterHintMs({ headers: hostile }, NOW)).toBeUndefined();
  });
});

describe('pauseAfterFailure', () => {
  it('pauses embedding after a rate limit and upserts after Qdrant is unavailable, nothing else by the code alone', () => {
    expect(stagePausedBy('EMBEDDING_RATE_LIMIT')).toBe('embedding');
    expect(stagePausedBy('QDRANT_UNAVAILABLE')).toBe('qdrant');
    for (const code of ['EMBEDDING_TIMEOUT', 'QDRANT_TIMEOUT', 'VALIDATION_ERROR', 'UNKNOWN'] as const) expect(stagePausedBy(code)).toBeUndefined();
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'embedding', errorCode: 'EMBEDDING_TIMEOUT', hintMs: undefined }, NOW, policy)).toBeUndefined();
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'qdrant', errorCode: 'QDRANT_TIMEOUT', hintMs: undefined }, NOW, policy)).toBeUndefined();
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'embedding', errorCode: 'EMBEDDING_RATE_LIMIT', hintMs: undefined }, NOW, policy))
      .toEqual({ pause: { failures: 1, untilMs: NOW + 1_000 }, pauseMs: 1_000 });
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'qdrant', errorCode: 'QDRANT_UNAVAILABLE', hintMs: undefined }, NOW, policy))
      .toEqual({ pause: { failures: 1, untilMs: NOW + 1_000 }, pauseMs: 1_000 });
  });

  it('doubles per consecutive failure up to the cap, and starts again after a success', () => {
    const failure = { stage: 'embedding', errorCode: 'EMBEDDING_RATE_LIMIT', hintMs: undefined } as const;
    let pause = NOT_PAUSED;
    const pauses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const next = pauseAfterFailure(pause, failure, NOW, policy);
      if (next === undefined) throw new Error('expected a pause');
      pauses.push(next.pauseMs);
      pause = next.pause;
    }
    expect(pauses).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    const reset = afterSuccess(pause);
    expect(reset.failures).toBe(0);
    // A success does not cut a pause that is running.
    expect(reset.untilMs).toBe(pause.untilMs);
    expect(pauseAfterFailure(reset, failure, NOW + 20_000, policy)?.pauseMs).toBe(1_000);
  });

  it('honours a retry-after hint (capped), also on an error whose code alone would pause nothing', () => {
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'embedding', errorCode: 'EMBEDDING_RATE_LIMIT', hintMs: 300 }, NOW, policy)?.pauseMs).toBe(300);
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'embedding', errorCode: 'EMBEDDING_RATE_LIMIT', hintMs: 3_600_000 }, NOW, policy)?.pauseMs).toBe(8_000);
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'embedding', errorCode: 'UNKNOWN', hintMs: 2_000 }, NOW, policy)?.pauseMs).toBe(2_000);
    // A Qdrant code at the embedding stage is not the embedding API's problem.
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'embedding', errorCode: 'QDRANT_UNAVAILABLE', hintMs: undefined }, NOW, policy)).toBeUndefined();
  });

  it('never shortens a pause that is running', () => {
    const long = { failures: 3, untilMs: NOW + 10_000 };
    const next = pauseAfterFailure(long, { stage: 'embedding', errorCode: 'EMBEDDING_RATE_LIMIT', hintMs: 100 }, NOW, policy);
    expect(next?.pause).toEqual({ failures: 4, untilMs: NOW + 10_000 });
  });

  it('counts down what remains of a pause', () => {
    expect(pauseRemainingMs(NOT_PAUSED, NOW)).toBe(0);
    expect(pauseRemainingMs({ failures: 1, untilMs: NOW + 500 }, NOW)).toBe(500);
    expect(pauseRemainingMs({ failures: 1, untilMs: NOW + 500 }, NOW + 900)).toBe(0);
  });

  it('defaults to a one-second first pause and a one-minute cap', () => {
    expect(DEFAULT_PAUSE_POLICY).toEqual({ baseMs: 1_000, maxMs: 60_000 });
    expect(pauseAfterFailure(NOT_PAUSED, { stage: 'qdrant', errorCode: 'QDRANT_UNAVAILABLE', hintMs: undefined }, NOW)?.pauseMs).toBe(1_000);
  });
});
