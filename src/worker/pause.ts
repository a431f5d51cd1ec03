import { type SyncErrorCode } from '../sync/vocabulary.js';

/*
 * The worker's own politeness towards the services it calls: after a rate limit or an outage it
 * stops starting new calls of that kind for a while. (Each failed collection's own retry time is
 * stored by markCollectionFailed; this pause is about the service, not the tool.) Pure: the time
 * is an argument, so every rule is tested without a clock or a database.
 */

/** The two kinds of call a worker makes: to the embedding API, and to Qdrant. */
export type WorkerStage = 'embedding' | 'qdrant';

export interface PausePolicy {
  /** The first pause after a failure without a retry-after hint. */
  baseMs: number;
  /** No pause is longer, whatever the hint or the number of failures. */
  maxMs: number;
}

export const DEFAULT_PAUSE_POLICY: PausePolicy = { baseMs: 1_000, maxMs: 60_000 };

/** One stage's pause: consecutive failures that paused it, and until when (epoch ms). */
export interface StagePause {
  failures: number;
  untilMs: number;
}

export const NOT_PAUSED: StagePause = { failures: 0, untilMs: 0 };

/** The calls an error code pauses: a rate-limited embedding API, an unavailable Qdrant. */
export function stagePausedBy(errorCode: SyncErrorCode): WorkerStage | undefined {
  if (errorCode === 'EMBEDDING_RATE_LIMIT') return 'embedding';
  if (errorCode === 'QDRANT_UNAVAILABLE') return 'qdrant';
  return undefined;
}

/** `value[key]`, or undefined when it cannot be read (a Proxy or getter that throws). */
function field(value: unknown, key: string): unknown {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined;
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

/** A header of a `Headers`-like object (`get()`, case-insensitive) or of a plain object. */
function header(headers: unknown, name: string): unknown {
  const get = field(headers, 'get');
  if (typeof get === 'function') {
    try {
      return (get as (key: string) => unknown).call(headers, name) ?? undefined;
    } catch {
      return undefined;
    }
  }
  if (typeof headers !== 'object' || headers === null) return undefined;
  try {
    const key = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
    return key === undefined ? undefined : field(headers, key);
  } catch {
    return undefined;
  }
}

const NUMBER = /^\s*\d+(\.\d+)?\s*$/;

/** A count of milliseconds, given as a number or a numeric string. */
function milliseconds(value: unknown): number | undefined {
  const number = typeof value === 'string' && NUMBER.test(value) ? Number(value) : value;
  return typeof number === 'number' && Number.isFinite(number) && number >= 0 ? Math.round(number) : undefined;
}

/** An HTTP `Retry-After` value: seconds (a number or numeric string) or an HTTP date. */
function retryAfterValue(value: unknown, nowMs: number): number | undefined {
  if (typeof value === 'number') return milliseconds(value * 1000);
  if (typeof value !== 'string') return undefined;
  if (NUMBER.test(value)) return milliseconds(Number(value) * 1000);
  const at = Date.parse(value);
  // A date already past asks for no wait at all.
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** The hint of one error object (not its causes). */
function ownHint(error: unknown, nowMs: number): number | undefined {
  const direct = milliseconds(field(error, 'retryAfterMs')) ?? retryAfterValue(field(error, 'retryAfter'), nowMs);
  if (direct !== undefined) return direct;
  for (const headers of [field(error, 'headers'), field(field(error, 'response'), 'headers')]) {
    // `retry-after-ms` (OpenAI's) is more precise than `retry-after`.
    const hint = milliseconds(header(headers, 'retry-after-ms')) ?? retryAfterValue(header(headers, 'retry-after'), nowMs);
    if (hint !== undefined) return hint;
  }
  return undefined;
}

/**
 * How long the service that threw `error` asked us to wait, in milliseconds, if it said: a
 * `retryAfterMs` property (milliseconds), a `retryAfter` property (seconds or an HTTP date, as the
 * header), or the `retry-after-ms` / `retry-after` header of `error.headers` or
 * `error.response.headers` (a plain object or a `Headers`), on the error or its `cause`s. Never throws.
 */
export function retryAfterHintMs(error: unknown, nowMs: number = Date.now()): number | undefined {
  let current = error;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth += 1) {
    const hint = ownHint(current, nowMs);
    if (hint !== undefined) return hint;
    current = field(current, 'cause');
  }
  return undefined;
}

export interface StageFailure {
  stage: WorkerStage;
  errorCode: SyncErrorCode;
  /** What the service asked for (retryAfterHintMs), if anything. */
  hintMs: number | undefined;
}

/**
 * The pause after a call at `stage` failed, or undefined when this failure pauses nothing. A
 * failure pauses its stage when its code says the service is overloaded or down (stagePausedBy),
 * or when the service said how long to wait. The pause is the hint, if there is one (the service
 * knows its window); otherwise `baseMs` doubled for each consecutive failure; at most `maxMs`. A
 * pause already running is never shortened.
 */
export function pauseAfterFailure(
  previous: StagePause,
  failure: StageFailure,
  nowMs: number,
  policy: PausePolicy = DEFAULT_PAUSE_POLICY,
): { pause: StagePause; pauseMs: number } | undefined {
  if (stagePausedBy(failure.errorCode) !== failure.stage && failure.hintMs === undefined) return undefined;
  const failures = previous.failures + 1;
  const backoff = policy.baseMs * 2 ** Math.min(failures - 1, 30);
  const pauseMs = Math.min(policy.maxMs, failure.hintMs ?? backoff);
  return { pause: { failures, untilMs: Math.max(previous.untilMs, nowMs + pauseMs) }, pauseMs };
}

/** A call at the stage succeeded: the next failure starts from the first pause again (one running stays). */
export function afterSuccess(previous: StagePause): StagePause {
  return previous.failures === 0 ? previous : { failures: 0, untilMs: previous.untilMs };
}

/** How long new calls at a stage still wait, in milliseconds (0: not paused). */
export function pauseRemainingMs(pause: StagePause, nowMs: number): number {
  return Math.max(0, pause.untilMs - nowMs);
}
