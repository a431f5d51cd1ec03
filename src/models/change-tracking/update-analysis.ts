import { CONTENT_FIELDS } from '../../sync/collection-fields.js';
import { SYNC_METADATA } from '../../sync/sync-state.js';
import { SyncArgumentError } from '../errors.js';
import { BUSINESS_FIELDS } from '../tool-vocabulary.js';

/**
 * What a user's write names, read from its paths alone: which top-level fields it may write and
 * whether it touches `syncMetadata`. Nothing here evaluates an operator or a stage: the server
 * applies the write, the package only needs to know where it may land.
 */

export type UpdateKind = 'operators' | 'pipeline' | 'replacement';

export interface UpdateAnalysis {
  kind: UpdateKind;
  /** Top-level fields the write may change (a `$rename` writes both its names; an upsert's insert, its `$setOnInsert`). */
  fields: Set<string>;
  /** The write may change content of a tool it matches: its tools' hashes must be checked afterwards. */
  mayChangeContent: boolean;
  /** Business fields it changes on a tool it matches: what `lastModifiedFields` records. */
  businessFields: string[];
}

const CONTENT = new Set<string>(CONTENT_FIELDS);
/**
 * The update operators the server applies (Mongoose's list too). Mongoose sends any other
 * `$`-key as a field of `$set`, which strict mode drops and the server refuses otherwise: it
 * changes nothing.
 */
const SERVER_OPERATORS = new Set([
  '$currentDate', '$inc', '$min', '$max', '$mul', '$rename', '$set', '$setOnInsert', '$unset',
  '$addToSet', '$pop', '$pull', '$push', '$pullAll', '$bit',
]);
/** Applied only when an upsert inserts: never a change to a tool the write matched. */
const ON_INSERT_ONLY = '$setOnInsert';
/** Pipeline stages that replace the whole document, `syncMetadata` with it. */
const REPLACING_STAGES = new Set(['$project', '$replaceRoot', '$replaceWith']);

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

export const rootOf = (path: string): string => path.split('.')[0] ?? path;

interface HasToObject { toObject(options?: Record<string, unknown>): unknown }
const hasToObject = (value: object): value is HasToObject => typeof (value as Partial<HasToObject>).toObject === 'function';

/**
 * A container of paths as the plain object Mongoose will cast it to: a class instance (a DTO), a
 * Map or a Mongoose document gives its own entries. `__proto__` is never a path: it is dropped.
 * Values (dates, ObjectIds, arrays) are left as they are.
 */
export function asPaths(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date || value instanceof RegExp) return value;
  let entries: [string, unknown][];
  if (value instanceof Map) entries = [...(value as Map<unknown, unknown>).entries()].map(([key, item]) => [String(key), item]);
  else if (hasToObject(value) && !isPlainObject(value)) entries = Object.entries(value.toObject({ depopulate: true }) as object);
  else entries = Object.entries(value);
  const paths: Record<string, unknown> = {};
  for (const [key, item] of entries) {
    if (key !== '__proto__') Object.defineProperty(paths, key, { value: item, enumerable: true, writable: true, configurable: true });
  }
  return paths;
}

/** An update as Mongoose will read it: its operators' path containers made plain (see `asPaths`). */
export function plainUpdate(update: unknown): unknown {
  if (Array.isArray(update)) return update;
  const top = asPaths(update);
  if (!isPlainObject(top)) return update;
  const plain: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(top)) plain[key] = key.startsWith('$') ? asPaths(value) : value;
  return plain;
}

function refuseSyncPath(where: string, path: string): void {
  if (rootOf(path) === SYNC_METADATA) {
    throw new SyncArgumentError(where, path, 'a business field: syncMetadata is written by tool-sync alone (its statics and migrations)');
  }
}

/** `changed`: the fields it changes on a tool it matches (all it may write, unless said otherwise). */
function finish(kind: UpdateKind, fields: Set<string>, changed: Set<string> = fields): UpdateAnalysis {
  return {
    kind,
    fields,
    mayChangeContent: kind === 'replacement' || [...changed].some((field) => CONTENT.has(field)),
    businessFields: BUSINESS_FIELDS.filter((field) => changed.has(field)),
  };
}

function analyzeOperators(update: Record<string, unknown>, where: string): UpdateAnalysis {
  const fields = new Set<string>();
  const changed = new Set<string>();
  const add = (field: string, operator: string): void => {
    fields.add(field);
    if (operator !== ON_INSERT_ONLY) changed.add(field);
  };
  for (const [key, value] of Object.entries(update)) {
    if (!key.startsWith('$')) {
      // Mongoose sends a top-level field as a `$set`.
      refuseSyncPath(`${where}.${key}`, key);
      add(rootOf(key), '$set');
      continue;
    }
    if (!isPlainObject(value)) continue; // the server names what is wrong with it
    const applied = SERVER_OPERATORS.has(key);
    for (const [path, operand] of Object.entries(value)) {
      // Refused even where nothing is applied: no write names syncMetadata.
      refuseSyncPath(`${where}.${key}`, path);
      if (applied) add(rootOf(path), key);
      if (key === '$rename' && typeof operand === 'string') {
        refuseSyncPath(`${where}.$rename.${path}`, operand);
        add(rootOf(operand), key);
      }
    }
  }
  return finish('operators', fields, changed);
}

function analyzePipeline(stages: unknown[], where: string): UpdateAnalysis {
  const fields = new Set<string>();
  stages.forEach((stage, index) => {
    if (!isPlainObject(stage)) return;
    for (const [name, body] of Object.entries(stage)) {
      const at = `${where}[${index}].${name}`;
      if (REPLACING_STAGES.has(name)) {
        throw new SyncArgumentError(at, body, 'a $set, $addFields or $unset stage: a stage that replaces the document would drop syncMetadata');
      }
      if (name === '$set' || name === '$addFields') {
        if (!isPlainObject(body)) continue;
        for (const path of Object.keys(body)) {
          refuseSyncPath(at, path);
          fields.add(rootOf(path));
        }
      } else if (name === '$unset') {
        for (const path of Array.isArray(body) ? body : [body]) {
          if (typeof path !== 'string') continue;
          refuseSyncPath(at, path);
          fields.add(rootOf(path));
        }
      }
    }
  });
  return finish('pipeline', fields);
}

/** Reads an update (operators or a pipeline); refuses one that writes any `syncMetadata` path. */
export function analyzeUpdate(update: unknown, where = 'update'): UpdateAnalysis {
  if (Array.isArray(update)) return analyzePipeline(update, where);
  if (!isPlainObject(update)) return finish('operators', new Set());
  return analyzeOperators(update, where);
}

/** Reads a replacement document; refuses one that carries `syncMetadata`. */
export function analyzeReplacement(replacement: unknown, where = 'replacement'): UpdateAnalysis {
  const paths = asPaths(replacement);
  const document = isPlainObject(paths) ? paths : {};
  // A field given as undefined is absent (Mongoose and the driver leave it out).
  for (const [key, value] of Object.entries(document)) if (value !== undefined) refuseSyncPath(`${where}.${key}`, key);
  return finish('replacement', new Set([...Object.keys(document), ...BUSINESS_FIELDS]));
}

/**
 * Refuses a new tool's input that carries `syncMetadata`: as its own key or a dotted one, on a
 * plain object, a class instance or a Map (see `asPaths`).
 */
export function refuseSyncMetadataInput(input: unknown, where: string): void {
  const paths = asPaths(input);
  if (!isPlainObject(paths)) return;
  for (const [key, value] of Object.entries(paths)) if (value !== undefined) refuseSyncPath(where, key);
}

/**
 * Whether a filter names a `syncMetadata` path anywhere (in `$and`, `$or`, … too): an upsert
 * seeds the new tool from its equality conditions, so such an upsert could forge sync state.
 */
export function filterNamesSyncMetadata(filter: unknown): string | undefined {
  if (Array.isArray(filter)) {
    for (const clause of filter) {
      const found = filterNamesSyncMetadata(clause);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!isPlainObject(filter)) return undefined;
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith('$')) {
      const found = filterNamesSyncMetadata(value);
      if (found !== undefined) return found;
    } else if (rootOf(key) === SYNC_METADATA) {
      return key;
    }
  }
  return undefined;
}

/** The top-level fields an upsert's filter seeds the new tool with (plain equality conditions). */
export function seededByFilter(filter: unknown): Record<string, unknown> {
  const seeded: Record<string, unknown> = {};
  if (!isPlainObject(filter)) return seeded;
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and' && Array.isArray(value)) {
      for (const clause of value) Object.assign(seeded, seededByFilter(clause));
      continue;
    }
    if (key.startsWith('$') || key.includes('.')) continue;
    // A regular expression is a match, not an equality: the server seeds nothing from it.
    const equal = isPlainObject(value) ? value.$eq : value;
    if (equal !== undefined && !(equal instanceof RegExp) && !(isPlainObject(value) && !('$eq' in value))) seeded[key] = equal;
  }
  return seeded;
}

/** A value an upsert's filter may seed a new tool with, and its path as the filter names it. */
export interface SeedCandidate { path: string; value: unknown }

const isOperatorObject = (value: unknown): value is Record<string, unknown> =>
  isPlainObject(value) && Object.keys(value).some((key) => key.startsWith('$'));
/** A value the server may take as an equality (not a pattern, not an operator expression). */
const isEqualityValue = (value: unknown): boolean => value !== undefined && !(value instanceof RegExp) && !isOperatorObject(value);

/** The values one field condition compares for equality: the value itself, `$eq`, every element of `$in` and `$all`. */
function equalitiesOf(condition: unknown): unknown[] {
  if (!isOperatorObject(condition)) return isEqualityValue(condition) ? [condition] : [];
  const values: unknown[] = [];
  if ('$eq' in condition && isEqualityValue(condition.$eq)) values.push(condition.$eq);
  for (const operator of ['$in', '$all']) {
    const list: unknown = condition[operator];
    if (Array.isArray(list)) values.push(...(list as unknown[]).filter(isEqualityValue));
  }
  return values;
}

/**
 * Every value an upsert's filter may seed the new tool with. The server seeds a new document from
 * the filter's equality conditions after normalising it: a plain value or `$eq`, a one-element
 * `$in` or `$all`, inside `$and`, or inside a one-clause `$or` (MongoDB's manual on upserts, and
 * its tests of upserted shard keys); newer servers also merge duplicate `$or` clauses. So that no
 * normalisation can seed a value nobody validated, this takes more than any server seeds: every
 * value compared for equality in any clause of `$and` or `$or`, every element of `$in` and `$all`.
 * Never seeded, never taken: `$nor`, `$not`, `$elemMatch`, `$expr`, patterns, comparisons.
 */
export function seedCandidates(filter: unknown): SeedCandidate[] {
  if (!isPlainObject(filter)) return [];
  const candidates: SeedCandidate[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and' || key === '$or') {
      if (Array.isArray(value)) for (const clause of value) candidates.push(...seedCandidates(clause));
    } else if (!key.startsWith('$')) {
      for (const equal of equalitiesOf(value)) candidates.push({ path: key, value: equal });
    }
  }
  return candidates;
}

/** The top-level fields an update sets on insert: `$set`, `$setOnInsert`, plain fields, pipeline `$set`s. */
export function setOnInsertBy(update: unknown): Set<string> {
  const fields = new Set<string>();
  if (Array.isArray(update)) {
    for (const stage of update) {
      if (!isPlainObject(stage)) continue;
      for (const name of ['$set', '$addFields']) {
        const body = stage[name];
        if (isPlainObject(body)) for (const path of Object.keys(body)) fields.add(rootOf(path));
      }
    }
    return fields;
  }
  if (!isPlainObject(update)) return fields;
  const given = (value: unknown): boolean => value !== undefined && value !== null;
  for (const [key, value] of Object.entries(update)) {
    if (!key.startsWith('$')) {
      if (given(value)) fields.add(rootOf(key));
    } else if ((key === '$set' || key === '$setOnInsert') && isPlainObject(value)) {
      for (const [path, item] of Object.entries(value)) if (given(item)) fields.add(rootOf(path));
    }
  }
  return fields;
}
