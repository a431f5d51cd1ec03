import mongoose from 'mongoose';

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;

type AnyDocument = mongoose.Document<unknown>;

/** What the caller put at `path` of `doc`, without what the schema's defaults filled in around it. */
function givenAt(doc: AnyDocument, path: string): unknown {
  const value: unknown = doc.get(path);
  if (value instanceof mongoose.Document) return givenValue(value as AnyDocument);
  if (!isPlainObject(value)) return value instanceof mongoose.Types.Array ? [...(value as unknown[])] : value;
  // A nested path of the schema: its keys are paths of `doc` (each with its own default or not).
  const given: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!doc.$isDefault(`${path}.${key}`)) given[key] = givenAt(doc, `${path}.${key}`);
  }
  return given;
}

/**
 * A (sub)document as its caller gave it: every path they set, none the schema's defaults filled
 * in. For an error about what was passed: `create({ syncMetadata: { overallStatus: 'synced' } })`
 * is about `{ overallStatus: 'synced' }`, not the 37 defaults beside it.
 */
export function givenValue(doc: mongoose.Document<unknown>): Record<string, unknown> {
  const given: Record<string, unknown> = {};
  const plain = doc.toObject({ depopulate: true, getters: false, virtuals: false, transform: false }) as Record<string, unknown>;
  for (const key of Object.keys(plain)) {
    if (!doc.$isDefault(key)) given[key] = givenAt(doc, key);
  }
  return given;
}
