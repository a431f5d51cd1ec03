/**
 * What a FerretDB build says while it runs: a line at least every `everyMs` (10 s by default) with
 * the step, how far it is (counted from Go's own output), the time so far and an estimate of what
 * is left. The estimate is the step's own rate once it has one; before that, what the steps took
 * on a 2-core machine (a cold module cache: about 3 minutes of downloads, then about 2 of compiling).
 */

/** Seconds a step took before it reports progress of its own, measured on a 2-core machine (2026-12). */
export const BUILD_STEP_PRIORS_S = { download: 180, compile: 140 } as const;
export type BuildStep = keyof typeof BUILD_STEP_PRIORS_S;
/** Seconds a step goes on after its last unit: the compile links the binary (10 to 20 s, measured here). */
const STEP_TAIL_S: Record<BuildStep, number> = { download: 0, compile: 15 };

const STEP_NAMES: Record<BuildStep, string> = {
  download: 'downloading its Go modules',
  compile: 'compiling',
};
const STEP_UNITS: Record<BuildStep, string> = { download: 'modules', compile: 'packages' };
const STEP_ORDER: readonly BuildStep[] = ['download', 'compile'];

/** `95 s` as `1 min 35 s`; under a minute, `35 s`. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return seconds % 60 === 0 ? `${minutes} min` : `${minutes} min ${seconds % 60} s`;
}

export interface BuildProgressOptions {
  log: (line: string) => void;
  /** The longest silence between two lines (default 10 s). */
  everyMs?: number;
  now?: () => number;
}

export interface BuildProgress {
  /** A new step begins; `total` is how many units it has, where Go can say beforehand (about). */
  step(step: BuildStep, total?: number): void;
  /** One more unit of the current step is done. */
  advance(): void;
  /** The line a heartbeat prints now. */
  line(): string;
  elapsedMs(): number;
  stop(): void;
}

export function buildProgress({ log, everyMs = 10_000, now = Date.now }: BuildProgressOptions): BuildProgress {
  const startedAt = now();
  let current: BuildStep = 'download';
  let stepStartedAt = startedAt;
  let done = 0;
  let total: number | undefined;
  let lastLineAt = startedAt;

  const left = (): number => {
    const later = STEP_ORDER.slice(STEP_ORDER.indexOf(current) + 1).reduce((sum, step) => sum + BUILD_STEP_PRIORS_S[step] * 1000, 0);
    const elapsed = now() - stepStartedAt;
    // The step's own rate once a few units are done; else what it took on the machine measured.
    let thisStep = Math.max(0, BUILD_STEP_PRIORS_S[current] * 1000 - elapsed);
    if (total !== undefined && done >= total) thisStep = STEP_TAIL_S[current] * 1000;
    else if (total !== undefined && done >= 3) thisStep = (elapsed / done) * (total - done) + STEP_TAIL_S[current] * 1000;
    return thisStep + later;
  };

  const line = (): string => {
    const counted = total === undefined ? (done > 0 ? `, ${done} ${STEP_UNITS[current]} so far` : '') : `, ${Math.min(done, total)} of about ${total} ${STEP_UNITS[current]}`;
    const remaining = left();
    const estimate = remaining < 5_000 ? 'nearly done' : `about ${formatDuration(remaining)} left`;
    return `building FerretDB: ${STEP_NAMES[current]}${counted} (${formatDuration(now() - startedAt)} so far, ${estimate})`;
  };

  const say = (): void => {
    lastLineAt = now();
    log(line());
  };
  // Checked often, printed when the last line is `everyMs` old: silence never lasts longer.
  const timer = setInterval(() => { if (now() - lastLineAt >= everyMs) say(); }, Math.min(1_000, everyMs));
  timer.unref();

  return {
    step(step, count) {
      current = step;
      stepStartedAt = now();
      done = 0;
      total = count;
      say();
    },
    advance() { done += 1; },
    line,
    elapsedMs: () => now() - startedAt,
    stop() { clearInterval(timer); },
  };
}
