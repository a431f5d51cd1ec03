import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  canonicalContent,
  COLLECTION_FIELDS,
  computeContentHash,
  computeContentHashes,
  CONTENT_FIELD_KINDS,
  CONTENT_FIELDS,
  SYNC_COLLECTION_NAMES,
  type ToolContent,
} from '../../src/index.js';
import { EDITOR_CONTENT } from '../helpers/content.js';

const tool: ToolContent = { ...EDITOR_CONTENT, useCases: ['write software', 'review diffs'] };

describe('computeContentHash', () => {
  it('is the SHA-256 of the canonical content as hex, truncated to 16 characters', () => {
    for (const collection of SYNC_COLLECTION_NAMES) {
      const full = createHash('sha256').update(canonicalContent(tool, collection)).digest('hex');
      expect(computeContentHash(tool, collection)).toBe(full.slice(0, 16));
      expect(computeContentHash(tool, collection)).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it('gives all four collections from computeContentHashes, each different', () => {
    const hashes = computeContentHashes(tool);
    expect(Object.keys(hashes).sort()).toEqual([...SYNC_COLLECTION_NAMES].sort());
    for (const collection of SYNC_COLLECTION_NAMES) expect(hashes[collection]).toBe(computeContentHash(tool, collection));
    expect(new Set(Object.values(hashes)).size).toBe(4);
  });

  it('does not depend on object key order', () => {
    const reversed = Object.fromEntries(Object.entries(tool).reverse()) as ToolContent;
    expect(computeContentHashes(reversed)).toEqual(computeContentHashes(tool));
  });

  it('treats a missing, undefined, null or empty optional field alike', () => {
    const { longDescription: _omitted, pricing: _alsoOmitted, ...missing } = tool;
    const variants: ToolContent[] = [
      missing,
      { ...tool, longDescription: undefined, pricing: undefined },
      { ...tool, longDescription: null, pricing: null },
      { ...tool, longDescription: '', pricing: '' },
    ];
    for (const variant of variants) expect(computeContentHash(variant, 'tools')).toBe(computeContentHash(missing, 'tools'));
    expect(computeContentHash(missing, 'tools')).not.toBe(computeContentHash(tool, 'tools'));
    expect(computeContentHash({ ...tool, tags: undefined }, 'tools')).toBe(computeContentHash({ ...tool, tags: [] }, 'tools'));
  });

  it('does not depend on the Unicode normalization form', () => {
    const nfc = { ...tool, name: 'Caf\u00e9 \u00c5ngstr\u00f6m', useCases: ['r\u00e9sum\u00e9 review'] };
    const nfd = { ...tool, name: 'Cafe\u0301 A\u030angstro\u0308m', useCases: ['re\u0301sume\u0301 review'] };
    expect(nfd.name).not.toBe(nfc.name);
    expect(computeContentHashes(nfd)).toEqual(computeContentHashes(nfc));
  });

  it('ignores the order and duplicates of set fields (tags, interface)', () => {
    expect(CONTENT_FIELD_KINDS.tags).toBe('set');
    expect(CONTENT_FIELD_KINDS.interface).toBe('set');
    const shuffled = { ...tool, tags: ['ide', 'editor', 'ide'], interface: ['cli', 'desktop'] };
    expect(computeContentHashes(shuffled)).toEqual(computeContentHashes(tool));
  });

  it('treats the order of list fields (functionality, useCases) as meaningful', () => {
    expect(CONTENT_FIELD_KINDS.functionality).toBe('list');
    expect(CONTENT_FIELD_KINDS.useCases).toBe('list');
    const reordered = { ...tool, functionality: ['debug', 'edit code'], useCases: ['review diffs', 'write software'] };
    expect(computeContentHash(reordered, 'functionality')).not.toBe(computeContentHash(tool, 'functionality'));
    expect(computeContentHash(reordered, 'usecases')).not.toBe(computeContentHash(tool, 'usecases'));
  });

  it('covers exactly the fields that feed each collection', () => {
    for (const field of CONTENT_FIELDS) {
      const changed = { ...tool, [field]: CONTENT_FIELD_KINDS[field] === 'text' ? 'changed text' : ['changed item'] };
      const before = computeContentHashes(tool);
      const after = computeContentHashes(changed);
      for (const collection of SYNC_COLLECTION_NAMES) {
        const feeds = (COLLECTION_FIELDS[collection] as readonly string[]).includes(field);
        expect(after[collection] !== before[collection], `${field} -> ${collection}`).toBe(feeds);
      }
    }
    const withUrl = { ...tool, url: 'https://example.org', id: 'other-id' } as ToolContent;
    expect(computeContentHashes(withUrl)).toEqual(computeContentHashes(tool));
  });

  it('covers the field list and the hashing scheme version', () => {
    const parsed = JSON.parse(canonicalContent(tool, 'functionality')) as unknown[];
    expect(parsed).toEqual([1, 'functionality', ['name', 'functionality'], ['Visual Studio Code', ['edit code', 'debug']]]);
  });

  it('feeds every content field into at least one collection', () => {
    const used = new Set(Object.values(COLLECTION_FIELDS).flat());
    expect([...used].sort()).toEqual([...CONTENT_FIELDS].sort());
  });
});
