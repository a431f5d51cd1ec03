import { createHash } from 'node:crypto';
import {
  COLLECTION_FIELDS,
  CONTENT_FIELD_KINDS,
  type ContentField,
} from './collection-fields.js';
import { SYNC_COLLECTION_NAMES, type SyncCollectionName } from './vocabulary.js';

/**
 * Version of the canonical serialization below. Part of every hash: changing how content is
 * serialized changes every hash, and `tool-sync rehash` then re-flags what must be re-embedded.
 */
export const CONTENT_HASH_SCHEME_VERSION = 1;

/** Length of a stored content hash: hex SHA-256 truncated to 64 bits. */
export const CONTENT_HASH_LENGTH = 16;

/** Any object carrying (some of) the content fields: a document, a lean object, raw input. */
export type ToolContent = Partial<Record<ContentField, unknown>>;

type CanonicalValue = string | null | string[];

/** A UTF-16 surrogate without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The text as the server stores it: the driver encodes strings as UTF-8, which turns a lone
 * surrogate into U+FFFD, so the hash of a string before it is written equals the hash after.
 */
export function asStoredText(text: string): string {
  return text.replace(LONE_SURROGATE, '\uFFFD');
}

function canonicalText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  // Stored content is always text (the schema casts it); other input is serialized, not '[object Object]'.
  const raw = typeof value === 'string' ? value : JSON.stringify(value);
  const text = asStoredText(raw).normalize('NFC');
  return text === '' ? null : text;
}

function canonicalStrings(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? (value as unknown[]) : [value];
  const texts: string[] = [];
  for (const item of items) {
    const text = canonicalText(item);
    if (text !== null) texts.push(text);
  }
  return texts;
}

function canonicalValue(field: ContentField, value: unknown): CanonicalValue {
  switch (CONTENT_FIELD_KINDS[field]) {
    case 'text':
      return canonicalText(value);
    case 'list':
      return canonicalStrings(value);
    case 'set':
      return [...new Set(canonicalStrings(value))].sort();
  }
}

/** Each field's canonical value, read once (a document's fields are read through getters). */
type CanonicalValues = Partial<Record<ContentField, CanonicalValue>>;

function serialized(tool: ToolContent, collection: SyncCollectionName, cache: CanonicalValues): string {
  const fields: readonly ContentField[] = COLLECTION_FIELDS[collection];
  const values = fields.map((field) => {
    if (!(field in cache)) cache[field] = canonicalValue(field, tool[field]);
    return cache[field];
  });
  return JSON.stringify([CONTENT_HASH_SCHEME_VERSION, collection, fields, values]);
}

const sha256Prefix = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex').slice(0, CONTENT_HASH_LENGTH);

/**
 * The exact bytes hashed for one collection: scheme version, collection name, its field list,
 * then each field's canonical value in that fixed order (so object key order never matters).
 */
export function canonicalContent(tool: ToolContent, collection: SyncCollectionName): string {
  return serialized(tool, collection, {});
}

/** SHA-256 of the collection's canonical content, hex, truncated to 16 characters. */
export function computeContentHash(tool: ToolContent, collection: SyncCollectionName): string {
  return sha256Prefix(canonicalContent(tool, collection));
}

/** The four hashes; each content field is read and made canonical once. */
export function computeContentHashes(tool: ToolContent): Record<SyncCollectionName, string> {
  const cache: CanonicalValues = {};
  const hashes = {} as Record<SyncCollectionName, string>;
  for (const collection of SYNC_COLLECTION_NAMES) {
    hashes[collection] = sha256Prefix(serialized(tool, collection, cache));
  }
  return hashes;
}
