import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { holdLease, leaseDeadlineMs, leaseMarginMs, type LeaseEnd, type LeaseOptions } from '../../src/worker/lease.js';

/* The worker's own view of a lease: pure timing, with fake timers and a renewal double (no database). */

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

function held(renew: LeaseOptions['renew'], leaseMs = 3_000) {
  const ends: LeaseEnd[] = [];
  const stopping = new AbortController();
  const lease = holdLease({ leaseMs, grantedAtMs: Date.now(), renew, stopping: stopping.signal, onEnd: (end) => { ends.push(end); } });
  return { lease, ends, stopping };
}

describe('a held lease', () => {
  it('stops being counted on a tenth of it (at most 5 s) before it ends by the worker\'s clock', () => {
    expect(leaseMarginMs(3_000)).toBe(300);
    expect(leaseMarginMs(60_000)).toBe(5_000);
    expect(leaseDeadlineMs(1_000, 3_000)).toBe(3_700);
  });

  it('is renewed every third of it while renewals succeed, and never ends', async () => {
    let renewals = 0;
    const { lease, ends } = held(() => { renewals += 1; return Promise.resolve(true); });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(renewals).toBe(10);
    expect(lease.ended()).toBeUndefined();
    expect(lease.signal.aborted).toBe(false);
    await lease.stop();
    expect(ends).toEqual([]);
  });

  it('ends as lost when a renewal finds the claim gone: the signal aborts, renewals stop, told once', async () => {
    let renewals = 0;
    const { lease, ends } = held(() => { renewals += 1; return Promise.resolve(false); });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(lease.ended()).toBe('lost');
    expect(lease.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(renewals).toBe(1);
    expect(ends).toEqual(['lost']);
    await lease.stop();
  });

  it('runs out when no renewal succeeds in time (a database that does not answer)', async () => {
    const { lease, ends } = held(() => Promise.resolve(undefined));
    await vi.advanceTimersByTimeAsync(2_699);
    expect(lease.ended()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(lease.ended()).toBe('expired');
    expect(lease.signal.aborted).toBe(true);
    expect(ends).toEqual(['expired']);
    await lease.stop();
  });

  it('a renewal that answers late counts from when it was sent, not from when it answered', async () => {
    // Renewals take 1.5 s: the one sent at 1 s answers at 2.5 s, and its lease is counted from 1 s
    // (ends at 3.7 s); the one sent at 3 s has not answered by then.
    const { lease } = held(() => new Promise((resolve) => { setTimeout(() => { resolve(true); }, 1_500); }));
    await vi.advanceTimersByTimeAsync(3_699);
    expect(lease.ended()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(lease.ended()).toBe('expired');
    // The renewal still in flight answers; stop() waits for it.
    const stopped = lease.stop();
    await vi.advanceTimersByTimeAsync(1_500);
    await stopped;
  });

  it('stopping the worker aborts the signal but ends nothing; stop() ends the renewals and waits for one in flight', async () => {
    let renewals = 0;
    let answered = false;
    const { lease, ends, stopping } = held(() => {
      renewals += 1;
      return new Promise((resolve) => { setTimeout(() => { answered = true; resolve(true); }, 200); });
    });
    stopping.abort();
    expect(lease.signal.aborted).toBe(true);
    expect(lease.ended()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_000);
    const stopped = lease.stop();
    await vi.advanceTimersByTimeAsync(200);
    await stopped;
    expect(answered).toBe(true);
    const after = renewals;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(renewals).toBe(after);
    expect(ends).toEqual([]);
  });
});
