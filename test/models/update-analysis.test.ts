import { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { bookkeepingFor, replacementAsUpdate, withBookkeeping } from '../../src/models/change-tracking/bookkeeping.js';
import {
  analyzeReplacement,
  analyzeUpdate,
  filterNamesSyncMetadata,
  refuseSyncMetadataInput,
  seededByFilter,
  setOnInsertBy,
  type UpdateAnalysis,
} from '../../src/models/change-tracking/update-analysis.js';
import { SyncArgumentError } from '../../src/models/errors.js';
import { BUSINESS_FIELDS } from '../../src/models/tool-vocabulary.js';
import { LAST_MODIFIED_FIELDS, METADATA_UPDATED_AT, PENDING_HASH_CHECK } from '../../src/sync/sync-state.js';

const NOW = new Date('2026-03-01T12:00:00Z');

/** Runs `act`, expects a SyncArgumentError, returns its message. */
function refusal(act: () => unknown): string {
  try {
    act();
  } catch (error) {
    expect(error).toBeInstanceOf(SyncArgumentError);
    return (error as SyncArgumentError).message;
  }
  throw new Error('expected a SyncArgumentError, nothing was thrown');
}

const sorted = (fields: Set<string>): string[] => [...fields].sort();

describe('analyzeUpdate: operators', () => {
  it.each([
    ['$set', { $set: { description: 'd', 'pricing': 'free' } }, ['description', 'pricing']],
    ['$unset', { $unset: { longDescription: '' } }, ['longDescription']],
    ['$setOnInsert', { $setOnInsert: { id: 'x', category: 'c' } }, ['category', 'id']],
    ['$inc', { $inc: { clicks: 1 } }, ['clicks']],
    ['$mul', { $mul: { 'stats.score': 2 } }, ['stats']],
    ['$min', { $min: { rank: 1 } }, ['rank']],
    ['$max', { $max: { tags: 'zzz' } }, ['tags']],
    ['$currentDate', { $currentDate: { updatedAt: true } }, ['updatedAt']],
    ['$push', { $push: { functionality: { $each: ['a'], $sort: 1 } } }, ['functionality']],
    ['$addToSet', { $addToSet: { tags: 'x' } }, ['tags']],
    ['$pull', { $pull: { useCases: { $in: ['a'] } } }, ['useCases']],
    ['$pullAll', { $pullAll: { interface: ['cli'] } }, ['interface']],
    ['$pop', { $pop: { functionality: 1 } }, ['functionality']],
    ['$bit', { $bit: { flags: { and: 1 } } }, ['flags']],
    ['$rename (both names)', { $rename: { name: 'title' } }, ['name', 'title']],
    ['$rename into a content field', { $rename: { summary: 'longDescription' } }, ['longDescription', 'summary']],
    ['top-level plain fields', { name: 'n', url: 'https://example.com' }, ['name', 'url']],
    ['plain fields and operators together', { url: 'u', $inc: { clicks: 1 }, $set: { category: 'c' } }, ['category', 'clicks', 'url']],
    ['positional $', { $set: { 'tags.$': 'x' } }, ['tags']],
    ['all positional $[]', { $set: { 'functionality.$[]': 'x' } }, ['functionality']],
    ['filtered positional $[id]', { $set: { 'useCases.$[item]': 'x' } }, ['useCases']],
    ['an index', { $unset: { 'interface.0': '' } }, ['interface']],
  ])('%s', (_label, update, fields) => {
    const analysis = analyzeUpdate(update);
    expect(analysis.kind).toBe('operators');
    expect(sorted(analysis.fields)).toEqual(fields);
  });

  it('may change content only when it names a content field', () => {
    expect(analyzeUpdate({ $set: { name: 'n' } }).mayChangeContent).toBe(true);
    expect(analyzeUpdate({ $push: { 'tags.$': 'x' } }).mayChangeContent).toBe(true);
    expect(analyzeUpdate({ $rename: { legacyName: 'name' } }).mayChangeContent).toBe(true);
    expect(analyzeUpdate({ $rename: { name: 'legacyName' } }).mayChangeContent).toBe(true);
    expect(analyzeUpdate({ interface: ['cli'] }).mayChangeContent).toBe(true);
    // Business fields that feed no embedding, and fields that are not business fields.
    expect(analyzeUpdate({ $set: { url: 'https://example.com', id: 'x' } }).mayChangeContent).toBe(false);
    expect(analyzeUpdate({ $inc: { clicks: 1 }, $currentDate: { updatedAt: true } }).mayChangeContent).toBe(false);
    expect(analyzeUpdate({}).mayChangeContent).toBe(false);
  });

  it('lists the business fields it names in BUSINESS_FIELDS order, and nothing else', () => {
    const analysis = analyzeUpdate({ $set: { useCases: [], clicks: 3 }, $unset: { url: '' }, interface: ['cli'], $rename: { 'name.x': 'id' } });
    expect(analysis.businessFields).toEqual(['id', 'name', 'url', 'useCases', 'interface']);
    expect(analyzeUpdate({ $inc: { clicks: 1 } }).businessFields).toEqual([]);
  });

  it('ignores what it cannot read (the server names what is wrong with it)', () => {
    for (const update of [null, undefined, 5, 'name', { $set: 5 }, { $set: ['name'] }, { $inc: null }]) {
      const analysis = analyzeUpdate(update);
      expect(analysis.kind).toBe('operators');
      expect(analysis.mayChangeContent).toBe(false);
      expect(analysis.fields.size).toBe(0);
    }
    // A $rename to something that is not a name: only its source is a field it may write.
    expect(sorted(analyzeUpdate({ $rename: { name: 7 } }).fields)).toEqual(['name']);
  });

  it('reads a $set operand without a prototype', () => {
    const operand = Object.assign(Object.create(null) as Record<string, unknown>, { name: 'n' });
    expect(sorted(analyzeUpdate({ $set: operand }).fields)).toEqual(['name']);
    const forged = Object.assign(Object.create(null) as Record<string, unknown>, { 'syncMetadata.overallStatus': 'synced' });
    expect(refusal(() => analyzeUpdate({ $set: forged }))).toContain('"syncMetadata.overallStatus"');
  });
});

describe('analyzeUpdate: every way of writing syncMetadata is refused, naming the path', () => {
  it.each([
    ['$set of a status', { $set: { 'syncMetadata.collections.tools.status': 'synced' } }, 'update.$set', 'syncMetadata.collections.tools.status'],
    ['$set of the whole metadata', { $set: { syncMetadata: {} } }, 'update.$set', 'syncMetadata'],
    ['$set next to a business field', { $set: { name: 'n', 'syncMetadata.overallStatus': 'synced' } }, 'update.$set', 'syncMetadata.overallStatus'],
    ['$unset', { $unset: { syncMetadata: '' } }, 'update.$unset', 'syncMetadata'],
    ['$unset of a hash', { $unset: { 'syncMetadata.collections.tools.contentHash': '' } }, 'update.$unset', 'syncMetadata.collections.tools.contentHash'],
    ['$setOnInsert', { $setOnInsert: { 'syncMetadata.overallStatus': 'synced' } }, 'update.$setOnInsert', 'syncMetadata.overallStatus'],
    ['$inc', { $inc: { 'syncMetadata.collections.tools.vectorVersion': 1 } }, 'update.$inc', 'syncMetadata.collections.tools.vectorVersion'],
    ['$mul', { $mul: { 'syncMetadata.collections.tools.retryCount': 0 } }, 'update.$mul', 'syncMetadata.collections.tools.retryCount'],
    ['$min', { $min: { 'syncMetadata.collections.tools.retryCount': 0 } }, 'update.$min', 'syncMetadata.collections.tools.retryCount'],
    ['$max', { $max: { 'syncMetadata.updatedAt': new Date() } }, 'update.$max', 'syncMetadata.updatedAt'],
    ['$currentDate', { $currentDate: { 'syncMetadata.updatedAt': true } }, 'update.$currentDate', 'syncMetadata.updatedAt'],
    ['$push', { $push: { 'syncMetadata.lastModifiedFields': 'name' } }, 'update.$push', 'syncMetadata.lastModifiedFields'],
    ['$addToSet', { $addToSet: { 'syncMetadata.lastModifiedFields': 'name' } }, 'update.$addToSet', 'syncMetadata.lastModifiedFields'],
    ['$pull', { $pull: { 'syncMetadata.lastModifiedFields': 'name' } }, 'update.$pull', 'syncMetadata.lastModifiedFields'],
    ['$pullAll', { $pullAll: { 'syncMetadata.lastModifiedFields': ['name'] } }, 'update.$pullAll', 'syncMetadata.lastModifiedFields'],
    ['$pop', { $pop: { 'syncMetadata.lastModifiedFields': 1 } }, 'update.$pop', 'syncMetadata.lastModifiedFields'],
    ['$bit', { $bit: { 'syncMetadata.collections.tools.retryCount': { and: 0 } } }, 'update.$bit', 'syncMetadata.collections.tools.retryCount'],
    ['a positional path', { $set: { 'syncMetadata.lastModifiedFields.$': 'x' } }, 'update.$set', 'syncMetadata.lastModifiedFields.$'],
    ['$rename from it', { $rename: { 'syncMetadata.overallStatus': 'status' } }, 'update.$rename', 'syncMetadata.overallStatus'],
    ['$rename onto it', { $rename: { description: 'syncMetadata.overallStatus' } }, 'update.$rename.description', 'syncMetadata.overallStatus'],
    ['$rename onto the whole metadata', { $rename: { backup: 'syncMetadata' } }, 'update.$rename.backup', 'syncMetadata'],
    ['a top-level field', { syncMetadata: { overallStatus: 'synced' } }, 'update.syncMetadata', 'syncMetadata'],
    ['a top-level dotted field', { 'syncMetadata.overallStatus': 'synced' }, 'update.syncMetadata.overallStatus', 'syncMetadata.overallStatus'],
  ])('%s', (_label, update, where, path) => {
    const message = refusal(() => analyzeUpdate(update));
    expect(message.startsWith(`${where}: `)).toBe(true);
    expect(message).toContain(`"${path}"`);
    expect(message).toContain('syncMetadata is written by tool-sync alone');
  });

  it('names where the write came from', () => {
    expect(refusal(() => analyzeUpdate({ $set: { 'syncMetadata.x': 1 } }, 'operations[2].updateOne.update')))
      .toMatch(/^operations\[2\]\.updateOne\.update\.\$set: .*"syncMetadata\.x"/);
  });

  it('refuses only syncMetadata itself, not a field whose name starts the same', () => {
    expect(sorted(analyzeUpdate({ $set: { syncMetadataBackup: 1, 'syncMetadataNotes.a': 2 } }).fields)).toEqual(['syncMetadataBackup', 'syncMetadataNotes']);
  });
});

describe('analyzeUpdate: pipelines', () => {
  it('reads the fields of $set, $addFields and $unset stages', () => {
    const analysis = analyzeUpdate([
      { $set: { name: { $concat: ['$name', ' 2'] }, 'stats.views': 1 } },
      { $addFields: { url: 'https://example.com' } },
      { $unset: 'longDescription' },
      { $unset: ['tags', 'interface.0'] },
    ]);
    expect(analysis.kind).toBe('pipeline');
    expect(sorted(analysis.fields)).toEqual(['interface', 'longDescription', 'name', 'stats', 'tags', 'url']);
    expect(analysis.mayChangeContent).toBe(true);
    expect(analysis.businessFields).toEqual(['name', 'longDescription', 'tags', 'url', 'interface']);
  });

  it('may not change content when its stages name no content field', () => {
    const analysis = analyzeUpdate([{ $set: { url: 'https://example.com', clicks: { $add: ['$clicks', 1] } } }]);
    expect(analysis.mayChangeContent).toBe(false);
    expect(analysis.businessFields).toEqual(['url']);
  });

  it('reads a pipeline that reads syncMetadata without writing it', () => {
    expect(sorted(analyzeUpdate([{ $set: { description: '$syncMetadata.overallStatus' } }]).fields)).toEqual(['description']);
  });

  it.each([
    ['$set', [{ $set: { 'syncMetadata.overallStatus': 'synced' } }], 'update[0].$set', 'syncMetadata.overallStatus'],
    ['$set of the whole metadata', [{ $set: { name: 'n' } }, { $set: { syncMetadata: { $literal: {} } } }], 'update[1].$set', 'syncMetadata'],
    ['$addFields', [{ $addFields: { 'syncMetadata.collections.tools.status': 'synced' } }], 'update[0].$addFields',
      'syncMetadata.collections.tools.status'],
    ['$unset (a string)', [{ $unset: 'syncMetadata' }], 'update[0].$unset', 'syncMetadata'],
    ['$unset (a list)', [{ $unset: ['tags', 'syncMetadata.pendingHashCheck'] }], 'update[0].$unset', 'syncMetadata.pendingHashCheck'],
  ])('refuses a %s stage that writes syncMetadata', (_label, pipeline, where, path) => {
    const message = refusal(() => analyzeUpdate(pipeline));
    expect(message.startsWith(`${where}: `)).toBe(true);
    expect(message).toContain(`"${path}"`);
  });

  it.each([
    ['$project', { $project: { name: 1 } }],
    ['$replaceRoot', { $replaceRoot: { newRoot: { name: '$name' } } }],
    ['$replaceWith', { $replaceWith: { name: '$name' } }],
  ])('refuses a %s stage: it would drop syncMetadata', (stage, body) => {
    const message = refusal(() => analyzeUpdate([{ $set: { name: 'n' } }, body]));
    expect(message.startsWith(`update[1].${stage}: `)).toBe(true);
    expect(message).toContain('a stage that replaces the document would drop syncMetadata');
  });
});

describe('analyzeReplacement', () => {
  it('names every business field (a replacement writes them all) and may always change content', () => {
    const analysis = analyzeReplacement({ _id: new Types.ObjectId(), id: 'x', name: 'n', extra: 1 });
    expect(analysis.kind).toBe('replacement');
    expect(analysis.mayChangeContent).toBe(true);
    expect(analysis.businessFields).toEqual([...BUSINESS_FIELDS]);
    expect(sorted(analysis.fields)).toEqual(['_id', ...BUSINESS_FIELDS, 'extra'].sort());
    const empty = analyzeReplacement({});
    expect(empty.mayChangeContent).toBe(true);
    expect(empty.businessFields).toEqual([...BUSINESS_FIELDS]);
  });

  it('refuses a replacement that carries syncMetadata, naming it', () => {
    const message = refusal(() => analyzeReplacement({ name: 'n', syncMetadata: { overallStatus: 'synced' } }));
    expect(message.startsWith('replacement.syncMetadata: ')).toBe(true);
    expect(message).toContain('"syncMetadata"');
    expect(refusal(() => analyzeReplacement({ 'syncMetadata.overallStatus': 'synced' }, 'operations[0].replaceOne.replacement')))
      .toMatch(/^operations\[0\]\.replaceOne\.replacement\.syncMetadata\.overallStatus: .*"syncMetadata\.overallStatus"/);
  });
});

describe('refuseSyncMetadataInput', () => {
  it('refuses a new tool that carries syncMetadata, even null', () => {
    for (const syncMetadata of [{ overallStatus: 'synced' }, null, 'synced', {}]) {
      const message = refusal(() => {
        refuseSyncMetadataInput({ name: 'n', syncMetadata }, 'create[0]');
      });
      expect(message).toMatch(/^create\[0\]: .*"syncMetadata"/);
    }
  });

  it('lets other input through', () => {
    for (const input of [{ name: 'n' }, { name: 'n', syncMetadata: undefined }, {}, null, undefined, 'x', [{ syncMetadata: {} }]]) {
      expect(() => {
        refuseSyncMetadataInput(input, 'create');
      }).not.toThrow();
    }
  });
});

describe('filterNamesSyncMetadata', () => {
  it.each([
    [{ 'syncMetadata.overallStatus': 'synced' }, 'syncMetadata.overallStatus'],
    [{ syncMetadata: { $exists: true } }, 'syncMetadata'],
    [{ name: 'n', $and: [{ id: 'x' }, { 'syncMetadata.collections.tools.status': 'synced' }] }, 'syncMetadata.collections.tools.status'],
    [{ $or: [{ id: 'x' }, { $nor: [{ 'syncMetadata.pendingHashCheck': null }] }] }, 'syncMetadata.pendingHashCheck'],
  ])('finds the syncMetadata path in %j', (filter, path) => {
    expect(filterNamesSyncMetadata(filter)).toBe(path);
  });

  it('finds none where there is none', () => {
    for (const filter of [{}, { name: 'n', $and: [{ id: 'x' }] }, { syncMetadataBackup: 1 }, null, undefined, 'x', { $expr: { $eq: ['$name', 'n'] } }]) {
      expect(filterNamesSyncMetadata(filter)).toBeUndefined();
    }
  });
});

describe('seededByFilter', () => {
  it('takes plain equality conditions, $eq, and those inside $and', () => {
    const id = new Types.ObjectId();
    const at = new Date('2026-01-01T00:00:00Z');
    expect(seededByFilter({
      _id: id,
      id: 'vscode',
      name: { $eq: 'VS Code' },
      createdAt: at,
      category: { $in: ['editor'] },
      description: { $ne: 'x' },
      'pricing.model': 'free',
      $and: [{ url: 'https://example.com' }, { $and: [{ longDescription: 'long' }] }],
      $or: [{ tags: 'a' }],
      $nor: [{ interface: 'cli' }],
    })).toEqual({ _id: id, id: 'vscode', name: 'VS Code', createdAt: at, url: 'https://example.com', longDescription: 'long' });
  });

  it('seeds nothing from what is not a filter', () => {
    for (const filter of [null, undefined, 'x', 5, [{ id: 'x' }]]) expect(seededByFilter(filter)).toEqual({});
  });

  it('does not count a regular expression as an equality condition (the server seeds nothing from it)', () => {
    expect(seededByFilter({ id: 'x', name: /code/ })).toEqual({ id: 'x' });
  });
});

describe('setOnInsertBy', () => {
  it('takes $set, $setOnInsert and plain fields, by their top-level names', () => {
    expect(sorted(setOnInsertBy({
      $set: { name: 'n', 'pricing.model': 'free' },
      $setOnInsert: { id: 'x' },
      category: 'c',
      $inc: { clicks: 1 },
      $push: { tags: 'a' },
      $unset: { url: '' },
    }))).toEqual(['category', 'id', 'name', 'pricing']);
  });

  it('takes the $set and $addFields stages of a pipeline', () => {
    expect(sorted(setOnInsertBy([{ $set: { name: 'n' } }, { $addFields: { 'a.b': 1 } }, { $unset: 'url' }, 'junk']))).toEqual(['a', 'name']);
  });

  it('takes nothing from what is not an update', () => {
    for (const update of [null, undefined, 5, { $set: 5 }]) expect(setOnInsertBy(update).size).toBe(0);
  });
});

describe('bookkeepingFor', () => {
  const analysis = (update: unknown): UpdateAnalysis => analyzeUpdate(update);

  it('adds nothing to a write that names no business field and may change no content', () => {
    expect(bookkeepingFor(analysis({ $inc: { clicks: 1 } }), null, NOW)).toEqual({});
  });

  it('records the business fields and the time', () => {
    expect(bookkeepingFor(analysis({ $set: { url: 'u', id: 'x' } }), null, NOW)).toEqual({
      [METADATA_UPDATED_AT]: NOW,
      [LAST_MODIFIED_FIELDS]: ['id', 'url'],
    });
  });

  it('adds the pending hash check of a write that may change content', () => {
    const token = new Types.ObjectId();
    expect(bookkeepingFor(analysis({ $set: { description: 'd' } }), token, NOW)).toEqual({
      [METADATA_UPDATED_AT]: NOW,
      [LAST_MODIFIED_FIELDS]: ['description'],
      [PENDING_HASH_CHECK]: token,
    });
    expect(bookkeepingFor(analysis({ $inc: { clicks: 1 } }), token, NOW)).toEqual({ [METADATA_UPDATED_AT]: NOW, [PENDING_HASH_CHECK]: token });
  });
});

describe('withBookkeeping', () => {
  const token = new Types.ObjectId();
  const additions = { [METADATA_UPDATED_AT]: NOW, [LAST_MODIFIED_FIELDS]: ['name'], [PENDING_HASH_CHECK]: token };

  it("keeps the user's operators and $set keys and adds the package's to $set, without mutating the input", () => {
    const userSet = { name: 'n', 'tags.$': 'x' };
    const update = { $set: userSet, $inc: { clicks: 1 }, $unset: { longDescription: '' } };
    const snapshot = structuredClone(update);
    const result = withBookkeeping(update, additions);
    expect(result).toEqual({
      $set: { name: 'n', 'tags.$': 'x', ...additions },
      $inc: { clicks: 1 },
      $unset: { longDescription: '' },
    });
    expect(update).toEqual(snapshot);
    expect(userSet).toEqual({ name: 'n', 'tags.$': 'x' });
    expect(result).not.toBe(update);
  });

  it('adds a $set to an update without one, and keeps top-level fields', () => {
    expect(withBookkeeping({ $push: { tags: 'x' } }, additions)).toEqual({ $push: { tags: 'x' }, $set: additions });
    expect(withBookkeeping({ name: 'n' }, additions)).toEqual({ name: 'n', $set: additions });
    expect(withBookkeeping(undefined, additions)).toEqual({ $set: additions });
  });

  it('appends a $set stage with $literal values to a pipeline, without mutating it', () => {
    const pipeline = [{ $set: { name: 'n' } }, { $unset: 'tags' }];
    const snapshot = structuredClone(pipeline);
    const result = withBookkeeping(pipeline, additions);
    expect(result).toEqual([
      { $set: { name: 'n' } },
      { $unset: 'tags' },
      {
        $set: {
          [METADATA_UPDATED_AT]: { $literal: NOW },
          [LAST_MODIFIED_FIELDS]: { $literal: ['name'] },
          [PENDING_HASH_CHECK]: { $literal: token },
        },
      },
    ]);
    expect(pipeline).toEqual(snapshot);
  });

  it("never drops a malformed $set of the user's: Mongoose and the server refuse it as they would without the package", () => {
    // Mongoose itself throws "Invalid atomic update value for $set" for these; replacing them would let the write through.
    for (const malformed of [5, 'name', null]) {
      const result = withBookkeeping({ $set: malformed, $unset: { url: '' } }, additions) as Record<string, unknown>;
      expect(result.$set, JSON.stringify(malformed)).toBe(malformed);
      expect(result.$unset).toEqual({ url: '' });
    }
  });

  it('returns the update as it is when there is nothing to add', () => {
    const update = { $inc: { clicks: 1 } };
    expect(withBookkeeping(update, {})).toBe(update);
  });
});

describe('replacementAsUpdate', () => {
  it('sets every field (`_id` too: the server refuses another one) and unsets every business field it lacks or leaves undefined', () => {
    const replacement = {
      _id: new Types.ObjectId(),
      id: 'vscode',
      name: 'VS Code',
      description: 'd',
      category: 'editor',
      tags: [],
      url: undefined,
      pricing: null,
      extra: 1,
    };
    const snapshot = { ...replacement };
    expect(replacementAsUpdate(replacement)).toEqual({
      $set: { _id: replacement._id, id: 'vscode', name: 'VS Code', description: 'd', category: 'editor', tags: [], pricing: null, extra: 1 },
      $unset: { longDescription: '', url: '', functionality: '', useCases: '', interface: '' },
    });
    expect(replacement).toEqual(snapshot);
  });

  it('has no $unset when the replacement gives every business field', () => {
    const full = Object.fromEntries(BUSINESS_FIELDS.map((field) => [field, `${field} value`]));
    expect(replacementAsUpdate(full)).toEqual({ $set: full });
  });

  it('unsets every business field of an empty replacement', () => {
    const unsetAll = Object.fromEntries(BUSINESS_FIELDS.map((field) => [field, '']));
    expect(replacementAsUpdate({})).toEqual({ $set: {}, $unset: unsetAll });
    expect(replacementAsUpdate(null)).toEqual({ $set: {}, $unset: unsetAll });
  });

  it('as an update, names every business field and may change content, like the replacement', () => {
    const analysis = analyzeUpdate(replacementAsUpdate({ id: 'x', name: 'n', description: 'd', category: 'c' }));
    expect(analysis.businessFields).toEqual([...BUSINESS_FIELDS]);
    expect(analysis.mayChangeContent).toBe(true);
  });
});
