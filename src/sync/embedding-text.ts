import { COLLECTION_FIELDS } from './collection-fields.js';
import { type SyncCollectionName } from './vocabulary.js';

/**
 * The text a collection embeds by default: the fields its content hash is made of
 * (COLLECTION_FIELDS), in that order, one a line, lists joined with `; `, empty ones left out. Made
 * of nothing else, so a change of the text is always a change of the hash (and re-embedded).
 */
export function embeddingText(tool: object, collection: SyncCollectionName): string {
  const fields = tool as Record<string, unknown>;
  return COLLECTION_FIELDS[collection]
    .map((field) => {
      const value = fields[field];
      if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string').join('; ');
      return typeof value === 'string' ? value : '';
    })
    .filter((text) => text !== '')
    .join('\n');
}
