import { type Document } from 'mongoose';
import { SyncArgumentError } from './errors.js';

/**
 * Applies a MongoDB update document to a Mongoose document in memory, so that the new content,
 * and so its new hashes, are known before anything is written. Covers the operators an
 * application uses on a tool's fields; anything else is refused with a clear error rather than
 * applied wrongly.
 */

type UpdateDocument = Record<string, unknown>;

const SUPPORTED = new Set([
  '$set', '$unset', '$setOnInsert', '$push', '$addToSet', '$pull', '$pullAll', '$pop',
  '$inc', '$mul', '$min', '$max', '$currentDate', '$rename',
]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date) && !(value instanceof RegExp);
}

/** The top-level field an update path writes: `tags.0` and `syncMetadata.x.y` name `tags` and `syncMetadata`. */
export function rootField(path: string): string {
  return path.split('.')[0] ?? path;
}

/** Splits an update into operator form: top-level fields without `$` are a `$set`. */
export function operatorsOf(update: UpdateDocument): Record<string, Record<string, unknown>> {
  const operators: Record<string, Record<string, unknown>> = {};
  for (const [key, value] of Object.entries(update)) {
    if (key.startsWith('$')) {
      if (!isPlainObject(value)) throw new SyncArgumentError(`update.${key}`, value, 'an object of paths');
      operators[key] = { ...(operators[key] ?? {}), ...value };
    } else {
      operators.$set = { ...(operators.$set ?? {}), [key]: value };
    }
  }
  return operators;
}

/** Every top-level field an update writes (a `$rename` writes both of its names). */
export function fieldsWrittenBy(update: UpdateDocument): Set<string> {
  const fields = new Set<string>();
  for (const [operator, paths] of Object.entries(operatorsOf(update))) {
    for (const [path, value] of Object.entries(paths)) {
      fields.add(rootField(path));
      if (operator === '$rename' && typeof value === 'string') fields.add(rootField(value));
    }
  }
  return fields;
}

function checkPath(operator: string, path: string): void {
  if (path.split('.').some((part) => part.startsWith('$'))) {
    throw new SyncArgumentError(`update.${operator}`, path, 'a plain path (positional operators such as $ and $[] are not supported on tools)');
  }
}

function arrayAt(doc: Document, path: string): unknown[] {
  const value: unknown = doc.get(path);
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new SyncArgumentError(path, value, 'an array to apply an array operator to');
  return [...(value as unknown[])];
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  return JSON.stringify(a) === JSON.stringify(b);
}

function compare(a: unknown, b: unknown): number {
  const x = a instanceof Date ? a.getTime() : a;
  const y = b instanceof Date ? b.getTime() : b;
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  return String(x).localeCompare(String(y));
}

/** The part of MongoDB's query language that `$pull` conditions on string arrays use. */
function matchesCondition(item: unknown, condition: unknown): boolean {
  if (condition instanceof RegExp) return typeof item === 'string' && condition.test(item);
  if (!isPlainObject(condition) || !Object.keys(condition).every((key) => key.startsWith('$'))) return sameValue(item, condition);
  return Object.entries(condition).every(([operator, operand]) => {
    switch (operator) {
      case '$eq': return sameValue(item, operand);
      case '$ne': return !sameValue(item, operand);
      case '$in': return Array.isArray(operand) && operand.some((candidate) => matchesCondition(item, candidate));
      case '$nin': return Array.isArray(operand) && !operand.some((candidate) => matchesCondition(item, candidate));
      case '$gt': return compare(item, operand) > 0;
      case '$gte': return compare(item, operand) >= 0;
      case '$lt': return compare(item, operand) < 0;
      case '$lte': return compare(item, operand) <= 0;
      case '$regex': {
        const options = typeof condition.$options === 'string' ? condition.$options : '';
        if (!(operand instanceof RegExp) && typeof operand !== 'string') throw new SyncArgumentError('update.$pull.$regex', operand, 'a string or a RegExp');
        const pattern = operand instanceof RegExp ? operand : new RegExp(operand, options);
        return typeof item === 'string' && pattern.test(item);
      }
      case '$options': return true;
      default: throw new SyncArgumentError('update.$pull', condition, 'a value or a condition with $eq, $ne, $in, $nin, $gt, $gte, $lt, $lte or $regex');
    }
  });
}

function eachOf(value: unknown): { items: unknown[]; modifiers: Record<string, unknown> } {
  if (isPlainObject(value) && '$each' in value) {
    const { $each, ...modifiers } = value;
    if (!Array.isArray($each)) throw new SyncArgumentError('$each', $each, 'an array');
    return { items: $each, modifiers };
  }
  return { items: [value], modifiers: {} };
}

function push(current: unknown[], value: unknown): unknown[] {
  const { items, modifiers } = eachOf(value);
  const position = typeof modifiers.$position === 'number' ? modifiers.$position : current.length;
  const next = [...current];
  next.splice(position < 0 ? Math.max(0, next.length + position) : position, 0, ...items);
  if (modifiers.$sort !== undefined) {
    const direction = modifiers.$sort === -1 ? -1 : 1;
    next.sort((a, b) => direction * compare(a, b));
  }
  if (typeof modifiers.$slice === 'number') {
    return modifiers.$slice >= 0 ? next.slice(0, modifiers.$slice) : next.slice(modifiers.$slice);
  }
  return next;
}

/** Applies each operator of `update` to `doc`, as the server would, without writing anything. */
export function applyUpdate(doc: Document, update: UpdateDocument, options: { inserting: boolean }): void {
  for (const [operator, paths] of Object.entries(operatorsOf(update))) {
    if (!SUPPORTED.has(operator)) throw new SyncArgumentError('update', operator, `one of the operators ${[...SUPPORTED].join(', ')}`);
    for (const [path, value] of Object.entries(paths)) {
      checkPath(operator, path);
      switch (operator) {
        case '$set': doc.set(path, value); break;
        case '$setOnInsert': if (options.inserting) doc.set(path, value); break;
        case '$unset': doc.set(path, undefined); break;
        case '$push': doc.set(path, push(arrayAt(doc, path), value)); break;
        case '$addToSet': {
          const next = arrayAt(doc, path);
          for (const item of eachOf(value).items) if (!next.some((existing) => sameValue(existing, item))) next.push(item);
          doc.set(path, next);
          break;
        }
        case '$pull': doc.set(path, arrayAt(doc, path).filter((item) => !matchesCondition(item, value))); break;
        case '$pullAll': {
          if (!Array.isArray(value)) throw new SyncArgumentError(`update.$pullAll.${path}`, value, 'an array');
          doc.set(path, arrayAt(doc, path).filter((item) => !value.some((removed) => sameValue(item, removed))));
          break;
        }
        case '$pop': doc.set(path, value === -1 ? arrayAt(doc, path).slice(1) : arrayAt(doc, path).slice(0, -1)); break;
        case '$inc': doc.set(path, Number(doc.get(path) ?? 0) + Number(value)); break;
        case '$mul': doc.set(path, Number(doc.get(path) ?? 0) * Number(value)); break;
        case '$min': { const current: unknown = doc.get(path); if (current === undefined || current === null || compare(value, current) < 0) doc.set(path, value); break; }
        case '$max': { const current: unknown = doc.get(path); if (current === undefined || current === null || compare(value, current) > 0) doc.set(path, value); break; }
        case '$currentDate': doc.set(path, new Date()); break;
        case '$rename': {
          if (typeof value !== 'string') throw new SyncArgumentError(`update.$rename.${path}`, value, 'the new path name');
          const moved: unknown = doc.get(path);
          doc.set(path, undefined);
          doc.set(value, moved);
          break;
        }
      }
    }
  }
}
