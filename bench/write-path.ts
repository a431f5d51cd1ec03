/**
 * 2. Write path: inserts and content updates through ToolModel against the raw driver writing
 * the same final documents into a twin collection with the same indexes.
 */
import mongoose, { type mongo } from 'mongoose';
import { ToolModel } from '../src/models/tool.js';
import { computeContentHashes } from '../src/sync/content-hash.js';
import type { SeedTool } from '../src/cli/seed-data.js';
import { recreateWithToolIndexes } from './collections.js';
import { median, perSecond, round, runSequence, timed } from './measure.js';

export interface SideBySide {
  operations: number;
  packagePerSecond: number;
  rawPerSecond: number;
  /** Package time over raw time for the same operations. */
  ratio: number;
  /** False when the time budget ended the run first; the rates cover `operations`. */
  completed: boolean;
}

export interface WritePathResult {
  insertMany: SideBySide & {
    rounds: number;
    /** CPU per tool without I/O: Mongoose building and validating the document, and the hashing part of it. */
    cpuPerToolMs: { buildAndValidate: number; hashing: number };
  };
  contentUpdates: SideBySide & { commandsPerPackageUpdate: number };
}

type Doc = mongo.WithId<mongo.Document>;

const INSERT_ROUNDS = 2;
const RAW_COLLECTION = 'tools_raw_baseline';

/** Counts the commands the driver sends while `run` runs. */
async function commandsSent(run: () => Promise<unknown>): Promise<number> {
  const client = mongoose.connection.getClient();
  let sent = 0;
  const count = (): void => { sent += 1; };
  client.on('commandStarted', count);
  try {
    await run();
  } finally {
    client.off('commandStarted', count);
  }
  return sent;
}

/** Leaf paths of a document (arrays and dates are leaves), for a `$set` of what changed. */
function leaves(value: Record<string, unknown>, prefix = '', into = new Map<string, unknown>()): Map<string, unknown> {
  for (const [key, child] of Object.entries(value)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const plainObject = typeof child === 'object' && child !== null && !Array.isArray(child) && !(child instanceof Date) && !(child instanceof mongoose.Types.ObjectId);
    if (plainObject) leaves(child as Record<string, unknown>, path, into);
    else into.set(path, child);
  }
  return into;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The raw update that turns `before` into `after`. */
function rawUpdate(before: Doc, after: Doc): mongo.UpdateFilter<mongo.Document> {
  const was = leaves(before);
  const now = leaves(after);
  const $set: Record<string, unknown> = {};
  const $unset: Record<string, ''> = {};
  for (const [path, value] of now) if (!same(was.get(path), value)) $set[path] = value;
  for (const path of was.keys()) if (!now.has(path)) $unset[path] = '';
  return Object.keys($unset).length === 0 ? { $set } : { $set, $unset };
}

function sideBySide(operations: number, packageMs: number, rawMs: number, completed: boolean): SideBySide {
  return {
    operations,
    packagePerSecond: perSecond(operations, packageMs),
    rawPerSecond: perSecond(operations, rawMs),
    ratio: round(packageMs / rawMs, 2),
    completed,
  };
}

export async function benchWritePath(tools: SeedTool[], budgetMs: number): Promise<WritePathResult> {
  const db = mongoose.connection.db;
  if (db === undefined) throw new Error('not connected');
  const raw = db.collection(RAW_COLLECTION);

  // Where the model's time goes before any I/O.
  const build = await timed(async () => { for (const tool of tools) await new ToolModel(tool).validate(); });
  const hashing = await timed(() => { for (const tool of tools) computeContentHashes(tool); });
  const cpuPerToolMs = { buildAndValidate: round(build.ms / tools.length, 4), hashing: round(hashing.ms / tools.length, 4) };

  // Inserts: the model validates, hashes and fills metadata; the raw side inserts its output.
  let finals: Doc[] = [];
  const packageMs: number[] = [];
  const rawMs: number[] = [];
  for (let round_ = 0; round_ < INSERT_ROUNDS; round_ += 1) {
    await recreateWithToolIndexes(ToolModel.collection);
    await recreateWithToolIndexes(raw);
    packageMs.push((await timed(() => ToolModel.insertMany(tools))).ms);
    if (finals.length === 0) finals = await ToolModel.collection.find({}).sort({ _id: 1 }).toArray();
    rawMs.push((await timed(() => raw.insertMany(finals.map((doc) => ({ ...doc }))))).ms);
  }
  // Both collections start the updates from the same documents.
  const before = await ToolModel.collection.find({}).sort({ _id: 1 }).toArray();
  await recreateWithToolIndexes(raw);
  await raw.insertMany(before.map((doc) => ({ ...doc })));

  // Content updates, one at a time: a worker's edits, not a bulk job.
  const edited = (doc: Doc): string => `${String(doc.description)} Now with an updated summary.`;
  const updateThroughModel = async (i: number): Promise<void> => {
    const doc = before[i] as Doc;
    await ToolModel.updateOne({ _id: doc._id }, { $set: { description: edited(doc) } });
  };
  const viaModel = await runSequence(before.length, budgetMs, updateThroughModel);
  const done = before.slice(0, viaModel.done);
  const after = new Map((await ToolModel.collection.find({ _id: { $in: done.map((doc) => doc._id) } }).toArray()).map((doc) => [String(doc._id), doc]));
  const updates = done.map((doc) => {
    const result = after.get(String(doc._id));
    if (result === undefined) throw new Error(`tool ${String(doc._id)} vanished during the benchmark`);
    return { _id: doc._id, update: rawUpdate(doc, result) };
  });
  const started = performance.now();
  for (const { _id, update } of updates) await raw.updateOne({ _id }, update);
  const viaRaw = { ms: performance.now() - started };
  // The comparison only holds if both sides wrote the same documents.
  const checked = done.slice(0, 200);
  const rawAfter = await raw.find({ _id: { $in: checked.map((doc) => doc._id) } }).toArray();
  if (rawAfter.length !== checked.length) throw new Error(`the raw baseline holds ${String(rawAfter.length)} of the ${String(checked.length)} updated tools`);
  for (const doc of rawAfter) {
    const expected = after.get(String(doc._id));
    if (expected === undefined || !same([...leaves(doc)].sort(), [...leaves(expected)].sort())) {
      throw new Error(`the raw baseline wrote a different document for tool ${String(doc._id)}`);
    }
  }
  await raw.drop();
  // Measured, not assumed: the commands one more update through the model sends.
  const next = viaModel.done < before.length ? viaModel.done : 0;
  const commands = await commandsSent(() => updateThroughModel(next));

  return {
    insertMany: { ...sideBySide(tools.length, median(packageMs), median(rawMs), true), rounds: INSERT_ROUNDS, cpuPerToolMs },
    contentUpdates: {
      ...sideBySide(viaModel.done, viaModel.ms, viaRaw.ms, viaModel.completed),
      commandsPerPackageUpdate: commands,
    },
  };
}
