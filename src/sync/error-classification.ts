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

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
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
  const facts = factsOf(error);
  if (stage === 'validation' || [...facts.names].some((name) => VALIDATION_NAMES.has(name))) return 'VALIDATION_ERROR';
  if (isTimeout(facts)) return stage === 'qdrant' ? 'QDRANT_TIMEOUT' : 'EMBEDDING_TIMEOUT';
  if (stage === 'qdrant' && (isUnreachable(facts) || isRateLimit(facts))) return 'QDRANT_UNAVAILABLE';
  if (stage === 'embedding' && isRateLimit(facts)) return 'EMBEDDING_RATE_LIMIT';
  return 'UNKNOWN';
}

/** A one-line message for `lastError`, from anything thrown. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message === '' ? error.name : `${error.name}: ${error.message}`;
  if (typeof error === 'string') return error;
  if (error === undefined) return 'undefined was thrown';
  try {
    return JSON.stringify(error);
  } catch {
    return Object.prototype.toString.call(error);
  }
}
