/*
 * A worker's hold on one claimed pair, as the worker itself can know it: the lease it was granted,
 * renewed every third of it, and ended early when a renewal finds the claim gone. The worker calls
 * the vector store for the pair only while this says the pair is held (the fencing rule; see
 * planReopen for what a write that lands late does).
 */

/** Why a pair is no longer held: a renewal found the claim gone, or no renewal came in time. */
export type LeaseEnd = 'lost' | 'expired';

/**
 * How long before its lease ends, by its own clock, a worker stops counting on it: a tenth of the
 * lease, at most 5 s (other workers' clocks may run a little ahead of this one's).
 */
export const leaseMarginMs = (leaseMs: number): number => Math.min(5_000, Math.floor(leaseMs / 10));

/** When a lease granted (or renewed) by a request sent at `sentAtMs` stops being counted on. */
export const leaseDeadlineMs = (sentAtMs: number, leaseMs: number): number => sentAtMs + leaseMs - leaseMarginMs(leaseMs);

export interface LeaseOptions {
  leaseMs: number;
  /** When the claim that granted the lease was sent (epoch ms, the worker's clock). */
  grantedAtMs: number;
  /** Renews the lease: true if renewed, false if the claim is gone, undefined if the renewal failed (tried again). */
  renew: () => Promise<boolean | undefined>;
  /** The worker's stop signal: aborts `signal` too. */
  stopping: AbortSignal;
  /** Told once when the pair stops being held. */
  onEnd: (end: LeaseEnd) => void;
  now?: () => number;
}

export interface HeldLease {
  /** Aborted when the worker stops or the pair is no longer held: for the calls made before the write. */
  readonly signal: AbortSignal;
  /** Why the pair is not held any more, or undefined while it is. */
  ended(): LeaseEnd | undefined;
  /** How long the worker can still count on the lease (0 once it ended). */
  remainingMs(): number;
  /** Stops counting on the lease now (too little is left for what comes next): it ends as `expired`. */
  expire(): void;
  /** Stops renewing and watching; resolves once a renewal in flight has ended (never racing a mark). Idempotent. */
  stop(): Promise<void>;
}

export function holdLease(options: LeaseOptions): HeldLease {
  const now = options.now ?? Date.now;
  const aborter = new AbortController();
  let end: LeaseEnd | undefined;
  let stopped = false;
  let pending: Promise<void> | undefined;
  let expiry: ReturnType<typeof setTimeout> | undefined;
  let deadlineMs = leaseDeadlineMs(options.grantedAtMs, options.leaseMs);

  const finish = (why: LeaseEnd): void => {
    if (end !== undefined || stopped) return;
    end = why;
    aborter.abort();
    options.onEnd(why);
  };
  const watchUntil = (until: number): void => {
    deadlineMs = until;
    if (expiry !== undefined) clearTimeout(expiry);
    expiry = setTimeout(() => { finish('expired'); }, Math.max(0, until - now()));
  };
  const onStop = (): void => { aborter.abort(); };
  if (options.stopping.aborted) aborter.abort();
  else options.stopping.addEventListener('abort', onStop, { once: true });
  watchUntil(deadlineMs);

  const renewOnce = async (): Promise<void> => {
    const sentAtMs = now();
    const renewed = await options.renew();
    if (stopped || end !== undefined) return;
    if (renewed === true) watchUntil(leaseDeadlineMs(sentAtMs, options.leaseMs));
    else if (renewed === false) finish('lost');
  };
  const timer = setInterval(() => {
    if (pending !== undefined || end !== undefined) return;
    pending = renewOnce().finally(() => { pending = undefined; });
  }, Math.max(1, Math.floor(options.leaseMs / 3)));

  return {
    signal: aborter.signal,
    ended: () => end,
    remainingMs: () => (end === undefined ? Math.max(0, deadlineMs - now()) : 0),
    expire: () => { finish('expired'); },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      if (expiry !== undefined) clearTimeout(expiry);
      options.stopping.removeEventListener('abort', onStop);
      await pending;
    },
  };
}
