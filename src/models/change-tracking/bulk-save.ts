import { type Document, type mongo } from 'mongoose';
import { type StoredTool } from '../../sync/stored-tool.js';
import { type ToolModelType } from './bulk-write.js';
import { endSave, showStoredSyncMetadata, type ToolDocument } from './document-writes.js';
import { bulkSaves, newBulkSave } from './save-marks.js';
import { settleAfterWrite } from './settle-after-write.js';

type BulkSave = (this: ToolModelType, documents: Document[], options?: Record<string, unknown>) => Promise<unknown>;

/** Mongoose's own bulkSave, the first up the model's prototype chain that is not this one. */
function mongooseBulkSave(model: ToolModelType): BulkSave {
  let owner: unknown = Object.getPrototypeOf(model);
  while (owner !== null && owner !== undefined) {
    const found = (owner as { bulkSave?: unknown }).bulkSave;
    if (typeof found === 'function' && found !== trackedBulkSave) return found as BulkSave;
    owner = Object.getPrototypeOf(owner);
  }
  throw new Error('tool-sync: this version of Mongoose has no Model.bulkSave to track');
}

/**
 * `Model.bulkSave`, tracked like `save`: Mongoose runs each document's save hooks and sends
 * their updates as one `bulkWrite`, run inside this call's context so that the bulkWrite hook
 * knows them and adds each document's marks to its own operation (see save-marks.ts). The tools
 * it marked are settled together afterwards, with one read, also when the bulk failed part way
 * (whatever Mongoose reports of each: a refused one is found unchanged), and their documents show
 * the settled state.
 */
export async function trackedBulkSave(this: unknown, documents: Document[], options?: Record<string, unknown>): Promise<unknown> {
  const model = this as ToolModelType;
  const bulkSave = newBulkSave(documents);
  try {
    return await bulkSaves.run(bulkSave, () => mongooseBulkSave(model).call(model, documents, options));
  } finally {
    for (const doc of bulkSave.documents) endSave(doc);
    if (bulkSave.toSettle.size > 0) {
      const byId = new Map([...bulkSave.toSettle].map((doc) => [String(doc._id), doc as ToolDocument]));
      const show = (stored: StoredTool): void => {
        const doc = byId.get(String(stored._id));
        if (doc !== undefined) showStoredSyncMetadata(doc, stored);
      };
      const session = (options?.session ?? null) as Parameters<typeof settleAfterWrite>[2];
      const filter = { _id: { $in: [...bulkSave.toSettle].map((doc) => doc._id as unknown) } } as mongo.Filter<mongo.Document>;
      await settleAfterWrite(model, filter, session, show);
    }
  }
}
