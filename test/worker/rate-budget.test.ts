import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SyncArgumentError } from '../../src/index.js';
import { createRateBudget, fitToBudget, type RateBudget } from '../../src/worker/rate-budget.js';
import { seededRandom } from '../../src/cli/seed-data.js';

/* The rate budget alone: pure pacing, with fake timers (no database). */

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

const MINUTE = 60_000;

interface Sent { at: number; tokens: number }

/** The most requests and tokens sent in any minute (a window opening at each request). */
function busiestMinute(sent: Sent[]): { requests: number; tokens: number } {
  let requests = 0;
  let tokens = 0;
  for (const { at } of sent) {
    const inside = sent.filter((other) => other.at >= at && other.at < at + MINUTE);
    requests = Math.max(requests, inside.length);
    tokens = Math.max(tokens, inside.reduce((sum, one) => sum + one.tokens, 0));
  }
  return { requests, tokens };
}

/** `consumers` callers each sending requests back to back through their budget for `minutes`, with random sizes. */
async function drive(budgets: RateBudget[], minutes: number, seed: number): Promise<Sent[]> {
  const pick = seededRandom(seed);
  const sent: Sent[] = [];
  const end = Date.now() + minutes * MINUTE;
  const caller = async (budget: RateBudget): Promise<void> => {
    while (Date.now() < end) {
      const tokens = 100 + Math.floor(pick() * 4_900);
      if (await budget.acquire(tokens)) sent.push({ at: Date.now(), tokens });
      // The request itself takes a while.
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.floor(pick() * 200)));
    }
  };
  const running = Promise.all(budgets.map(caller));
  await vi.advanceTimersByTimeAsync(minutes * MINUTE + MINUTE);
  await running;
  return sent;
}

describe('createRateBudget', () => {
  it('never sends more requests or tokens in any minute than the limits, within one request, whoever shares it', async () => {
    const budget = createRateBudget({ requestsPerMinute: 300, tokensPerMinute: 200_000 });
    const sent = await drive([budget, budget, budget], 5, 7);
    const busiest = busiestMinute(sent);
    expect(busiest.requests).toBeLessThanOrEqual(300 + 1);
    expect(busiest.tokens).toBeLessThanOrEqual(200_000 + 5_000);
    // And it is a pace, not a trickle: the token limit binds, and most of it is used.
    expect(busiest.tokens).toBeGreaterThan(0.9 * 200_000);
  });

  it('requests per minute bind when tokens are plentiful', async () => {
    const budget = createRateBudget({ requestsPerMinute: 120 });
    const sent = await drive([budget, budget], 3, 11);
    expect(busiestMinute(sent).requests).toBeLessThanOrEqual(121);
    expect(busiestMinute(sent).requests).toBeGreaterThanOrEqual(115);
    // Evenly: one request each half second, not a burst at the top of the minute.
    const gaps = sent.slice(1).map((one, index) => one.at - (sent[index]?.at ?? 0));
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(500);
  });

  it('one budget per worker lets the workers together exceed the limit; one shared budget does not', async () => {
    const limits = { requestsPerMinute: 60, tokensPerMinute: 100_000 };
    const own = await drive([createRateBudget(limits), createRateBudget(limits)], 2, 3);
    const shared = createRateBudget(limits);
    const together = await drive([shared, shared], 2, 3);
    expect(busiestMinute(own).requests).toBeGreaterThan(61);
    expect(busiestMinute(together).requests).toBeLessThanOrEqual(61);
  });

  it('an aborted wait resolves false and keeps its reservation (the budget errs on the safe side)', async () => {
    const budget = createRateBudget({ requestsPerMinute: 60 });
    expect(await budget.acquire(0)).toBe(true);
    const stop = new AbortController();
    const waiting = budget.acquire(0, stop.signal);
    stop.abort();
    expect(await waiting).toBe(false);
    const started = Date.now();
    const third = budget.acquire(0);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await third).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
  });

  it('counts tokens with countTokens, or about four characters a token', () => {
    expect(createRateBudget({}).countTokens('a'.repeat(10))).toBe(3);
    expect(createRateBudget({ countTokens: (text) => text.split(' ').length }).countTokens('one two three')).toBe(3);
    // A counter that gives no number: the estimate stands in.
    expect(createRateBudget({ countTokens: () => Number.NaN }).countTokens('abcd')).toBe(1);
  });

  it('refuses bad limits, naming them', () => {
    expect(() => createRateBudget({ requestsPerMinute: 0 })).toThrow(SyncArgumentError);
    expect(() => createRateBudget({ tokensPerMinute: Number.POSITIVE_INFINITY })).toThrow(/tokensPerMinute/);
    expect(() => createRateBudget({ countTokens: 5 } as unknown as Parameters<typeof createRateBudget>[0])).toThrow(/countTokens/);
    expect(() => createRateBudget({ requestPerMinute: 5 } as unknown as Parameters<typeof createRateBudget>[0])).toThrow(/requestPerMinute/);
  });
});

describe('fitToBudget', () => {
  it('halves a batch until each request fits the tokens per minute; an input over it alone is too large', () => {
    const tokens = [100, 100, 100, 100, 900, 100, 2_000, 100];
    const { requests, tooLarge } = fitToBudget(tokens.map((count, index) => ({ index, count })), ({ count }) => count, 1_000);
    expect(requests.map((request) => request.map(({ index }) => index))).toEqual([[0, 1, 2, 3], [4, 5], [7]]);
    expect(tooLarge.map(({ index }) => index)).toEqual([6]);
    expect(fitToBudget([1, 2, 3], (count) => count, undefined)).toEqual({ requests: [[1, 2, 3]], tooLarge: [] });
  });
});
