import { SyncArgumentError } from '../models/errors.js';

/*
 * Client-side pacing under a provider's limits (requests and tokens per minute): a token bucket
 * that holds one request's worth (the generic cell rate algorithm). Each request reserves its
 * share of the minute when it asks, in the order asked, and goes when the bucket has refilled
 * that far, so in any minute the requests sent stay within the limits, give or take the one
 * request sent last. A service's Retry-After still wins: the worker's stage pause comes on top.
 */

const MINUTE_MS = 60_000;

/** The limits of one service, per minute; `countTokens` gives the tokens of one input's text. */
export interface RateLimits {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  countTokens?: (text: string) => number;
}

/** One service's budget; share one between workers of a process by passing the same budget to each. */
export interface RateBudget {
  readonly requestsPerMinute: number | undefined;
  readonly tokensPerMinute: number | undefined;
  /** The tokens of one input's text (the `countTokens` given, else its length / 4, rounded up). */
  countTokens(text: string): number;
  /**
   * Reserves one request of `tokens` and waits until it may be sent. Resolves true then, or false
   * once `signal` aborts first (the reservation stays spent: the budget errs on the safe side).
   */
  acquire(tokens: number, signal?: AbortSignal): Promise<boolean>;
}

/** The budgets createRateBudget made: told apart from a plain `{ requestsPerMinute, … }` option. */
const budgets = new WeakSet();

export const isRateBudget = (value: unknown): value is RateBudget => typeof value === 'object' && value !== null && budgets.has(value);

/** About four characters a token, for English text (what providers quote); give `countTokens` for an exact count. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4);

function perMinute(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
  throw new SyncArgumentError(name, value, 'a number greater than 0 (per minute)');
}

/** A budget for one service (requests and tokens per minute): pass it to several workers to share it. */
export function createRateBudget(limits: RateLimits, argument = 'rateLimits', now: () => number = Date.now): RateBudget {
  if (typeof limits !== 'object' || (limits as unknown) === null) throw new SyncArgumentError(argument, limits, 'an object { requestsPerMinute?, tokensPerMinute?, countTokens? }');
  const stray = Object.keys(limits).find((key) => !['requestsPerMinute', 'tokensPerMinute', 'countTokens'].includes(key));
  if (stray !== undefined) throw new SyncArgumentError(`${argument}.${stray}`, (limits as Record<string, unknown>)[stray], 'no such limit (known: requestsPerMinute, tokensPerMinute, countTokens)');
  const requestsPerMinute = perMinute(limits.requestsPerMinute, `${argument}.requestsPerMinute`);
  const tokensPerMinute = perMinute(limits.tokensPerMinute, `${argument}.tokensPerMinute`);
  const counter: unknown = limits.countTokens;
  if (counter !== undefined && typeof counter !== 'function') throw new SyncArgumentError(`${argument}.countTokens`, counter, 'a function (text) => number of tokens');
  const count = (counter as ((text: string) => number) | undefined) ?? estimateTokens;
  // When the next request, and the next token, may go (epoch ms): each request moves them by its share of the minute.
  let requestsFreeAt = 0;
  let tokensFreeAt = 0;
  const budget: RateBudget = {
    requestsPerMinute,
    tokensPerMinute,
    countTokens: (text) => {
      const tokens = count(text);
      // A counter that gives no count is not a reason to stop: the estimate stands in.
      return typeof tokens === 'number' && Number.isFinite(tokens) && tokens >= 0 ? tokens : estimateTokens(text);
    },
    acquire: (tokens, signal) => {
      const at = Math.max(now(), requestsFreeAt, tokensFreeAt);
      if (requestsPerMinute !== undefined) requestsFreeAt = at + MINUTE_MS / requestsPerMinute;
      if (tokensPerMinute !== undefined) tokensFreeAt = at + (tokens * MINUTE_MS) / tokensPerMinute;
      return waitUntil(at, now, signal);
    },
  };
  budgets.add(budget);
  return budget;
}

function waitUntil(at: number, now: () => number, signal: AbortSignal | undefined): Promise<boolean> {
  const ms = at - now();
  if (signal?.aborted === true) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (sent: boolean): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
      resolve(sent);
    };
    const aborted = (): void => { done(false); };
    const timer = setTimeout(() => { done(true); }, ms);
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/**
 * A batch in requests that each fit in `tokensPerMinute` (a request over it could never be sent
 * within the budget, and the provider refuses it): halved until each part fits. An input over the
 * budget alone is `tooLarge`. Without a token limit, the batch as it is.
 */
export function fitToBudget<T>(items: T[], tokensOf: (item: T) => number, tokensPerMinute: number | undefined): { requests: T[][]; tooLarge: T[] } {
  const requests: T[][] = [];
  const tooLarge: T[] = [];
  const fit = (part: T[]): void => {
    if (part.length === 0) return;
    const tokens = part.reduce((sum, item) => sum + tokensOf(item), 0);
    if (tokensPerMinute === undefined || tokens <= tokensPerMinute) requests.push(part);
    else if (part.length === 1) tooLarge.push(...part);
    else {
      const middle = Math.ceil(part.length / 2);
      fit(part.slice(0, middle));
      fit(part.slice(middle));
    }
  };
  fit(items);
  return { requests, tooLarge };
}
