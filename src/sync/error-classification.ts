import { types } from 'node:util';
import { type SyncErrorCode } from './vocabulary.js';

/** Where in the sync pipeline an error happened. */
export const SYNC_STAGES = ['embedding', 'qdrant', 'validation'] as const;
export type SyncStage = (typeof SYNC_STAGES)[number];

const TIMEOUT_NAMES = new Set(['AbortError', 'TimeoutError']);
const TIMEOUT_CODES = new Set([
  'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'ECONNABORTED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ABORT_ERR',
]);
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_SOCKET',
]);
const VALIDATION_NAMES = new Set(['ValidationError', 'CastError', 'ValidatorError', 'StrictModeError']);

interface ErrorFacts {
  names: Set<string>;
  codes: Set<string>;
  statuses: Set<number>;
  messages: string[];
}

/**
 * `value[key]`, or undefined when reading it throws: what was thrown may be a Proxy whose traps
 * throw, a revoked Proxy, or an object whose getters throw, and classifying it must not throw.
 */
function field(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null) return undefined;
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function asStatus(value: unknown): number | undefined {
  const number = typeof value === 'string' ? Number(value) : value;
  return typeof number === 'number' && Number.isInteger(number) && number >= 100 && number < 600 ? number : undefined;
}

/** Names, codes, HTTP statuses and messages of an error and its causes, whatever was thrown. */
function factsOf(thrown: unknown): ErrorFacts {
  const facts: ErrorFacts = { names: new Set(), codes: new Set(), statuses: new Set(), messages: [] };
  const seen = new Set<unknown>();
  let current: unknown = thrown;
  while (current !== undefined && current !== null && !seen.has(current) && seen.size < 5) {
    seen.add(current);
    if (typeof current === 'string') {
      facts.messages.push(current);
      break;
    }
    for (const key of ['name', 'constructor']) {
      const value = key === 'constructor' ? field(field(current, key), 'name') : field(current, key);
      if (typeof value === 'string') facts.names.add(value);
    }
    for (const key of ['code', 'errno', 'type']) {
      const value = field(current, key);
      if (typeof value === 'string') facts.codes.add(value.toUpperCase());
    }
    for (const value of [field(current, 'status'), field(current, 'statusCode'), field(field(current, 'response'), 'status')]) {
      const status = asStatus(value);
      if (status !== undefined) facts.statuses.add(status);
    }
    const message = field(current, 'message');
    if (typeof message === 'string') facts.messages.push(message);
    current = field(current, 'cause');
  }
  return facts;
}

function isTimeout(facts: ErrorFacts): boolean {
  return (
    [...facts.names].some((name) => TIMEOUT_NAMES.has(name)) ||
    [...facts.codes].some((code) => TIMEOUT_CODES.has(code)) ||
    facts.statuses.has(408) ||
    facts.statuses.has(504) ||
    facts.messages.some((message) => /\btime[sd]?[ -]?out\b/i.test(message))
  );
}

function isRateLimit(facts: ErrorFacts): boolean {
  return facts.statuses.has(429) || facts.messages.some((message) => /\b(rate[ -]?limit|too many requests)/i.test(message));
}

function isUnreachable(facts: ErrorFacts): boolean {
  return (
    [...facts.codes].some((code) => UNREACHABLE_CODES.has(code)) ||
    facts.statuses.has(502) ||
    facts.statuses.has(503) ||
    facts.messages.some((message) => /\b(ECONNREFUSED|ECONNRESET|ENOTFOUND|socket hang up|service unavailable|bad gateway)\b/i.test(message))
  );
}

/**
 * Maps anything thrown during a sync attempt to one of the six error codes, by stage:
 * - validation stage, or a Mongoose validation/cast error: `VALIDATION_ERROR`;
 * - timeouts (AbortError, TimeoutError, ETIMEDOUT, ESOCKETTIMEDOUT, HTTP 408/504):
 *   `EMBEDDING_TIMEOUT` or `QDRANT_TIMEOUT` by stage;
 * - HTTP 429 or a rate-limit message from the embedding API: `EMBEDDING_RATE_LIMIT`
 *   (Qdrant refusing service, 429 included, counts as `QDRANT_UNAVAILABLE`);
 * - at Qdrant, connection refused or reset, DNS failure, HTTP 502/503: `QDRANT_UNAVAILABLE`;
 * - anything else, and any value that is not an error at all: `UNKNOWN`.
 * Never throws.
 */
export function classifySyncError(error: unknown, stage: SyncStage): SyncErrorCode {
  try {
    const facts = factsOf(error);
    if (stage === 'validation' || [...facts.names].some((name) => VALIDATION_NAMES.has(name))) return 'VALIDATION_ERROR';
    if (isTimeout(facts)) return stage === 'qdrant' ? 'QDRANT_TIMEOUT' : 'EMBEDDING_TIMEOUT';
    if (stage === 'qdrant' && (isUnreachable(facts) || isRateLimit(facts))) return 'QDRANT_UNAVAILABLE';
    if (stage === 'embedding' && isRateLimit(facts)) return 'EMBEDDING_RATE_LIMIT';
    return 'UNKNOWN';
  } catch {
    // factsOf reads every property defensively; this is the last line, so a failure is still recorded.
    return stage === 'validation' ? 'VALIDATION_ERROR' : 'UNKNOWN';
  }
}

/** HTTP statuses with which an API refuses the request's content itself: a bad, too large or unprocessable input. */
const INPUT_REFUSED_STATUSES = new Set([400, 413, 422]);

/**
 * Whether a call failed because the service refused its input (a validation error, or HTTP 400,
 * 413 or 422), not because of the service itself: sent again as it was, it fails again, but the
 * same inputs in smaller batches may go through (one bad input among good ones). Never throws.
 */
export function isInputRefusal(error: unknown): boolean {
  try {
    const facts = factsOf(error);
    if ([...facts.names].some((name) => VALIDATION_NAMES.has(name))) return true;
    return [...facts.statuses].some((status) => INPUT_REFUSED_STATUSES.has(status)) && !isRateLimit(facts) && !isTimeout(facts);
  } catch {
    return false;
  }
}

/** `read()`, or undefined when it throws (a hostile value's trap or getter). */
function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

const nonEmptyString = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** An Error, by its prototype chain or its internal slot (a Proxy's getPrototypeOf trap may throw). */
function isErrorLike(value: object): boolean {
  return attempt(() => value instanceof Error) === true || types.isNativeError(value);
}

/** Text for an object or function whose every readable description failed. */
function unreadable(value: object): string {
  if (!types.isProxy(value)) return `[${typeof value} (unreadable)]`;
  // A revoked Proxy makes the engine throw its own TypeError on every operation; a live one throws only what its traps throw.
  let revoked = false;
  try {
    Reflect.getPrototypeOf(value);
  } catch (error) {
    // What a trap threw is as hostile as the rest: read defensively too.
    revoked = attempt(() => types.isNativeError(error) && error.name === 'TypeError' && error.message.includes('revoked')) === true;
  }
  return revoked ? `[${typeof value} (revoked proxy)]` : `[${typeof value} (proxy whose traps throw)]`;
}

function describeThrown(error: unknown): string | undefined {
  switch (typeof error) {
    case 'string':
      return error === '' ? 'an empty string was thrown' : error;
    case 'undefined':
      return 'undefined was thrown';
    case 'symbol':
      // String() of a symbol runs no user code; `Symbol(description)`.
      return String(error);
    case 'bigint':
      return `${String(error)}n was thrown`;
    case 'number':
    case 'boolean':
      return `${String(error)} was thrown`;
    case 'function': {
      const name = attempt(() => (error as { name?: unknown }).name);
      if (name === undefined && types.isProxy(error)) return unreadable(error);
      return `function ${nonEmptyString(name) ?? '(anonymous)'}`;
    }
    default:
      break;
  }
  if (typeof error !== 'object') return `a ${typeof error} was thrown`;
  if (error === null) return 'null was thrown';
  if (isErrorLike(error)) {
    const name = nonEmptyString(field(error, 'name')) ?? 'Error';
    const message = field(error, 'message');
    if (typeof message !== 'string') return `${name} (its message cannot be read)`;
    return message === '' ? name : `${name}: ${message}`;
  }
  // JSON shows a plain object's fields (an HTTP client's error body); undefined for some values.
  const json = attempt(() => JSON.stringify(error) as string | undefined);
  if (json !== undefined) return json;
  const message = nonEmptyString(field(error, 'message'));
  if (message !== undefined) return message;
  return attempt(() => Object.prototype.toString.call(error)) ?? unreadable(error);
}

/**
 * A one-line, non-empty message for `lastError`, from anything thrown; never throws (whatever a
 * Proxy, getter or toJSON does), so the failure being recorded is never lost.
 */
export function errorMessage(error: unknown): string {
  const text = attempt(() => describeThrown(error));
  const line = text?.replace(/\s*[\r\n]+\s*/g, ' ').trim();
  if (line !== undefined && line !== '') return line;
  return typeof error === 'object' && error !== null ? unreadable(error) : `a ${typeof error} was thrown`;
}
