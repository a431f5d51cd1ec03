/** Timing and summary statistics for the benchmarks. */

export interface LatencySummary {
  samples: number;
  medianMs: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
}

/** Nearest-rank percentile of sorted values (p in 0..100). */
function percentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? Number.NaN;
}

export function summarize(durationsMs: number[]): LatencySummary {
  const sorted = [...durationsMs].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    medianMs: round(percentile(sorted, 50)),
    p95Ms: round(percentile(sorted, 95)),
    minMs: round(sorted[0] ?? Number.NaN),
    maxMs: round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** Three significant decimals at most; results.json stays readable. */
export function round(value: number, digits = 3): number {
  return Number(value.toFixed(digits));
}

export async function timed<T>(run: () => T | Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await run();
  return { ms: performance.now() - started, value };
}

/** Untimed work around each sample: bookkeeping before it, undoing what it changed after it. */
export interface SampleHooks {
  before?: () => void;
  after?: () => Promise<void>;
}

/**
 * Runs `run` repeatedly: at least `minSamples` times, then while the budget lasts, at most
 * `maxSamples` times. Slow engines get fewer samples instead of an endless run. The hooks are
 * not timed, but spend the budget: it bounds the bench's wall time.
 */
export async function sampleLatency(
  run: () => Promise<unknown>,
  limits: { minSamples: number; maxSamples: number; budgetMs: number },
  hooks: SampleHooks = {},
): Promise<LatencySummary> {
  const durations: number[] = [];
  const started = performance.now();
  while (
    durations.length < limits.minSamples
    || (durations.length < limits.maxSamples && performance.now() - started < limits.budgetMs)
  ) {
    hooks.before?.();
    durations.push((await timed(run)).ms);
    await hooks.after?.();
  }
  return summarize(durations);
}

/**
 * Runs `step(i)` for i = 0, 1, … up to `count` or until the budget is spent, one at a time.
 * Returns how many ran and how long they took.
 */
export async function runSequence(
  count: number,
  budgetMs: number,
  step: (index: number) => Promise<unknown>,
): Promise<{ done: number; ms: number; completed: boolean }> {
  const started = performance.now();
  let done = 0;
  while (done < count && performance.now() - started < budgetMs) {
    await step(done);
    done += 1;
  }
  return { done, ms: performance.now() - started, completed: done === count };
}

export const perSecond = (count: number, ms: number): number => round((count * 1000) / ms, 1);

export const megabytes = (bytes: number): number => round(bytes / (1024 * 1024), 1);
