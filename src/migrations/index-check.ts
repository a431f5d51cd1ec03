import { type ReturnModelType } from '@typegoose/typegoose';
import mongoose from 'mongoose';
import { type Tool } from '../models/tool.js';

type ToolModelType = ReturnModelType<typeof Tool>;

export interface IndexSpec {
  name: string;
  key: Record<string, mongoose.mongo.IndexDirection>;
  unique: boolean;
}

export interface IndexComparison {
  matching: IndexSpec[];
  /** Declared by the model, not on the server. */
  missing: IndexSpec[];
  /** On the server, unknown to the model: reported, never dropped. */
  extra: IndexSpec[];
  /** Same name, other keys or options. */
  different: { expected: IndexSpec; actual: IndexSpec }[];
}

function sameIndex(a: IndexSpec, b: IndexSpec): boolean {
  return JSON.stringify(Object.entries(a.key)) === JSON.stringify(Object.entries(b.key)) && a.unique === b.unique;
}

/** The indexes the model declares: the specification's seven, the unique `id`, and `_id`. */
export function declaredIndexes(model: ToolModelType): IndexSpec[] {
  const indexes = (model.schema as mongoose.Schema).indexes() as [Record<string, mongoose.mongo.IndexDirection>, { name?: string; unique?: boolean }][];
  const declared = indexes.map(([key, options]) => ({ name: String(options.name), key, unique: options.unique === true }));
  return [{ name: '_id_', key: { _id: 1 }, unique: false }, ...declared];
}

export async function serverIndexes(model: ToolModelType): Promise<IndexSpec[]> {
  try {
    const listed = (await model.collection.listIndexes().toArray()) as { name?: string; key: Record<string, mongoose.mongo.IndexDirection>; unique?: boolean }[];
    return listed.map((index) => ({ name: index.name ?? '', key: index.key, unique: index.unique === true }));
  } catch (error) {
    // No collection yet: no indexes.
    if (error instanceof mongoose.mongo.MongoServerError && (error.codeName === 'NamespaceNotFound' || error.code === 26)) return [];
    throw error;
  }
}

export async function compareIndexes(model: ToolModelType): Promise<IndexComparison> {
  const expected = declaredIndexes(model);
  const actual = await serverIndexes(model);
  const byName = new Map(actual.map((index) => [index.name, index]));
  const comparison: IndexComparison = { matching: [], missing: [], extra: [], different: [] };
  for (const index of expected) {
    const found = byName.get(index.name);
    if (found === undefined) comparison.missing.push(index);
    else if (sameIndex(index, found)) comparison.matching.push(index);
    else comparison.different.push({ expected: index, actual: found });
  }
  const known = new Set(expected.map((index) => index.name));
  comparison.extra = actual.filter((index) => !known.has(index.name));
  return comparison;
}

/** Creates the missing indexes. Never drops anything: a different or extra index is the operator's call. */
export async function createMissingIndexes(model: ToolModelType, missing: IndexSpec[]): Promise<string[]> {
  const created: string[] = [];
  for (const index of missing) {
    await model.collection.createIndex(index.key, { name: index.name, ...(index.unique ? { unique: true } : {}) });
    created.push(index.name);
  }
  return created;
}

export interface IndexCheck extends IndexComparison {
  /** The indexes `apply` created. */
  created: string[];
}

/**
 * Compares the server's indexes on the model's collection with the model's; with `apply`, creates
 * the missing ones. Never drops anything: a different or extra index is the operator's call.
 */
export async function checkIndexes(model: ToolModelType, options: { apply?: boolean } = {}): Promise<IndexCheck> {
  const comparison = await compareIndexes(model);
  const created = options.apply === true ? await createMissingIndexes(model, comparison.missing) : [];
  return { ...comparison, created };
}
