/**
 * 2. Write path: the package's ToolModel side by side with a plain Typegoose model of the same
 * business fields (bench/plain-tool.ts: what a user would otherwise run) and the raw driver
 * sending the same write as given, each on a collection of its own holding the same tools.
 * Counts, from the driver's command monitoring, what every write sends, and times it; checks
 * after each write that the three sides stored the same business fields and that the
 * package's tools carry the settled hashes of their stored content.
 */
import mongoose, { type mongo } from 'mongoose';
import { updatesPerBulk } from '../src/models/updates-per-bulk.js';
import { ToolModel } from '../src/models/tool.js';
import { BUSINESS_FIELDS } from '../src/models/tool-vocabulary.js';
import { computeContentHashes } from '../src/sync/content-hash.js';
import { aggregateSyncStatus } from '../src/sync/status-order.js';
import { SYNC_COLLECTION_NAMES, type SyncStatus } from '../src/sync/vocabulary.js';
import type { SeedTool } from '../src/cli/seed-data.js';
import { dropIfExists, recreateWithToolIndexes } from './collections.js';
import { CommandRecorder, emptyTally, type Tally } from './commands.js';
import { applySyncStateMix } from './dataset.js';
import { median, perSecond, round, timed } from './measure.js';
import { checkPlainModelMatches, PlainToolModel } from './plain-tool.js';

export const SIDES = ['package', 'plain', 'raw'] as const;
export type SideName = (typeof SIDES)[number];

/** One side's figures for one kind of write, per write. */
export interface PerWrite {
  writes: number;
  commandsPerWrite: number;
  /** Commands per write by command name (`update`, `find`, `findAndModify`, `insert`, `delete`, `getMore`). */
  commandsByName: Record<string, number>;
  msPerWrite: number;
  /** Round trips as the driver timed them, per write, by command name. */
  serverMsByName: Record<string, number>;
  /** This process's CPU (user + system) per write: Mongoose, the package's hooks, the driver's BSON. */
  clientCpuMsPerWrite: number;
}

export interface WriteFigure {
  name: WriteName;
  /** How many writes were planned per side; fewer when the time budget ended the run first. */
  planned: number;
  completed: boolean;
  sides: Record<SideName, PerWrite>;
  /** The package's commands per write over the plain model's and the raw driver's. */
  commandRatio: { plain: number; raw: number };
  /** The package's time per write over the plain model's and the raw driver's. */
  timeRatio: { plain: number; raw: number };
}

export interface WritePathResult {
  tools: number;
  /** Conditional updates per bulk command of a settle on this engine (see src/models/updates-per-bulk.ts). */
  settleUpdatesPerBulk: number;
  /** Construct + validate + toObject, no I/O, per document; medians of interleaved rounds. */
  cpuPerDocument: { rounds: number; packageMs: number; plainMs: number; ratio: number; hashingMs: number };
  insertMany: {
    documents: number;
    rounds: number;
    perSecond: Record<SideName, number>;
    commands: Record<SideName, number>;
    /** The package's time over the plain model's and the raw driver's. */
    ratio: { plain: number; raw: number };
  };
  writes: WriteFigure[];
  skipped: SkippedWrite[];
}

export interface WriteBudget { scenarioMs: number; minWrites: number; maxWrites: number }

/**
 * The largest number of single-document statements that match a tool an update command may hold
 * on this engine (null: no known limit), and why. See `statementLimit` in run.ts.
 */
export interface UpdateStatementLimit { statements: number | null; reason: string }

/** Where progress lines go (the runner's log). */
export type Log = (line: string) => void;

export const UPDATE_MANY_SIZES = [10, 100, 1000] as const;
/**
 * A `bulkWrite` of 100 operations, sent in this order (the driver sends each run of one kind as
 * one command: insert, update, delete). Its update command holds 40 statements: below the
 * largest update command FerretDB v1 completes (see `statementLimit`), on every side.
 */
export const BULK_MIX = { insertOne: 40, contentUpdate: 25, nonContentUpdate: 14, replaceOne: 1, deleteOne: 20 } as const;
export const BULK_SIZE = Object.values(BULK_MIX).reduce((sum, count) => sum + count, 0);
/** The fewest tools the section needs: the bulks' updates (40 tools) and deletes (60 over 3 rounds). */
export const MIN_WRITE_TOOLS = 100;

const FIND_ONE_AND_UPDATE = "findOneAndUpdate (returnDocument: 'after'), content";
export type WriteName =
  | 'updateOne, content'
  | typeof FIND_ONE_AND_UPDATE
  | 'updateOne, non-content'
  | 'doc.save(), content changed'
  | 'doc.save(), non-content changed'
  | `updateMany of ${number} tools, content`
  | `bulkWrite of ${number} mixed operations`;

/** A write the bench did not send, and why. */
export interface SkippedWrite { name: WriteName; reason: string }

const CPU_ROUNDS = 3;
const INSERT_ROUNDS = 2;
const UPDATE_MANY_ROUNDS = 3;
const BULK_ROUNDS = 3;
const DELETE_POOL = BULK_MIX.deleteOne * BULK_ROUNDS;
const RAW_COLLECTION = 'tools_raw_baseline';

type Doc = mongo.WithId<mongo.Document>;
type Collections = Record<SideName, mongo.Collection>;

/** The item at `index`, which the caller knows is there. */
function itemAt<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`no item at ${index} of ${items.length}`);
  return item;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const businessOf = (doc: Doc): Record<string, unknown> => Object.fromEntries(BUSINESS_FIELDS.map((field) => [field, (doc[field] as unknown) ?? null]));
const ratio = (a: number, b: number): number => round(a / b, 2);

function perWrite(tally: Tally): PerWrite {
  const per = (values: Record<string, number>, digits: number): Record<string, number> =>
    Object.fromEntries(Object.entries(values).sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) => [name, round(value / tally.writes, digits)]));
  const commands = Object.values(tally.commands).reduce((sum, count) => sum + count, 0);
  return {
    writes: tally.writes,
    commandsPerWrite: round(commands / tally.writes, 2),
    commandsByName: per(tally.commands, 2),
    msPerWrite: round(tally.ms / tally.writes, 2),
    serverMsByName: per(tally.commandMs, 2),
    clientCpuMsPerWrite: round(tally.cpuMs / tally.writes, 3),
  };
}

/** A tool of the package's collection carries the hashes of its stored content, settled. */
function checkSettled(doc: Record<string, unknown>, where: string): void {
  const meta = doc.syncMetadata as { pendingHashCheck?: unknown; overallStatus?: unknown; collections?: Record<string, { contentHash?: unknown; status?: SyncStatus }> } | undefined;
  if (meta === undefined) throw new Error(`${where}: the package's tool has no syncMetadata`);
  if (meta.pendingHashCheck !== null && meta.pendingHashCheck !== undefined) throw new Error(`${where}: the package's tool was left with a pending hash check`);
  const hashes = computeContentHashes(doc);
  const statuses: SyncStatus[] = [];
  for (const name of SYNC_COLLECTION_NAMES) {
    const state = meta.collections?.[name];
    if (state?.contentHash !== hashes[name]) throw new Error(`${where}: the package stored a ${name} hash that is not the hash of the stored content`);
    if (state.status !== undefined) statuses.push(state.status);
  }
  if (meta.overallStatus !== aggregateSyncStatus(statuses)) throw new Error(`${where}: the package's overall status is not the aggregate of its collections'`);
}

type Expectation = 'absent' | Record<string, unknown>;

/**
 * The comparison only holds if the three sides did the same thing: each tool holds the same
 * business fields on every side (or is gone from every side), with the value the write gave
 * it, and the package's copy is settled.
 */
async function verifySame(collections: Collections, checks: [mongo.ObjectId, Expectation][], where: string): Promise<void> {
  for (const [_id, expected] of checks) {
    const [pkg, plain, raw] = await Promise.all([collections.package.findOne({ _id }), collections.plain.findOne({ _id }), collections.raw.findOne({ _id })]);
    const at = `${where}, tool ${_id.toHexString()}`;
    if (expected === 'absent') {
      if (pkg !== null || plain !== null || raw !== null) throw new Error(`${at}: a deleted tool is still there on one side`);
      continue;
    }
    if (pkg === null || plain === null || raw === null) throw new Error(`${at}: missing on one side`);
    if (!same(businessOf(pkg), businessOf(plain)) || !same(businessOf(pkg), businessOf(raw))) {
      throw new Error(`${at}: the sides stored different business fields`);
    }
    for (const [field, value] of Object.entries(expected)) {
      if (!same(pkg[field], value)) throw new Error(`${at}: ${field} is not what the write gave it`);
    }
    checkSettled(pkg, at);
  }
}

/** Runs each side's write in turn (the order rotating), counting and timing it, then checks the outcome. */
interface Scenario<P> {
  name: WriteName;
  planned: number;
  minWrites: number;
  budgetMs: number;
  /** Untimed, uncounted: what a write needs first (a loaded document). */
  prepare?: (side: SideName, index: number) => Promise<P | undefined>;
  write: (side: SideName, index: number, prepared: P | undefined) => Promise<unknown>;
  verify: (index: number, prepared: Partial<Record<SideName, P>>) => Promise<void>;
}

async function measure<P>(recorder: CommandRecorder, scenario: Scenario<P>, log: Log): Promise<WriteFigure> {
  log(`  ${scenario.name}`);
  const tallies: Record<SideName, Tally> = { package: emptyTally(), plain: emptyTally(), raw: emptyTally() };
  const started = performance.now();
  let done = 0;
  while (done < scenario.planned && (done < scenario.minWrites || performance.now() - started < scenario.budgetMs)) {
    const index = done;
    const prepared: Partial<Record<SideName, P>> = {};
    for (let turn = 0; turn < SIDES.length; turn += 1) {
      const side = SIDES[(index + turn) % SIDES.length] ?? 'package';
      const input = scenario.prepare === undefined ? undefined : await scenario.prepare(side, index);
      if (input !== undefined) prepared[side] = input;
      await recorder.record(tallies[side], () => scenario.write(side, index, input));
    }
    await scenario.verify(index, prepared);
    done += 1;
  }
  const sides = { package: perWrite(tallies.package), plain: perWrite(tallies.plain), raw: perWrite(tallies.raw) };
  return {
    name: scenario.name,
    planned: scenario.planned,
    completed: done === scenario.planned,
    sides,
    commandRatio: { plain: ratio(sides.package.commandsPerWrite, sides.plain.commandsPerWrite), raw: ratio(sides.package.commandsPerWrite, sides.raw.commandsPerWrite) },
    timeRatio: { plain: ratio(sides.package.msPerWrite, sides.plain.msPerWrite), raw: ratio(sides.package.msPerWrite, sides.raw.msPerWrite) },
  };
}

/** Construct + validate + toObject for every tool, no I/O: what a model costs per document. */
async function buildAll(tools: SeedTool[], make: (tool: SeedTool) => mongoose.Document): Promise<number> {
  let fields = 0;
  for (const tool of tools) {
    const doc = make(tool);
    await doc.validate();
    fields += Object.keys(doc.toObject<Record<string, unknown>>()).length;
  }
  return fields;
}

async function cpuPerDocument(tools: SeedTool[]): Promise<WritePathResult['cpuPerDocument']> {
  const makePackage = (tool: SeedTool): mongoose.Document => new ToolModel(tool);
  const makePlain = (tool: SeedTool): mongoose.Document => new PlainToolModel(tool);
  // Both sides warmed up before anything is timed; rounds interleaved, the first side alternating.
  const warm = tools.slice(0, 500);
  let sink = (await buildAll(warm, makePackage)) + (await buildAll(warm, makePlain));
  const packageMs: number[] = [];
  const plainMs: number[] = [];
  const hashingMs: number[] = [];
  for (let round_ = 0; round_ < CPU_ROUNDS; round_ += 1) {
    const sides = [
      async () => { packageMs.push((await timed(async () => { sink += await buildAll(tools, makePackage); })).ms); },
      async () => { plainMs.push((await timed(async () => { sink += await buildAll(tools, makePlain); })).ms); },
    ];
    for (const side of round_ % 2 === 0 ? sides : sides.reverse()) await side();
    hashingMs.push((await timed(() => { for (const tool of tools) sink += computeContentHashes(tool).tools.length; })).ms);
  }
  if (sink === 0) throw new Error('building documents produced nothing');
  const perDoc = (values: number[]): number => round(median(values) / tools.length, 4);
  return { rounds: CPU_ROUNDS, packageMs: perDoc(packageMs), plainMs: perDoc(plainMs), ratio: ratio(median(packageMs), median(plainMs)), hashingMs: perDoc(hashingMs) };
}

async function recreate(collections: Collections): Promise<void> {
  await recreateWithToolIndexes(collections.package);
  await recreateWithToolIndexes(collections.raw);
  await dropIfExists(collections.plain);
  for (const [key, options] of (PlainToolModel.schema as mongoose.Schema).indexes()) {
    await collections.plain.createIndex(key as Record<string, mongo.IndexDirection>, options as mongo.CreateIndexesOptions);
  }
}

/** What the plain model stores for a tool the package stored: the same `_id`, business fields and timestamps. */
function plainCopy(doc: Doc): Doc {
  const business = Object.fromEntries(BUSINESS_FIELDS.filter((field) => doc[field] !== undefined).map((field) => [field, doc[field] as unknown]));
  return { _id: doc._id, ...business, createdAt: doc.createdAt as unknown, updatedAt: doc.updatedAt as unknown, __v: doc.__v as unknown };
}

async function insertManyFigures(recorder: CommandRecorder, collections: Collections, tools: SeedTool[]): Promise<{ figures: WritePathResult['insertMany']; stored: Doc[] }> {
  const ms: Record<SideName, number[]> = { package: [], plain: [], raw: [] };
  const tallies: Record<SideName, Tally> = { package: emptyTally(), plain: emptyTally(), raw: emptyTally() };
  let stored: Doc[] = [];
  for (let round_ = 0; round_ < INSERT_ROUNDS; round_ += 1) {
    await recreate(collections);
    const timedInsert = async (side: SideName, insert: () => Promise<unknown>): Promise<void> => {
      const before = tallies[side].ms;
      await recorder.record(tallies[side], insert);
      ms[side].push(tallies[side].ms - before);
    };
    const plain = (): Promise<void> => timedInsert('plain', () => PlainToolModel.insertMany(tools));
    // The raw side inserts the documents the model produced, so it writes the same bytes.
    if (round_ % 2 === 1) await plain();
    await timedInsert('package', () => ToolModel.insertMany(tools));
    stored = await collections.package.find({}).sort({ _id: 1 }).toArray();
    await timedInsert('raw', () => collections.raw.insertMany(stored.map((doc) => ({ ...doc }))));
    if (round_ % 2 === 0) await plain();
  }
  const medianMs = { package: median(ms.package), plain: median(ms.plain), raw: median(ms.raw) };
  const commands = (side: SideName): number => round(Object.values(tallies[side].commands).reduce((sum, count) => sum + count, 0) / INSERT_ROUNDS, 2);
  return {
    figures: {
      documents: tools.length,
      rounds: INSERT_ROUNDS,
      perSecond: { package: perSecond(tools.length, medianMs.package), plain: perSecond(tools.length, medianMs.plain), raw: perSecond(tools.length, medianMs.raw) },
      commands: { package: commands('package'), plain: commands('plain'), raw: commands('raw') },
      ratio: { plain: ratio(medianMs.package, medianMs.plain), raw: ratio(medianMs.package, medianMs.raw) },
    },
    stored,
  };
}

export async function benchWritePath(tools: SeedTool[], budget: WriteBudget, limit: UpdateStatementLimit, log: Log): Promise<WritePathResult> {
  const db = mongoose.connection.db;
  if (db === undefined) throw new Error('not connected');
  if (tools.length < MIN_WRITE_TOOLS) throw new Error(`the write path needs at least ${MIN_WRITE_TOOLS} tools; got ${tools.length}`);
  checkPlainModelMatches();
  const collections: Collections = { package: ToolModel.collection, plain: PlainToolModel.collection, raw: db.collection(RAW_COLLECTION) };
  // Asked of the server once per client, before anything is counted.
  const settleUpdatesPerBulk = await updatesPerBulk(mongoose.connection, Number.MAX_SAFE_INTEGER);
  const recorder = new CommandRecorder(mongoose.connection.getClient());
  try {
    log('  CPU per document');
    const cpu = await cpuPerDocument(tools);
    log('  insertMany');
    const { figures: insertMany, stored } = await insertManyFigures(recorder, collections, tools);

    // Every side starts the writes from the same tools, in a realistic mix of sync states.
    const now = new Date();
    stored.forEach((doc, index) => { applySyncStateMix(doc, index, now); });
    await recreate(collections);
    await collections.package.insertMany(stored.map((doc) => ({ ...doc })));
    await collections.raw.insertMany(stored.map((doc) => ({ ...doc })));
    await collections.plain.insertMany(stored.map(plainCopy));
    const skipped: SkippedWrite[] = [];
    const writes = await writeFigures(recorder, collections, { tools, stored, budget, limit, skipped, log, settleUpdatesPerBulk });
    return { tools: tools.length, settleUpdatesPerBulk, cpuPerDocument: cpu, insertMany, writes, skipped };
  } finally {
    recorder.detach();
    await dropIfExists(collections.plain);
    await dropIfExists(collections.raw);
  }
}

/** Each kind of write, side by side, on the same tools of the three collections. */
interface WriteContext {
  tools: SeedTool[];
  stored: Doc[];
  budget: WriteBudget;
  limit: UpdateStatementLimit;
  skipped: SkippedWrite[];
  log: Log;
  settleUpdatesPerBulk: number;
}

/**
 * The updateMany sizes to measure: 10, 100 and 1000 where the collection holds them and the
 * engine completes the settle's update commands (of settleUpdatesPerBulk statements at most);
 * where it does not, the largest size it completes instead; the rest are skipped with the reason.
 */
function updateManySizes(context: WriteContext): number[] {
  const { stored, limit, skipped, log, settleUpdatesPerBulk } = context;
  const sizes = new Set<number>();
  const skip = (size: number, reason: string): void => {
    skipped.push({ name: `updateMany of ${size} tools, content`, reason });
    log(`  [skip reason] updateMany of ${size} tools: ${reason}`);
  };
  for (const size of UPDATE_MANY_SIZES) {
    if (size > stored.length) skip(size, `the collection holds ${stored.length} tools`);
    else if (limit.statements !== null && Math.min(size, settleUpdatesPerBulk) >= limit.statements) {
      skip(size, `the package's settle sends update commands of ${Math.min(size, settleUpdatesPerBulk)} conditional updates, and ${limit.reason}`);
      const largest = Math.min(limit.statements - 1, stored.length);
      if (largest > 0) sizes.add(largest);
    } else sizes.add(size);
  }
  return [...sizes].sort((a, b) => a - b);
}

async function writeFigures(recorder: CommandRecorder, collections: Collections, context: WriteContext): Promise<WriteFigure[]> {
  const { tools, stored, budget, log } = context;
  // Tools at the end are deleted by the bulk writes; every other write targets the rest, in turn.
  const updatable = stored.slice(0, stored.length - DELETE_POOL);
  let cursor = 0;
  const take = (count: number): Doc[] => Array.from({ length: count }, () => {
    const doc = itemAt(updatable, cursor % updatable.length);
    cursor += 1;
    return doc;
  });
  const description = (doc: Doc, tag: string): string => `${String(doc.description).slice(0, 1900)} (bench edit ${tag})`;
  const url = (doc: Doc, tag: string): string => `https://example.org/bench/${String(doc.id)}?edit=${tag}`;
  const single = { planned: budget.maxWrites, minWrites: budget.minWrites, budgetMs: budget.scenarioMs };
  const figures: WriteFigure[] = [];

  const updates = [
    { name: 'updateOne, content', field: 'description', value: description },
    { name: 'updateOne, non-content', field: 'url', value: url },
  ] as const;
  for (const { name, field, value } of updates) {
    const targets = take(single.planned);
    const set = (index: number): Record<string, string> => {
      const doc = itemAt(targets, index);
      return { [field]: value(doc, `${name}-${index}`) };
    };
    figures.push(await measure<never>(recorder, {
      name,
      ...single,
      write: (side, index) => {
        const filter = { _id: itemAt(targets, index)._id };
        if (side === 'package') return ToolModel.updateOne(filter, { $set: set(index) });
        if (side === 'plain') return PlainToolModel.updateOne(filter, { $set: set(index) });
        return collections.raw.updateOne(filter, { $set: set(index) });
      },
      verify: (index) => verifySame(collections, [[itemAt(targets, index)._id, set(index)]], name),
    }, log));
  }

  {
    const name = FIND_ONE_AND_UPDATE;
    const targets = take(single.planned);
    const set = (index: number): { description: string } => ({ description: description(itemAt(targets, index), `${name}-${index}`) });
    let returned: unknown;
    figures.push(await measure<never>(recorder, {
      name,
      ...single,
      write: async (side, index) => {
        const filter = { _id: itemAt(targets, index)._id };
        if (side === 'package') returned = await ToolModel.findOneAndUpdate(filter, { $set: set(index) }, { returnDocument: 'after' });
        else if (side === 'plain') await PlainToolModel.findOneAndUpdate(filter, { $set: set(index) }, { returnDocument: 'after' });
        else await collections.raw.findOneAndUpdate(filter, { $set: set(index) }, { returnDocument: 'after' });
      },
      verify: async (index) => {
        await verifySame(collections, [[itemAt(targets, index)._id, set(index)]], name);
        // The document the package returned shows the settled state, as a read after it would.
        if (!(returned instanceof mongoose.Document)) throw new Error(`${name}: the package returned no document`);
        const plain = returned.toObject<Record<string, unknown>>();
        if (plain.description !== set(index).description) throw new Error(`${name}: the package returned the document before the write`);
        checkSettled(plain, `${name}, the returned document`);
      },
    }, log));
  }

  const saves = [
    { name: 'doc.save(), content changed', field: 'description', value: description },
    { name: 'doc.save(), non-content changed', field: 'url', value: url },
  ] as const;
  for (const { name, field, value } of saves) {
    const targets = take(single.planned);
    const valueAt = (index: number): string => value(itemAt(targets, index), `${name}-${index}`);
    figures.push(await measure<mongoose.Document>(recorder, {
      name,
      ...single,
      // The document is loaded first, untimed: the save of a loaded document is measured.
      prepare: async (side, index) => {
        const _id = itemAt(targets, index)._id;
        const doc = side === 'package' ? await ToolModel.findById(_id) : side === 'plain' ? await PlainToolModel.findById(_id) : null;
        if (side !== 'raw' && doc === null) throw new Error(`${name}: tool ${_id.toHexString()} is not there`);
        return doc ?? undefined;
      },
      write: async (side, index, doc) => {
        if (side === 'raw') {
          await collections.raw.updateOne({ _id: itemAt(targets, index)._id }, { $set: { [field]: valueAt(index) } });
          return;
        }
        if (doc === undefined) throw new Error(`${name}: nothing loaded`);
        doc.set(field, valueAt(index));
        await doc.save();
      },
      verify: async (index, loaded) => {
        await verifySame(collections, [[itemAt(targets, index)._id, { [field]: valueAt(index) }]], name);
        const doc = loaded.package;
        if (doc === undefined) throw new Error(`${name}: nothing loaded`);
        checkSettled(doc.toObject<Record<string, unknown>>(), `${name}, the saved document`);
      },
    }, log));
  }

  for (const size of updateManySizes(context)) {
    const name = `updateMany of ${size} tools, content` as const;
    const ids = stored.slice(0, size).map((doc) => doc._id);
    const filter = { _id: { $in: ids } };
    const value = (index: number): string => `Bench updateMany of ${size} tools, round ${index + 1}.`;
    figures.push(await measure<never>(recorder, {
      name,
      planned: UPDATE_MANY_ROUNDS,
      minWrites: 1,
      budgetMs: budget.scenarioMs,
      write: (side, index) => {
        const update = { $set: { longDescription: value(index) } };
        if (side === 'package') return ToolModel.updateMany(filter, update);
        if (side === 'plain') return PlainToolModel.updateMany(filter, update);
        return collections.raw.updateMany(filter, update);
      },
      verify: async (index) => {
        for (const side of SIDES) {
          const changed = await collections[side].countDocuments({ longDescription: value(index) });
          if (changed !== size) throw new Error(`${name}: the ${side} side changed ${changed} tools, not ${size}`);
        }
        const step = Math.max(1, Math.floor(size / 10));
        const sample = ids.filter((_id, at) => at % step === 0);
        await verifySame(collections, sample.map((_id) => [_id, { longDescription: value(index) }]), name);
      },
    }, log));
  }

  const bulkStatements = BULK_MIX.contentUpdate + BULK_MIX.nonContentUpdate + BULK_MIX.replaceOne;
  if (context.limit.statements !== null && bulkStatements >= context.limit.statements) {
    const reason = `its update command holds ${bulkStatements} statements, and ${context.limit.reason}`;
    context.skipped.push({ name: `bulkWrite of ${BULK_SIZE} mixed operations`, reason });
    log(`  [skip reason] bulkWrite: ${reason}`);
  } else {
    figures.push(await bulkFigure(recorder, collections, tools, stored, take, budget, log));
  }
  // Reported in the order of the brief: content updates first, then the rest.
  const order: string[] = ['updateOne, content', FIND_ONE_AND_UPDATE, 'updateOne, non-content'];
  const rank = (figure: WriteFigure): number => (order.includes(figure.name) ? order.indexOf(figure.name) : order.length);
  return figures.map((figure, at) => ({ figure, at })).sort((a, b) => rank(a.figure) - rank(b.figure) || a.at - b.at).map(({ figure }) => figure);
}

/** `bulkWrite` of inserts, content and non-content updates, a replaceOne and deletes, in that order. */
async function bulkFigure(
  recorder: CommandRecorder,
  collections: Collections,
  tools: SeedTool[],
  stored: Doc[],
  take: (count: number) => Doc[],
  budget: WriteBudget,
  log: Log,
): Promise<WriteFigure> {
  const name = `bulkWrite of ${BULK_SIZE} mixed operations` as const;
  const rounds = Array.from({ length: BULK_ROUNDS }, (_, round_) => {
    const inserted = Array.from({ length: BULK_MIX.insertOne }, (_unused, at) => {
      const base = itemAt(tools, (round_ * BULK_MIX.insertOne + at) % tools.length);
      return { ...base, _id: new mongoose.Types.ObjectId(), id: `${base.id.slice(0, 70)}-bench-insert-${round_}-${at}` };
    });
    const content = take(BULK_MIX.contentUpdate);
    const nonContent = take(BULK_MIX.nonContentUpdate);
    const [replaced] = take(BULK_MIX.replaceOne);
    const deleted = Array.from({ length: BULK_MIX.deleteOne }, (_unused, at) => itemAt(stored, stored.length - 1 - (round_ * BULK_MIX.deleteOne + at)));
    if (replaced === undefined) throw new Error('no tool to replace');
    const tag = (doc: Doc): string => `bulk-${round_}-${doc._id.toHexString()}`;
    const description = (doc: Doc): string => `${String(doc.description).slice(0, 1900)} (bench edit ${tag(doc)})`;
    const url = (doc: Doc): string => `https://example.org/bench/${String(doc.id)}?edit=${tag(doc)}`;
    const replacement: Record<string, unknown> = { ...businessOf(replaced), description: description(replaced) };
    return { inserted, content, nonContent, replaced, replacement, deleted, description, url };
  });
  type Round = (typeof rounds)[number];
  /** The operations, built afresh for each side (Mongoose casts them in place). */
  const operations = (r: Round): mongo.AnyBulkWriteOperation[] => [
    ...r.inserted.map((tool) => ({ insertOne: { document: { ...tool, tags: [...tool.tags], functionality: [...tool.functionality], useCases: [...tool.useCases], interface: [...tool.interface] } } })),
    ...r.content.map((doc) => ({ updateOne: { filter: { _id: doc._id }, update: { $set: { description: r.description(doc) } } } })),
    ...r.nonContent.map((doc) => ({ updateOne: { filter: { _id: doc._id }, update: { $set: { url: r.url(doc) } } } })),
    {
      replaceOne: {
        filter: { _id: r.replaced._id },
        replacement: Object.fromEntries(Object.entries(r.replacement).filter(([, value]) => value !== null).map(([key, value]) => [key, Array.isArray(value) ? [...(value as unknown[])] : value])),
      },
    },
    ...r.deleted.map((doc) => ({ deleteOne: { filter: { _id: doc._id } } })),
  ];
  return measure<never>(recorder, {
    name,
    planned: BULK_ROUNDS,
    minWrites: 1,
    budgetMs: budget.scenarioMs,
    write: (side, index) => {
      const ops = operations(itemAt(rounds, index));
      if (ops.length !== BULK_SIZE) throw new Error(`${name}: built ${ops.length} operations`);
      if (side === 'package') return ToolModel.bulkWrite(ops as Parameters<typeof ToolModel.bulkWrite>[0]);
      if (side === 'plain') return PlainToolModel.bulkWrite(ops as Parameters<typeof PlainToolModel.bulkWrite>[0]);
      return collections.raw.bulkWrite(ops);
    },
    verify: (index) => {
      const r = itemAt(rounds, index);
      const checks: [mongo.ObjectId, Expectation][] = [
        ...r.inserted.slice(0, 5).map((tool): [mongo.ObjectId, Expectation] => [tool._id, { id: tool.id }]),
        ...r.content.slice(0, 10).map((doc): [mongo.ObjectId, Expectation] => [doc._id, { description: r.description(doc) }]),
        ...r.nonContent.slice(0, 5).map((doc): [mongo.ObjectId, Expectation] => [doc._id, { url: r.url(doc) }]),
        [r.replaced._id, { description: r.replacement.description }],
        ...r.deleted.map((doc): [mongo.ObjectId, Expectation] => [doc._id, 'absent']),
      ];
      return verifySame(collections, checks, `${name}, round ${index + 1}`);
    },
  }, log);
}
