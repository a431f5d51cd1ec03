import { type ITool } from '../../models/types.js';
import { COLLECTION_FIELDS } from '../../sync/collection-fields.js';
import { type SyncCollectionName } from '../../sync/vocabulary.js';

/** Marks text that the simulated pipeline refuses as invalid (never retried until edited). */
export const INVALID_MARKER = '\u0000';

export interface FailureRates {
  embeddingTimeout: number;
  rateLimit: number;
  qdrantOutage: number;
}

/**
 * A SIMULATION of the embedding API and of Qdrant, for the demo: no network, no vectors worth
 * keeping. It fails the way the real ones do (timeouts, HTTP 429, refused connections and 503s
 * during an outage) at the given rates, so that the real transitions get exercised.
 */
export class SimulatedSyncTarget {
  /** The name its vectors are recorded under (markCollectionSynced's `embeddingModel`). */
  static readonly MODEL = 'simulated-embedder-v1';
  /** The model the demo migrates to. */
  static readonly NEXT_MODEL = 'simulated-embedder-v2';
  private outageCallsLeft = 0;
  public readonly stored = new Map<string, number[]>();

  constructor(private readonly random: () => number, private readonly rates: FailureRates) {}

  /** The text a collection's embedding is made from: its fields, in COLLECTION_FIELDS order. */
  static textFor(tool: ITool, collection: SyncCollectionName): string {
    return COLLECTION_FIELDS[collection]
      .map((field) => {
        const value: unknown = tool.get(field);
        return Array.isArray(value) ? value.join('; ') : typeof value === 'string' ? value : '';
      })
      .filter((text) => text !== '')
      .join('\n');
  }

  /**
   * Refuses text the embedding API would refuse (HTTP 400): a `ValidationError`, which
   * classifySyncError records as VALIDATION_ERROR (never retried until the content changes).
   */
  validate(text: string): void {
    if (!text.includes(INVALID_MARKER)) return;
    throw Object.assign(new Error('input contains a NUL character the embedding API rejects'), { name: 'ValidationError' });
  }

  async embed(text: string): Promise<number[]> {
    await Promise.resolve();
    const roll = this.random();
    if (roll < this.rates.embeddingTimeout) throw new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    if (roll < this.rates.embeddingTimeout + this.rates.rateLimit) {
      throw Object.assign(new Error('429 Too Many Requests'), { status: 429, headers: { 'retry-after': '1' } });
    }
    return Array.from({ length: 8 }, (_, i) => (text.charCodeAt(i % Math.max(1, text.length)) % 97) / 97);
  }

  async upsert(collection: SyncCollectionName, pointId: string, vector: number[]): Promise<void> {
    await Promise.resolve();
    this.maybeOutage();
    this.stored.set(`${collection}/${pointId}`, vector);
  }

  /** Removes a point (none there is fine, as in Qdrant). */
  async remove(collection: SyncCollectionName, pointId: string): Promise<void> {
    await Promise.resolve();
    this.maybeOutage();
    this.stored.delete(`${collection}/${pointId}`);
  }

  /** Qdrant goes away now and then, for three calls. */
  private maybeOutage(): void {
    if (this.outageCallsLeft === 0 && this.random() < this.rates.qdrantOutage) this.outageCallsLeft = 3;
    if (this.outageCallsLeft > 0) {
      this.outageCallsLeft -= 1;
      throw this.outageCallsLeft % 2 === 0
        ? Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6333'), { code: 'ECONNREFUSED' })
        : Object.assign(new Error('503 Service Unavailable'), { status: 503 });
    }
  }
}
