import { isDeepStrictEqual } from 'node:util';
import mongoose, { Types } from 'mongoose';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import {
  aggregateSyncStatus,
  BUSINESS_FIELDS,
  computeContentHashes,
  SYNC_COLLECTION_NAMES,
  ToolModel,
  type SyncCollectionName,
  type SyncStatus,
  type Tool,
} from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { createSyncedTool } from '../helpers/sync.js';
import { toolInput } from '../helpers/tools.js';

/**
 * The differential test of the write path: every update form a caller may send goes once
 * through ToolModel and once through the raw driver onto a copy of the same stored tool. The
 * raw driver's outcome is what the server does with the write; ToolModel must store exactly the
 * same business fields (or refuse, and store nothing, when the server refuses), and its stored
 * sync state must describe the stored content: hashes of that content, transitions of the
 * collections whose hash changed, the aggregate overall status, and no pending hash check.
 */

useTestDatabase(import.meta.url);

type Doc = Record<string, unknown>;
type Ids = Types.ObjectId[];

const COPIES = 'tools_copy';
const db = (): mongoose.mongo.Db => {
  const connected = mongoose.connection.db;
  if (connected === undefined) throw new Error('not connected');
  return connected;
};
const tools = (): mongoose.mongo.Collection<Doc> => db().collection<Doc>('tools');
const copies = (): mongoose.mongo.Collection<Doc> => db().collection<Doc>(COPIES);

/** MongoDB's string order: UTF-8 bytes (binary collation), not `localeCompare`. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
const UNSORTED = ['b', 'B', 'a', 'é', 'Z'];

// ---------------------------------------------------------------------------------------------
// What the engine does: each capability is tried with the raw driver on a scratch collection and
// counts only if the server stores what MongoDB's documentation says it stores.

interface Probe { what: string; doc: Doc; filter?: Doc; update: Doc | Doc[]; options?: Doc; expected: Doc }

const PROBES = {
  pipeline: { what: 'an update pipeline', doc: { s: 'str' }, update: [{ $set: { s: { $concat: ['$s', '!'] } } }], expected: { s: 'str!' } },
  positional: { what: 'the positional $ operator', doc: { a: ['b', 'a'] }, filter: { a: 'a' }, update: { $set: { 'a.$': 'x' } }, expected: { a: ['b', 'x'] } },
  allPositional: { what: 'the all-positional $[] operator', doc: { a: ['b', 'a'] }, update: { $set: { 'a.$[]': 'x' } }, expected: { a: ['x', 'x'] } },
  arrayFilters: {
    what: '$[<identifier>] with arrayFilters',
    doc: { a: ['b', 'a'] },
    update: { $set: { 'a.$[e]': 'x' } },
    options: { arrayFilters: [{ e: 'a' }] },
    expected: { a: ['b', 'x'] },
  },
  pullCondition: {
    what: '$pull with a condition (here $in)',
    doc: { a: ['b', 'a', 'c'] },
    update: { $pull: { a: { $in: ['a', 'c'] } } },
    expected: { a: ['b'] },
  },
  pushPosition: {
    what: '$push with $position',
    doc: { a: ['b', 'a'] },
    update: { $push: { a: { $each: ['x'], $position: 0 } } },
    expected: { a: ['x', 'b', 'a'] },
  },
  pushSlice: { what: '$push with $slice', doc: { a: ['b', 'a'] }, update: { $push: { a: { $each: ['x'], $slice: 2 } } }, expected: { a: ['b', 'a'] } },
  pushSort: {
    what: '$push with $sort (in byte order)',
    doc: { a: UNSORTED },
    update: { $push: { a: { $each: [], $sort: 1 } } },
    expected: { a: [...UNSORTED].sort(byteOrder) },
  },
} satisfies Record<string, Probe>;
type Capability = keyof typeof PROBES;

interface Lack {
  reason: string;
  /** The server refuses the write (rather than silently doing something else). */
  refused: boolean;
}

/** Why the engine cannot run each capability (null: it can). */
const lacking = {} as Record<Capability, Lack | null>;

async function probe(capability: Capability): Promise<Lack | null> {
  const { what, doc, update, expected, ...rest } = PROBES[capability] as Probe;
  const scratch = db().collection<Doc>('differential_probe');
  const { insertedId } = await scratch.insertOne({ ...doc });
  try {
    await scratch.updateOne({ _id: insertedId, ...rest.filter }, update, rest.options ?? {});
  } catch (error) {
    return { refused: true, reason: `refuses ${what} for the raw driver too: ${error instanceof Error ? error.message : String(error)}` };
  }
  const stored = await scratch.findOne({ _id: insertedId }, { projection: { _id: 0 } });
  if (isDeepStrictEqual(stored, { ...doc, ...expected })) return null;
  const should = JSON.stringify({ ...doc, ...expected });
  return { refused: false, reason: `silently ignores ${what} for the raw driver too: it stored ${JSON.stringify(stored)} where MongoDB stores ${should}` };
}

beforeAll(async () => {
  for (const capability of Object.keys(PROBES) as Capability[]) lacking[capability] = await probe(capability);
  await db().collection('differential_probe').drop();
});

// ---------------------------------------------------------------------------------------------
// The forms.

type Operation = 'updateOne' | 'updateMany' | 'findOneAndUpdate' | 'replaceOne' | 'findOneAndReplace' | 'bulkWrite';

interface Seed {
  /** Fully synced first (so a content change must turn collections stale), or new (pending). */
  synced: boolean;
  /** Collections whose sync then failed (a content change sends them back in line with fresh retries). */
  failed?: SyncCollectionName[];
  fields?: Doc;
}

interface Form {
  name: string;
  /** The model method (and its driver twin); default: updateOne. */
  op?: Operation;
  /** The tools the write is given; default: one synced tool. */
  seeds?: Seed[];
  /** What the engine must support for the form to mean anything. */
  needs?: Capability[];
  /** The filter, given the `_id`s of the seeded tools in the collection written to; default: the first. */
  filter?: (ids: Ids) => Doc;
  update?: Doc | Doc[];
  /** A replacement, given the business fields both sides store before the write. */
  replacement?: (stored: Doc) => Doc;
  /** bulkWrite operations, given the `_id`s of the seeded tools in the collection written to. */
  operations?: (ids: Ids) => Doc[];
  options?: Doc;
  /** `id`s of tools an upsert may create. */
  upserts?: string[];
  /** A check of what the server stored (on the raw copy), beyond the comparison. */
  expectStored?: (copy: Doc) => void;
}

const opOf = (form: Form): Operation => form.op ?? 'updateOne';
/** The method returns a tool (or null), not a write result. */
const returnsTool = (form: Form): boolean => opOf(form) === 'findOneAndUpdate' || opOf(form) === 'findOneAndReplace';

const synced: Seed = { synced: true };
const byFirst = (ids: Ids): Doc => ({ _id: ids[0] });
const newId = (): string => String(toolInput().id);
/** A new tool's fields but its `id`, for upserts. */
const NEW_TOOL = {
  name: 'Upserted Tool',
  description: 'Made by an upsert.',
  category: 'upserts',
  tags: ['new'],
  functionality: ['f'],
  useCases: ['u'],
  interface: ['api'],
};
const upsertId = newId();
const upsertFindId = newId();
const upsertPipelineId = newId();
const upsertReplaceId = newId();
const upsertBulkId = newId();

const withoutKeys = (doc: Doc, keys: string[]): Doc => Object.fromEntries(Object.entries(doc).filter(([key]) => !keys.includes(key)));

/** The business fields of a stored tool, as a replacement document. */
const businessOf = (stored: Doc): Doc => Object.fromEntries(BUSINESS_FIELDS.filter((field) => field in stored).map((field) => [field, stored[field]]));

const FORMS: Form[] = [
  // $set / $unset
  { name: '$set of a content field', seeds: [{ synced: true, failed: ['interface'] }], update: { $set: { name: 'Renamed Tool', tags: ['x', 'y'] } } },
  { name: '$set of a non-content field', update: { $set: { url: 'https://example.org/moved' } } },
  { name: '$set of one array item by index', update: { $set: { 'useCases.0': 'ship faster' } } },
  { name: '$unset', seeds: [{ synced: true, fields: { longDescription: 'A long text.' } }], update: { $unset: { longDescription: '', tags: '' } } },
  { name: '$unset of an absent field', update: { $unset: { longDescription: '' } } },

  // $push and its modifiers
  { name: '$push of one value', update: { $push: { functionality: 'exports reports' } } },
  { name: '$push with $each', update: { $push: { functionality: { $each: ['exports reports', 'imports data'] } } } },
  { name: '$push with $each and $position', needs: ['pushPosition'], update: { $push: { useCases: { $each: ['first use'], $position: 0 } } } },
  { name: '$push with $each and a positive $slice', needs: ['pushSlice'], update: { $push: { functionality: { $each: ['b', 'c'], $slice: 2 } } } },
  { name: '$push with $each and a negative $slice', needs: ['pushSlice'], update: { $push: { functionality: { $each: ['b', 'c'], $slice: -2 } } } },
  {
    name: '$push with $sort stores MongoDB byte order',
    needs: ['pushSort'],
    update: { $push: { functionality: { $each: UNSORTED, $sort: 1 } } },
    expectStored: (copy) => {
      expect(copy.functionality).toEqual(['formats code', ...UNSORTED].sort(byteOrder));
    },
  },
  {
    name: '$push with $sort: -1, $position and $slice together',
    needs: ['pushSort', 'pushPosition', 'pushSlice'],
    seeds: [{ synced: true, fields: { useCases: UNSORTED } }],
    update: { $push: { useCases: { $each: ['c'], $position: 1, $slice: 4, $sort: -1 } } },
  },

  // $pop, $rename, $pull, $pullAll, $addToSet
  { name: '$pop of the last item', update: { $pop: { interface: 1 } } },
  { name: '$pop of the first item', update: { $pop: { tags: -1 } } },
  {
    name: '$rename of a content field onto another',
    seeds: [{ synced: true, fields: { longDescription: 'The longer text.' } }],
    update: { $rename: { longDescription: 'description' } },
  },
  { name: '$rename of an absent field', update: { $rename: { longDescription: 'description' } } },
  { name: '$pull of a value', update: { $pull: { tags: 'demo' } } },
  { name: '$pull with a condition ($in)', needs: ['pullCondition'], update: { $pull: { interface: { $in: ['cli', 'api'] } } } },
  { name: '$pull with a condition ($regex)', needs: ['pullCondition'], update: { $pull: { useCases: { $regex: '^keep' } } } },
  { name: '$pullAll', update: { $pullAll: { tags: ['demo', 'absent'], interface: ['web'] } } },
  { name: '$addToSet of a present value', update: { $addToSet: { interface: 'cli' } } },
  { name: '$addToSet of a new value', update: { $addToSet: { interface: 'api' } } },
  { name: '$addToSet with $each', update: { $addToSet: { tags: { $each: ['demo', 'new', 'new'] } } } },

  // Numeric and date operators on the (string and array) business fields: what the server does, nothing else.
  // (Mongoose casts a `$inc`/`$mul` operand to the path's type, "1" for a String path: the server refuses both writes, in
  // different words. On an absent String field the raw driver's write would store 1 where Mongoose's "1" is refused, so
  // that form compares Mongoose's casting, not this package: it is left out.)
  { name: '$inc of a string field', update: { $inc: { name: 1 } } },
  { name: '$mul of a string field', update: { $mul: { description: 2 } } },
  { name: '$min of a string field', update: { $min: { name: 'Aardvark' } } },
  { name: '$max of a string field', update: { $max: { name: 'zzz' } } },
  { name: '$max of an array field with a string', update: { $max: { tags: 'zzz' } } },
  { name: '$min of an array field with a string', update: { $min: { tags: 'aaa' } } },
  { name: '$currentDate of a string field', update: { $currentDate: { name: true } } },
  { name: '$currentDate as a timestamp', update: { $currentDate: { description: { $type: 'timestamp' } } } },

  // $setOnInsert, positional operators, pipelines
  { name: '$setOnInsert without an insert', update: { $setOnInsert: { name: 'Never Written' }, $set: { url: 'https://example.org/x' } } },
  {
    name: 'positional $',
    needs: ['positional'],
    filter: (ids) => ({ _id: ids[0], functionality: 'formats code' }),
    update: { $set: { 'functionality.$': 'formats more code' } },
  },
  { name: 'all-positional $[]', needs: ['allPositional'], update: { $set: { 'interface.$[]': 'api' } } },
  {
    name: '$[id] with arrayFilters',
    needs: ['arrayFilters'],
    seeds: [{ synced: true, fields: { useCases: ['one', 'two', 'one'] } }],
    update: { $set: { 'useCases.$[u]': 'three' } },
    options: { arrayFilters: [{ u: 'one' }] },
  },
  {
    name: 'a pipeline ($set with expressions, $unset)',
    needs: ['pipeline'],
    seeds: [{ synced: true, fields: { longDescription: 'Gone soon.' } }],
    update: [{ $set: { description: { $concat: ['$description', ' Now more.'] }, tags: { $reverseArray: '$tags' } } }, { $unset: 'longDescription' }],
  },
  {
    name: 'findOneAndUpdate with a pipeline, returning the document after',
    op: 'findOneAndUpdate',
    needs: ['pipeline'],
    update: [{ $set: { functionality: { $concatArrays: ['$functionality', ['piped']] } } }],
    options: { returnDocument: 'after' },
  },
  {
    name: 'updateMany with $[id] and arrayFilters',
    op: 'updateMany',
    needs: ['arrayFilters'],
    seeds: [synced, { synced: false }],
    filter: (ids) => ({ _id: { $in: ids } }),
    update: { $set: { 'tags.$[t]': 'renamed-tag' } },
    options: { arrayFilters: [{ t: 'demo' }] },
  },
  {
    name: 'a pipeline that changes no content',
    needs: ['pipeline'],
    update: [{ $set: { url: { $concat: ['$url', '/v2'] } } }],
  },

  // Other methods and several tools
  {
    name: 'updateMany over tools in different states',
    op: 'updateMany',
    seeds: [synced, { synced: false, failed: ['functionality'] }, { synced: true, failed: ['functionality', 'tools'] }],
    filter: (ids) => ({ _id: { $in: ids }, tags: 'demo' }),
    update: { $push: { functionality: 'exports reports' }, $set: { pricing: 'paid' } },
  },
  {
    name: 'updateMany that matches some tools',
    op: 'updateMany',
    seeds: [{ synced: true, fields: { interface: ['web'] } }, synced],
    filter: (ids) => ({ _id: { $in: ids }, interface: 'cli' }),
    update: { $addToSet: { interface: 'api' } },
  },
  { name: 'findOneAndUpdate returning the document before', op: 'findOneAndUpdate', update: { $pop: { functionality: 1 }, $set: { category: 'moved' } } },
  {
    name: 'findOneAndUpdate returning the document after',
    op: 'findOneAndUpdate',
    update: { $addToSet: { interface: 'sdk' } },
    options: { returnDocument: 'after' },
  },
  { name: 'findOneAndUpdate the server refuses', op: 'findOneAndUpdate', update: { $inc: { category: 1 } }, options: { returnDocument: 'after' } },
  { name: 'a write that matches nothing', filter: (ids) => ({ _id: ids[0], name: 'no such name' }), update: { $set: { name: 'Nope' } } },

  // Upserts
  {
    name: 'an upsert that inserts',
    seeds: [],
    filter: () => ({ id: upsertId }),
    update: { $set: { name: NEW_TOOL.name, description: NEW_TOOL.description }, $setOnInsert: withoutKeys(NEW_TOOL, ['name', 'description']) },
    options: { upsert: true },
    upserts: [upsertId],
  },
  {
    name: 'an upsert that matches an existing tool',
    filter: (ids) => ({ _id: ids[0] }),
    update: { $set: { name: 'Upsert Updated', description: 'Changed.', category: 'developer-tools' }, $setOnInsert: { id: 'never-inserted', tags: ['never'] } },
    options: { upsert: true },
  },
  {
    name: 'findOneAndUpdate upsert returning the new tool',
    op: 'findOneAndUpdate',
    seeds: [],
    filter: () => ({ id: upsertFindId }),
    update: { $setOnInsert: NEW_TOOL },
    options: { upsert: true, returnDocument: 'after' },
    upserts: [upsertFindId],
  },
  {
    name: 'a pipeline upsert',
    needs: ['pipeline'],
    seeds: [],
    filter: () => ({ id: upsertPipelineId }),
    update: [{ $set: NEW_TOOL }],
    options: { upsert: true },
    upserts: [upsertPipelineId],
  },

  // Replacements
  {
    name: 'replaceOne with changed content',
    op: 'replaceOne',
    replacement: (stored) => ({ ...businessOf(stored), name: 'Replaced Name', useCases: ['other use'] }),
  },
  { name: 'replaceOne with the same content', op: 'replaceOne', replacement: businessOf },
  {
    name: 'replaceOne with only the required fields',
    op: 'replaceOne',
    seeds: [{ synced: true, fields: { longDescription: 'Dropped by the replacement.' } }],
    replacement: (stored) => ({ id: stored.id, name: stored.name, description: stored.description, category: stored.category }),
  },
  {
    name: 'findOneAndReplace returning the document after',
    op: 'findOneAndReplace',
    replacement: (stored) => ({ ...businessOf(stored), interface: ['mobile'], tags: ['b', 'a'] }),
    options: { returnDocument: 'after' },
  },
  { name: 'findOneAndReplace returning the document before', op: 'findOneAndReplace', replacement: (stored) => ({ ...businessOf(stored), pricing: 'paid' }) },
  {
    name: 'replaceOne upsert that inserts',
    op: 'replaceOne',
    seeds: [],
    filter: () => ({ id: upsertReplaceId }),
    replacement: () => ({ id: upsertReplaceId, ...NEW_TOOL }),
    options: { upsert: true },
    upserts: [upsertReplaceId],
  },

  // bulkWrite
  {
    name: 'bulkWrite of update, replace and upsert operations',
    op: 'bulkWrite',
    seeds: [synced, synced, { synced: false }],
    operations: (ids) => [
      { updateOne: { filter: { _id: ids[0] }, update: { $push: { useCases: { $each: ['bulk use'] } } } } },
      { updateMany: { filter: { _id: { $in: ids } }, update: { $addToSet: { tags: 'bulk' }, $pull: { interface: 'web' } } } },
      { replaceOne: { filter: { _id: ids[2] }, replacement: { id: upsertBulkId.replace('tool-', 'replaced-'), ...NEW_TOOL } } },
      { updateOne: { filter: { id: upsertBulkId }, update: { $setOnInsert: NEW_TOOL }, upsert: true } },
    ],
    upserts: [upsertBulkId],
  },
  {
    name: 'bulkWrite with a pipeline update',
    op: 'bulkWrite',
    needs: ['pipeline'],
    operations: (ids) => [{ updateOne: { filter: { _id: ids[0] }, update: [{ $set: { name: { $toUpper: '$name' } } }] } }],
  },
  {
    name: 'bulkWrite whose second operation the server refuses',
    op: 'bulkWrite',
    seeds: [synced, synced],
    operations: (ids) => [
      { updateOne: { filter: { _id: ids[0] }, update: { $set: { name: 'First Done' } } } },
      { updateOne: { filter: { _id: ids[1] }, update: { $inc: { name: 1 } } } },
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Carrying a form out, on each side.

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

async function attempt(write: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await write() };
  } catch (error) {
    return { ok: false, error };
  }
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Each side gets objects of its own: Mongoose casts in place. */
const fresh = <T>(value: T): T => structuredClone(value);

function rawWrite(form: Form, ids: Ids, replacement: Doc | undefined): Promise<unknown> {
  const filter = (form.filter ?? byFirst)(ids);
  const options = fresh(form.options ?? {});
  const update = fresh(form.update ?? {}) as mongoose.mongo.UpdateFilter<Doc>;
  switch (opOf(form)) {
    case 'updateOne':
      return copies().updateOne(filter, update, options);
    case 'updateMany':
      return copies().updateMany(filter, update, options);
    case 'findOneAndUpdate':
      return copies().findOneAndUpdate(filter, update, options);
    case 'replaceOne':
      return copies().replaceOne(filter, fresh(replacement ?? {}), options);
    case 'findOneAndReplace':
      return copies().findOneAndReplace(filter, fresh(replacement ?? {}), options);
    case 'bulkWrite':
      return copies().bulkWrite((form.operations ?? (() => []))(ids) as mongoose.mongo.AnyBulkWriteOperation<Doc>[], options);
  }
}

async function modelWrite(form: Form, ids: Ids, replacement: Doc | undefined): Promise<unknown> {
  const filter = (form.filter ?? byFirst)(ids) as mongoose.QueryFilter<Tool>;
  // Mongoose 9 sends an update pipeline only when the caller says so; the driver needs no such option.
  const options = { ...fresh(form.options ?? {}), ...(Array.isArray(form.update) ? { updatePipeline: true } : {}) };
  const update = fresh(form.update ?? {}) as mongoose.UpdateQuery<Tool>;
  switch (opOf(form)) {
    case 'updateOne':
      return ToolModel.updateOne(filter, update, options);
    case 'updateMany':
      return ToolModel.updateMany(filter, update, options);
    case 'findOneAndUpdate':
      return ToolModel.findOneAndUpdate(filter, update, { ...options, lean: true });
    case 'replaceOne':
      return ToolModel.replaceOne(filter, fresh(replacement ?? {}), options);
    case 'findOneAndReplace':
      return ToolModel.findOneAndReplace(filter, fresh(replacement ?? {}), { ...options, lean: true });
    case 'bulkWrite':
      return ToolModel.bulkWrite((form.operations ?? (() => []))(ids) as mongoose.AnyBulkWriteOperation<Tool>[], options as mongoose.MongooseBulkWriteOptions);
  }
}

// ---------------------------------------------------------------------------------------------
// Comparing.

/** Written by Mongoose's timestamps and by the package, not by the caller's write. */
const NOT_COMPARED = new Set(['_id', '__v', 'createdAt', 'updatedAt', 'syncMetadata']);

/** Values two writes a few milliseconds apart store differently: times of now. */
function comparable(value: unknown): unknown {
  if (value instanceof Date) return Math.abs(value.getTime() - Date.now()) < 60_000 ? 'a date of now' : value.toISOString();
  if (value instanceof mongoose.mongo.Timestamp) return 'a timestamp';
  if (value instanceof Types.ObjectId) return value.toHexString();
  if (Array.isArray(value)) return value.map(comparable);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, comparable(item)]));
  return value;
}

/** Every field the caller's write can reach: the business fields and any other field it created. */
function userFields(doc: Doc | null): Doc | null {
  if (doc === null) return null;
  return Object.fromEntries(Object.entries(doc).filter(([key]) => !NOT_COMPARED.has(key)).map(([key, value]) => [key, comparable(value)]));
}

/** A stored document, every value and type exact. */
const exactly = (doc: Doc | null): string => mongoose.mongo.BSON.EJSON.stringify(doc, { relaxed: false });

const asDoc = (value: unknown): Doc | null => (typeof value === 'object' && value !== null ? (value as Doc) : null);

/** The parts of a result that say what the server did; `modifiedCount` separately (see below). */
function resultShape(form: Form, value: unknown): Doc | null {
  if (returnsTool(form)) return userFields(asDoc(value));
  const result = asDoc(value) ?? {};
  const keys = opOf(form) === 'bulkWrite'
    ? ['matchedCount', 'upsertedCount', 'insertedCount', 'deletedCount']
    : ['acknowledged', 'matchedCount', 'upsertedCount'];
  return Object.fromEntries(keys.map((key) => [key, result[key]]));
}

/** The server's result says its write matched no tool (and inserted none). */
function matchedNothing(form: Form, value: unknown): boolean {
  if (returnsTool(form)) return value === null;
  const result = asDoc(value) ?? {};
  return result.matchedCount === 0 && result.upsertedCount === 0;
}

interface StoredCollection { status: SyncStatus; contentHash: string; retryCount: number; lastSyncedAt: Date | null }
interface StoredSync {
  overallStatus: SyncStatus;
  pendingHashCheck?: unknown;
  lastModifiedFields: string[];
  collections: Record<SyncCollectionName, StoredCollection>;
}
const syncOf = (doc: Doc): StoredSync => doc.syncMetadata as StoredSync;

/** A collection whose content changed: synced turns stale; failed goes back in line (stale if it has vectors) with fresh retries. */
function afterChange({ status, retryCount, lastSyncedAt }: StoredCollection): Pick<StoredCollection, 'status' | 'retryCount'> {
  if (status === 'synced') return { status: 'stale', retryCount };
  if (status === 'failed') return { status: lastSyncedAt === null ? 'pending' : 'stale', retryCount: 0 };
  return { status, retryCount };
}

/**
 * The stored sync state describes the stored content: each hash is the hash of the stored
 * content; a collection whose hash changed went from synced to stale, the others kept their
 * status; the overall status is the aggregate; nothing is left pending; the changed business
 * fields are listed.
 */
function expectSettled(label: string, after: Doc, before: Doc | null, bulk: boolean): void {
  const sync = syncOf(after);
  const hashes = computeContentHashes(after);
  const statuses = SYNC_COLLECTION_NAMES.map((name) => sync.collections[name].status);
  for (const name of SYNC_COLLECTION_NAMES) {
    expect(sync.collections[name].contentHash, `${label}: ${name} hash of the stored content`).toBe(hashes[name]);
    const previous = before === null ? undefined : syncOf(before).collections[name];
    if (previous === undefined) {
      expect(sync.collections[name].status, `${label}: ${name} of a new tool`).toBe('pending');
      continue;
    }
    const changed = previous.contentHash !== hashes[name];
    const expected = changed ? afterChange(previous) : { status: previous.status, retryCount: previous.retryCount };
    const { status, retryCount } = sync.collections[name];
    expect({ status, retryCount }, `${label}: ${name} (hash ${changed ? 'changed' : 'unchanged'}, was ${previous.status})`).toEqual(expected);
  }
  expect(sync.overallStatus, `${label}: overall status`).toBe(aggregateSyncStatus(statuses));
  expect(sync.pendingHashCheck, `${label}: pending hash check`).toBeNull();
  // Each operation of a bulk is a write of its own: the last one to reach a tool names its fields.
  if (before !== null && !bulk) {
    const changedFields = BUSINESS_FIELDS.filter((field) => !isDeepStrictEqual(comparable(before[field]), comparable(after[field])));
    expect(sync.lastModifiedFields, `${label}: lastModifiedFields`).toEqual(expect.arrayContaining(changedFields));
  }
}

async function seed(seeds: Seed[]): Promise<{ modelIds: Ids; copyIds: Ids }> {
  const modelIds: Ids = [];
  const copyIds: Ids = [];
  for (const { synced: isSynced, failed = [], fields } of seeds) {
    const tool = isSynced ? await createSyncedTool(fields) : await ToolModel.create(toolInput(fields));
    for (const name of failed) await ToolModel.markCollectionFailed(tool._id, name, new Error('embedding failed'), 'embedding');
    const stored = await tools().findOne({ _id: tool._id });
    if (stored === null) throw new Error('the seeded tool is not stored');
    const copyId = new Types.ObjectId();
    await copies().insertOne({ ...stored, _id: copyId });
    modelIds.push(tool._id);
    copyIds.push(copyId);
  }
  return { modelIds, copyIds };
}

/** Pairs of (tool written through ToolModel, its raw copy), seeded or upserted. */
async function pairs(form: Form, modelIds: Ids, copyIds: Ids): Promise<[string, Doc | null, Doc | null][]> {
  const found: [string, Doc | null, Doc | null][] = [];
  for (const [index, modelId] of modelIds.entries()) {
    found.push([`tool ${index}`, await tools().findOne({ _id: modelId }), await copies().findOne({ _id: copyIds[index] })]);
  }
  for (const id of form.upserts ?? []) found.push([`upsert ${id}`, await tools().findOne({ id }), await copies().findOne({ id })]);
  return found;
}

async function runForm(form: Form, skip: (note: string) => never): Promise<void> {
  const lacks = (form.needs ?? []).flatMap((capability) => lacking[capability] ?? []);
  const engine = `${inject('dbEngine')} ${inject('dbEngineVersion')}`;
  const skipNote = (extra: string): string => `${form.name}: ${engine} ${lacks.map(({ reason }) => reason).join('; ')}${extra}`;
  if (lacks.some(({ refused }) => !refused)) {
    // Nothing to compare: both writes would do the same wrong thing.
    console.log(`[skip reason] ${skipNote('')}`);
    skip(skipNote(''));
  }
  const { modelIds, copyIds } = await seed(form.seeds ?? [synced]);
  const before = await pairs(form, modelIds, copyIds);
  const firstCopy = before[0]?.[2] ?? null;
  const replacement = form.replacement?.(firstCopy === null ? {} : businessOf(firstCopy));

  const raw = await attempt(() => rawWrite(form, copyIds, replacement));
  const model = await attempt(() => modelWrite(form, modelIds, replacement));
  const after = await pairs(form, modelIds, copyIds);

  if (!raw.ok) {
    // The server refuses the write: ToolModel must refuse it too, and store nothing.
    expect(model.ok, `the server refuses it (${messageOf(raw.error)}), ToolModel must too`).toBe(false);
    if (!model.ok) console.log(`[${form.name}] refused: raw driver "${messageOf(raw.error)}"; ToolModel "${messageOf(model.error)}"`);
  } else {
    if (!model.ok) expect.fail(`ToolModel refused what the server accepts: ${messageOf(model.error)}`);
    expect(resultShape(form, model.value), 'what the result reports').toEqual(resultShape(form, raw.value));
    const modified = (value: unknown): number => Number(asDoc(value)?.modifiedCount ?? 0);
    // ToolModel's write also sets its bookkeeping (and Mongoose's updatedAt), so it may modify more.
    expect(modified(model.value), 'modifiedCount').toBeGreaterThanOrEqual(modified(raw.value));
  }

  // The server wrote to no tool: a refused write (or the part of a bulk it never reached), or a filter that matched nothing.
  const reachedNothing = !raw.ok || matchedNothing(form, raw.value);
  for (const [index, [label, stored, copy]] of after.entries()) {
    const [, previous, previousCopy] = before[index] ?? [label, null, null];
    expect(userFields(stored), `${label}: stored through ToolModel vs by the raw driver`).toEqual(userFields(copy));
    if (stored === null) continue;
    if (reachedNothing && previous !== null && exactly(copy) === exactly(previousCopy)) {
      expect(exactly(stored), `${label}: a write that reached no tool stores nothing, no bookkeeping either`).toBe(exactly(previous));
    } else {
      expectSettled(label, stored, previous, opOf(form) === 'bulkWrite');
    }
  }
  if (raw.ok && model.ok) {
    const copy = after[0]?.[2];
    if (form.expectStored !== undefined && copy !== undefined && copy !== null) form.expectStored(copy);
    const returned = asDoc(model.value);
    const returnsAfter = form.options?.returnDocument === 'after';
    if (returnsTool(form) && returnsAfter && returned !== null) {
      const stored = after.find(([, doc]) => doc !== null && String(doc._id) === String(returned._id))?.[1];
      expect(comparable(returned.syncMetadata), 'the returned tool shows the settled sync state').toEqual(comparable(stored?.syncMetadata));
    }
  }
  if (lacks.length > 0 && !raw.ok) {
    // The engine refuses the form: what was checked is only that ToolModel refuses it too and stores nothing.
    const note = skipNote('; checked only that ToolModel refuses it too and stores nothing');
    console.log(`[skip reason] ${note}`);
    skip(note);
  }
}

describe('differential: every update form stores through ToolModel what the raw driver stores', () => {
  for (const form of FORMS) {
    it(form.name, async ({ skip }) => {
      await runForm(form, skip);
    });
  }
});
