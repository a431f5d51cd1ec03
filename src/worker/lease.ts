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

export interface BatchLeaseOptions<K> {
  /** The pairs held, claimed together (one lease: granted, renewed and run out together). */
  keys: readonly K[];
  leaseMs: number;
  /** When the claim that granted the lease was sent (epoch ms, the worker's clock). */
  grantedAtMs: number;
  /** Renews the lease of `held`: the keys renewed (one missing was lost), or undefined if the renewal failed (tried again). */
  renew: (held: K[]) => Promise<ReadonlySet<K> | undefined>;
  /** The worker's stop signal: aborts `signal` too. */
  stopping: AbortSignal;
  /** Told once per key when it stops being held. */
  onEnd: (key: K, end: LeaseEnd) => void;
  now?: () => number;
}

export interface HeldBatchLease<K> {
  /** Aborted when the worker stops or no key is held any more: for the calls made before the write. */
  readonly signal: AbortSignal;
  /** Why `key` is not held any more, or undefined while it is. */
  ended(key: K): LeaseEnd | undefined;
  /** The keys still held. */
  held(): K[];
  /** How long the worker can still count on the lease (0 once no key is held). */
  remainingMs(): number;
  /** Stops counting on the lease now (too little is left for what comes next): every key still held ends as `expired`. */
  expire(): void;
  /** Stops renewing and watching; resolves once a renewal in flight has ended (never racing a mark). Idempotent. */
  stop(): Promise<void>;
}

/**
 * A batch's hold on its pairs: renewed every third of the lease in one call for every pair still
 * held; a pair the renewal does not return is lost (the others go on); when no renewal succeeded
 * before the lease (less its margin) ran out, every pair still held has run out.
 */
export function holdBatchLease<K>(options: BatchLeaseOptions<K>): HeldBatchLease<K> {
  const now = options.now ?? Date.now;
  const aborter = new AbortController();
  const ends = new Map<K, LeaseEnd>();
  let stopped = false;
  let pending: Promise<void> | undefined;
  let expiry: ReturnType<typeof setTimeout> | undefined;
  let deadlineMs = leaseDeadlineMs(options.grantedAtMs, options.leaseMs);
  const held = (): K[] => options.keys.filter((key) => !ends.has(key));

  const finish = (keys: K[], why: LeaseEnd): void => {
    if (stopped) return;
    for (const key of keys) {
      if (ends.has(key)) continue;
      ends.set(key, why);
      options.onEnd(key, why);
    }
    if (held().length === 0) aborter.abort();
  };
  const watchUntil = (until: number): void => {
    deadlineMs = until;
    if (expiry !== undefined) clearTimeout(expiry);
    expiry = setTimeout(() => { finish(held(), 'expired'); }, Math.max(0, until - now()));
  };
  const onStop = (): void => { aborter.abort(); };
  if (options.stopping.aborted) aborter.abort();
  else options.stopping.addEventListener('abort', onStop, { once: true });
  watchUntil(deadlineMs);

  const renewOnce = async (): Promise<void> => {
    const sentAtMs = now();
    const asked = held();
    const renewed = await options.renew(asked);
    if (stopped || renewed === undefined) return;
    finish(asked.filter((key) => !renewed.has(key)), 'lost');
    if (held().length > 0) watchUntil(leaseDeadlineMs(sentAtMs, options.leaseMs));
  };
  const timer = setInterval(() => {
    if (pending !== undefined || held().length === 0) return;
    pending = renewOnce().finally(() => { pending = undefined; });
  }, Math.max(1, Math.floor(options.leaseMs / 3)));

  return {
    signal: aborter.signal,
    ended: (key) => ends.get(key),
    held,
    remainingMs: () => (held().length === 0 ? 0 : Math.max(0, deadlineMs - now())),
    expire: () => { finish(held(), 'expired'); },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      if (expiry !== undefined) clearTimeout(expiry);
      options.stopping.removeEventListener('abort', onStop);
      await pending;
    },
  };
}

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
  /** Stops counting on the lease now: it ends as `expired`. */
  expire(): void;
  /** Stops renewing and watching; resolves once a renewal in flight has ended (never racing a mark). Idempotent. */
  stop(): Promise<void>;
}

/** One pair's lease: a batch of one. */
export function holdLease(options: LeaseOptions): HeldLease {
  const key = 'pair';
  const lease = holdBatchLease({
    ...options,
    keys: [key],
    renew: async () => {
      const renewed = await options.renew();
      return renewed === undefined ? undefined : new Set(renewed ? [key] : []);
    },
    onEnd: (_key, end) => { options.onEnd(end); },
  });
  return { signal: lease.signal, ended: () => lease.ended(key), remainingMs: () => lease.remainingMs(), expire: () => { lease.expire(); }, stop: () => lease.stop() };
}
