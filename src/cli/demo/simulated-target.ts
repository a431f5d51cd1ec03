import { type SyncCollectionName } from '../../sync/vocabulary.js';

/** Marks text that the simulated pipeline refuses as invalid (never retried until edited). */
export const INVALID_MARKER = '\u0000';

export interface FailureRates {
  embeddingTimeout: number;
  rateLimit: number;
  qdrantOutage: number;
}

/** A vector of the text (a few numbers from its characters): the simulation keeps nothing worth searching. */
const vectorOf = (text: string): number[] => Array.from({ length: 8 }, (_, i) => (text.charCodeAt(i % Math.max(1, text.length)) % 97) / 97);

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

  /**
   * Refuses text the embedding API would refuse (HTTP 400): a `ValidationError`, which
   * classifySyncError records as VALIDATION_ERROR (never retried until the content changes).
   */
  validate(text: string): void {
    if (!text.includes(INVALID_MARKER)) return;
    throw Object.assign(new Error('input contains a NUL character the embedding API rejects'), { name: 'ValidationError' });
  }

  /**
   * One request for many texts (OpenAI's `input: [...]`): it fails as a whole as `embed` does (a
   * timeout, a 429), and a text the API refuses gets an Error in its place.
   */
  async embedBatch(texts: string[]): Promise<(number[] | Error)[]> {
    await Promise.resolve();
    this.maybeFail();
    return texts.map((text) => {
      try {
        this.validate(text);
        return vectorOf(text);
      } catch (error) {
        return error as Error;
      }
    });
  }

  /** Many points in one request (Qdrant's `upsert` of `points`): all stored, or none when Qdrant is down. */
  async upsertBatch(collection: SyncCollectionName, points: { id: string; vector: number[] }[]): Promise<void> {
    await Promise.resolve();
    this.maybeOutage();
    for (const { id, vector } of points) this.stored.set(`${collection}/${id}`, vector);
  }

  /** Removes many points in one request (none there is fine, as in Qdrant). */
  async removeBatch(collection: SyncCollectionName, ids: string[]): Promise<void> {
    await Promise.resolve();
    this.maybeOutage();
    for (const id of ids) this.stored.delete(`${collection}/${id}`);
  }

  /** The embedding API times out or limits the rate now and then. */
  private maybeFail(): void {
    const roll = this.random();
    if (roll < this.rates.embeddingTimeout) throw new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    if (roll < this.rates.embeddingTimeout + this.rates.rateLimit) {
      throw Object.assign(new Error('429 Too Many Requests'), { status: 429, headers: { 'retry-after': '1' } });
    }
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
