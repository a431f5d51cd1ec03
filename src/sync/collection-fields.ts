import { type SyncCollectionName } from './vocabulary.js';

/** The Tool fields whose text is embedded into at least one vector collection. */
export const CONTENT_FIELDS = [
  'name',
  'description',
  'longDescription',
  'category',
  'tags',
  'pricing',
  'functionality',
  'useCases',
  'interface',
] as const;
export type ContentField = (typeof CONTENT_FIELDS)[number];

/**
 * Which fields feed each collection's embedding. A collection's content hash covers exactly
 * these fields (and this list itself), so editing a field marks only the collections it feeds.
 */
export const COLLECTION_FIELDS = {
  tools: ['name', 'description', 'longDescription', 'category', 'tags', 'pricing'],
  functionality: ['name', 'functionality'],
  usecases: ['name', 'useCases'],
  interface: ['name', 'interface'],
} as const satisfies Record<SyncCollectionName, readonly ContentField[]>;

/**
 * How a field is compared for change detection.
 * - `text`: one string; absent, undefined, null and '' are the same (no text to embed).
 * - `set`: order and duplicates carry no meaning (tags, interfaces), so they are sorted and
 *   de-duplicated: reordering tags does not re-embed anything.
 * - `list`: order is meaningful (functionality and use cases are written as a ranked
 *   sequence and embedded in that order), so reordering them is a change.
 */
export const CONTENT_FIELD_KINDS = {
  name: 'text',
  description: 'text',
  longDescription: 'text',
  category: 'text',
  pricing: 'text',
  tags: 'set',
  interface: 'set',
  functionality: 'list',
  useCases: 'list',
} as const satisfies Record<ContentField, 'text' | 'set' | 'list'>;
