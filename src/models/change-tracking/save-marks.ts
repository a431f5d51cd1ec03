import { AsyncLocalStorage } from 'node:async_hooks';
import { type Document } from 'mongoose';
import { isPlainObject } from './update-analysis.js';

/**
 * The marks of a loaded tool's save (`lastModifiedFields`, `syncMetadata.updatedAt`, a pending
 * hash check) travel in the save's own update, added to what Mongoose computed from the
 * document, and are never set on the document before: a save the server refuses then leaves the
 * stored tool as it was, and a tool loaded without its metadata gets its marks on the stored
 * metadata (set on the document, Mongoose would write the defaults it shows).
 *
 * `save()` computes its update with the document's `$__delta()`, which is wrapped for that one
 * save; `Model.bulkSave()` computes each document's update the same way and sends them as one
 * `bulkWrite`, whose hook adds each document's marks to its operation (see bulk-write.ts).
 */

type Marks = Record<string, unknown>;
type Delta = [Record<string, unknown>, Record<string, unknown>, ...unknown[]] | undefined | null;
type DeltaOf = (this: Document, ...args: unknown[]) => Delta;

/** The marks of each document's save in progress. */
const pending = new WeakMap<Document, Marks>();

const DELTA = '$__delta';

/** An update with the marks added to its `$set`. */
export function withMarks(update: Record<string, unknown>, marks: Marks): Record<string, unknown> {
  const $set = isPlainObject(update.$set) ? update.$set : {};
  return { ...update, $set: { ...$set, ...marks } };
}

/**
 * Records the marks of a document's save; outside a bulkSave, the document's next update (the
 * save's) carries them.
 */
export function markSave(doc: Document, marks: Marks): void {
  pending.set(doc, marks);
  if (bulkSaveOf(doc) !== undefined) return;
  const original = (Object.getPrototypeOf(doc) as Record<string, unknown>)[DELTA];
  if (typeof original !== 'function') {
    throw new Error('tool-sync: this version of Mongoose computes no save update ($__delta) to add the sync marks to');
  }
  const deltaOf = original as DeltaOf;
  Object.defineProperty(doc, DELTA, {
    configurable: true,
    writable: true,
    value(this: Document, ...args: unknown[]): Delta {
      const delta = deltaOf.apply(this, args);
      if (delta === null || delta === undefined) return delta;
      const [where, update, ...rest] = delta;
      return [where, withMarks(update, marks), ...rest];
    },
  });
}

/** The marks recorded for a document's save, if one is in progress. */
export const marksOf = (doc: Document): Marks | undefined => pending.get(doc);

/** The save is over (landed or not): its marks are forgotten, and the document computes updates as Mongoose does. */
export function forgetMarks(doc: Document): void {
  pending.delete(doc);
  if (Object.prototype.hasOwnProperty.call(doc, DELTA)) Reflect.deleteProperty(doc, DELTA);
}

/** A `bulkSave` in progress: its documents (and by `_id`), and those to settle once it is over. */
export interface BulkSave {
  documents: Set<Document>;
  byId: Map<string, Document>;
  toSettle: Set<Document>;
}

export function newBulkSave(documents: unknown): BulkSave {
  const given = (Array.isArray(documents) ? documents : []) as Document[];
  return { documents: new Set(given), byId: new Map(given.map((doc) => [String(doc._id), doc])), toSettle: new Set() };
}

/** The bulkSave a call runs inside (the bulkWrite it sends, and its documents' save hooks). */
export const bulkSaves = new AsyncLocalStorage<BulkSave>();

/** The bulkSave a document is being saved by, if any. */
export function bulkSaveOf(doc: Document): BulkSave | undefined {
  const current = bulkSaves.getStore();
  return current?.documents.has(doc) === true ? current : undefined;
}
