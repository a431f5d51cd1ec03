import { type ReturnModelType } from '@typegoose/typegoose';
import { type mongo, type Query } from 'mongoose';
import { type Tool } from '../tool.js';
import { recordTombstones, retireLiving, type Recorded } from '../tombstones.js';
import { type ToolDocument } from './document-writes.js';
import { refuseUnacknowledged } from './write-concern.js';

type ToolModelType = ReturnModelType<typeof Tool>;
type ToolQuery = Query<unknown, unknown>;

/** Query deletes; `findByIdAndDelete` is a `findOneAndDelete`. */
export const DELETE_OPERATIONS = ['deleteOne', 'deleteMany', 'findOneAndDelete'] as const;

/** The tools each delete tombstoned, from its pre hook to its post hook. */
const tombstoned = new WeakMap<object, Recorded>();

const modelOf = (query: ToolQuery): ToolModelType => query.model as unknown as ToolModelType;

/**
 * Before a delete is sent: tombstones for the tools it may delete that have vectors. The delete
 * itself reaches the server as it was given; if the tombstones cannot be written, it is not sent.
 */
export async function beforeQueryDelete(this: ToolQuery): Promise<void> {
  const options = this.getOptions() as { session?: mongo.ClientSession; collation?: mongo.CollationOptions };
  // Its tombstones are retired by a read after it, which must not run before it lands.
  refuseUnacknowledged(options, (this as unknown as { mongooseCollection?: unknown }).mongooseCollection, 'a delete');
  // Cast as Mongoose will cast it for the delete (a hex string becomes an ObjectId, a date string a
  // Date, strictQuery drops unknown paths): the raw read must match the tools the delete will.
  const filter = this.cast(this.model, this.getFilter()) as mongo.Filter<mongo.Document>;
  tombstoned.set(this, await recordTombstones(modelOf(this), filter, { session: options.session, collation: options.collation }));
}

/** After a delete, landed or not: the tombstones of tools still there are void. */
export async function afterQueryDelete(this: ToolQuery): Promise<void> {
  const recorded = tombstoned.get(this);
  tombstoned.delete(this);
  if (recorded !== undefined && recorded.ids.length > 0) await retireLiving(modelOf(this), recorded, (this.getOptions() as { session?: mongo.ClientSession }).session);
}

export async function afterQueryDeleteError(this: ToolQuery, error: unknown): Promise<void> {
  await afterQueryDelete.call(this);
  throw error;
}

const documentModel = (doc: ToolDocument): ToolModelType => doc.constructor as unknown as ToolModelType;

/** `doc.deleteOne()`: the same, for the one tool. */
export async function beforeDocumentDelete(this: ToolDocument, _doc?: unknown, options?: unknown): Promise<void> {
  refuseUnacknowledged(options, documentModel(this).collection, 'a delete');
  tombstoned.set(this, await recordTombstones(documentModel(this), { _id: this._id }, { session: this.$session() ?? undefined }));
}

export async function afterDocumentDelete(this: ToolDocument): Promise<void> {
  const recorded = tombstoned.get(this);
  tombstoned.delete(this);
  if (recorded !== undefined && recorded.ids.length > 0) await retireLiving(documentModel(this), recorded, this.$session() ?? undefined);
}

/**
 * A bulk's delete operations, before the bulk is sent: their tombstones (see bulk-write.ts). The
 * deletes' filters are read together, one read per collation, so a bulk's deletes cost a read, the
 * tombstones' bulks and a read after, however many there are.
 */
export async function tombstonesForBulk(
  model: ToolModelType,
  operations: Record<string, unknown>[],
  session: mongo.ClientSession | undefined,
): Promise<Recorded[]> {
  const byCollation = new Map<string, { collation: mongo.CollationOptions | undefined; filters: mongo.Filter<mongo.Document>[] }>();
  for (const operation of operations) {
    const body = (operation.deleteOne ?? operation.deleteMany) as { filter?: mongo.Filter<mongo.Document>; collation?: mongo.CollationOptions } | undefined;
    if (body?.filter === undefined) continue;
    const key = JSON.stringify(body.collation ?? null);
    const group = byCollation.get(key) ?? { collation: body.collation, filters: [] };
    // Cast as Mongoose casts a bulk's filters (see beforeQueryDelete).
    group.filters.push(model.find().cast(model, body.filter) as mongo.Filter<mongo.Document>);
    byCollation.set(key, group);
  }
  const recorded: Recorded[] = [];
  for (const { collation, filters } of byCollation.values()) {
    const filter = filters.length === 1 ? filters[0] ?? {} : { $or: filters };
    recorded.push(await recordTombstones(model, filter, { session, collation }));
  }
  return recorded;
}
