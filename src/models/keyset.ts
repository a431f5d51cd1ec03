import { type mongo } from 'mongoose';

/*
 * Keyset pagination in `_id` order over documents whose `_id`s may be of several types (legacy
 * tools with numbers, strings or UUIDs beside ObjectIds). The server orders values of different
 * types by their type first, and `$gt` only compares within a type (`{ $gt: 42 }` matches no
 * ObjectId), so "after this `_id`" is: greater within its type, or of any type ordered after it.
 */

/**
 * $type aliases, in the server's order of types for comparisons and sorts (an `_id` is never an
 * array). MinKey, MaxKey, symbol and JavaScript `_id`s are left out: no tool has one, and some
 * engines know no alias for them (FerretDB 1.x refuses the filter).
 */
const TYPE_ORDER: readonly (readonly string[])[] = [
  ['null'], ['double', 'int', 'long', 'decimal'], ['string'], ['object'], ['binData'], ['objectId'], ['bool'], ['date'], ['timestamp'], ['regex'],
];

const BSON_TYPES: Record<string, string> = {
  Double: 'double', Int32: 'int', Long: 'long', Decimal128: 'decimal', Binary: 'binData', ObjectId: 'objectId', Timestamp: 'timestamp', BSONRegExp: 'regex',
};

/** The $type alias of a value as the driver returns it, or undefined for one it does not name. */
function typeAlias(value: unknown): string | undefined {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') return 'double';
  if (typeof value === 'bigint') return 'long';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'bool';
  if (value instanceof Date) return 'date';
  if (value instanceof RegExp) return 'regex';
  const bsonType = (value as { _bsontype?: unknown })._bsontype;
  if (typeof bsonType === 'string') return BSON_TYPES[bsonType];
  return typeof value === 'object' ? 'object' : undefined;
}

/** The filter for the `_id`s after `last` in the server's `_id` order. */
export function idsAfter(last: unknown): mongo.Filter<mongo.Document> {
  const alias = typeAlias(last);
  const rank = TYPE_ORDER.findIndex((aliases) => alias !== undefined && aliases.includes(alias));
  // A type we cannot place: the plain keyset.
  const greater: Record<string, unknown> = { _id: { $gt: last } };
  if (rank < 0) return greater;
  return { $or: [greater, { _id: { $type: TYPE_ORDER.slice(rank + 1).flat() } }] };
}

/** An `_id` as a checkpoint or a message shows it: ObjectIds as hex, others as they print. */
export function describeId(id: unknown): string {
  const hex = (id as { toHexString?: unknown } | null)?.toHexString;
  if (typeof hex === 'function') return String(hex.call(id));
  if (typeof id === 'string') return id;
  // undefined for undefined, whatever the declared return type says.
  const json = JSON.stringify(id) as string | undefined;
  return json ?? String(id);
}
