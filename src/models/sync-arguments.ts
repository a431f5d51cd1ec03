import { Types } from 'mongoose';
import { isSyncCollectionName, SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, type SyncCollectionName, type SyncErrorCode } from '../sync/vocabulary.js';
import { SyncArgumentError } from './errors.js';

/**
 * Arguments arrive from HTTP query strings and JSON bodies: each is checked for its exact type
 * and cast, so that an object such as `{ "$ne": null }` can never widen a filter.
 */

export function toolObjectId(value: unknown, argument = 'toolId'): Types.ObjectId {
  if (value instanceof Types.ObjectId) return value;
  if (typeof value === 'string' && /^[0-9a-fA-F]{24}$/.test(value)) return new Types.ObjectId(value);
  throw new SyncArgumentError(argument, value, "a tool document's _id (an ObjectId or 24 hex characters)");
}

export function collectionName(value: unknown, argument = 'collection'): SyncCollectionName {
  if (isSyncCollectionName(value)) return value;
  throw new SyncArgumentError(argument, value, `one of ${SYNC_COLLECTION_NAMES.join(', ')}`);
}

export function collectionNames(value: unknown, argument = 'collections'): SyncCollectionName[] {
  if (value === undefined) return [...SYNC_COLLECTION_NAMES];
  if (!Array.isArray(value) || value.length === 0) throw new SyncArgumentError(argument, value, 'a non-empty array of collection names');
  return [...new Set(value.map((item, index) => collectionName(item, `${argument}[${index}]`)))];
}

export function errorCodes(value: unknown, argument = 'errorCodes'): SyncErrorCode[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) throw new SyncArgumentError(argument, value, 'a non-empty array of error codes');
  return value.map((item, index) => {
    if (typeof item === 'string' && (SYNC_ERROR_CODES as readonly string[]).includes(item)) return item as SyncErrorCode;
    throw new SyncArgumentError(`${argument}[${index}]`, item, `one of ${SYNC_ERROR_CODES.join(', ')}`);
  });
}

export function integerInRange(value: unknown, argument: string, min: number, max: number): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  throw new SyncArgumentError(argument, value, `an integer from ${min} to ${max}`);
}

export function contentHashArgument(value: unknown, argument = 'contentHash'): string {
  if (typeof value === 'string' && /^[0-9a-f]{16}$/.test(value)) return value;
  throw new SyncArgumentError(argument, value, 'the 16 hex characters of the contentHash the worker embedded');
}

export function dateArgument(value: unknown, argument: string): Date {
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value;
  throw new SyncArgumentError(argument, value, 'a valid Date');
}

/** A name MongoDB takes for a collection (and Mongoose for a model): a non-empty string without `$` or NUL. */
export function nameArgument(value: unknown, argument: string): string {
  if (typeof value === 'string' && value !== '' && !value.includes('$') && !value.includes('\0') && !value.startsWith('system.')) return value;
  throw new SyncArgumentError(argument, value, 'a non-empty string without "$" or NUL, not starting with "system."');
}

/** An embedding model's name, as the worker gives it: a non-empty string of at most 200 characters. */
export function embeddingModelArgument(value: unknown, argument = 'embeddingModel'): string {
  if (typeof value === 'string' && value.trim() !== '' && value.length <= 200) return value;
  throw new SyncArgumentError(argument, value, 'the name of the embedding model (a non-empty string of at most 200 characters)');
}
