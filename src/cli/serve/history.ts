import { type SyncStats } from '../../models/tool-queries.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName } from '../../sync/vocabulary.js';

/** One sample of the sparkline: when, and the synced pairs (tool × vector collection) of each collection then. */
export interface HistorySample {
  at: number;
  synced: Record<SyncCollectionName, number>;
}

/** How far back the sparkline reaches. */
export const HISTORY_WINDOW_MS = 15 * 60 * 1000;
/** At most this many samples are kept, whatever the sampling interval (a short one would otherwise keep thousands). */
export const HISTORY_MAX_SAMPLES = 600;

/**
 * The server's own memory of the synced pairs over the last minutes (nothing in the database
 * remembers past counts): samples older than the window go, and when samples come faster than
 * the window over the cap allows, every other one is dropped, so the line still spans the window.
 */
export class SyncHistory {
  private samples: HistorySample[] = [];

  constructor(private readonly windowMs = HISTORY_WINDOW_MS, private readonly maxSamples = HISTORY_MAX_SAMPLES) {}

  add(stats: SyncStats, at: number): void {
    const synced = Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, stats.byCollection[name].synced])) as Record<SyncCollectionName, number>;
    this.samples.push({ at, synced });
    this.samples = this.samples.filter((sample) => sample.at > at - this.windowMs);
    // Thinned from the oldest half, keeping the newest samples at full resolution.
    if (this.samples.length > this.maxSamples) {
      const half = Math.floor(this.samples.length / 2);
      this.samples = [...this.samples.slice(0, half).filter((_, i) => i % 2 === 0), ...this.samples.slice(half)];
    }
  }

  list(): readonly HistorySample[] {
    return this.samples;
  }
}
