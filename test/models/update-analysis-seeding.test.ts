import { Types } from 'mongoose';
import { describe, expect, it } from 'vitest';
import { analyzeUpdate, refuseSyncMetadataInput, seedCandidates } from '../../src/models/change-tracking/update-analysis.js';
import { SyncArgumentError } from '../../src/models/errors.js';

/*
 * Issue 17, points 4, 9 and 11, as pure rules (no database): what an upsert's filter may seed,
 * which update operators the server applies, and what a new tool's input may not carry.
 */

describe('seedCandidates: every value an upsert filter may seed (issue 17, point 9)', () => {
  it.each([
    ['a plain value', { url: 'javascript:alert(1)' }, [['url', 'javascript:alert(1)']]],
    ['$eq', { pricing: { $eq: 'bogus' } }, [['pricing', 'bogus']]],
    ['a one-element $in', { url: { $in: ['javascript:alert(1)'] } }, [['url', 'javascript:alert(1)']]],
    ['a one-element $all', { pricing: { $all: ['bogus'] } }, [['pricing', 'bogus']]],
    ['a one-clause $or', { $or: [{ pricing: 'bogus' }] }, [['pricing', 'bogus']]],
    ['$and', { $and: [{ pricing: 'bogus' }, { url: { $eq: 'ftp://x' } }] }, [['pricing', 'bogus'], ['url', 'ftp://x']]],
    ['$or inside $and inside $or', { $or: [{ $and: [{ $or: [{ category: { $in: [''] } }] }] }] }, [['category', '']]],
    // More than any server seeds, so that no normalisation (duplicate $or clauses merged, a
    // one-value $in) seeds a value nobody validated.
    ['every clause of a longer $or', { $or: [{ pricing: 'bogus' }, { pricing: 'bogus' }] }, [['pricing', 'bogus'], ['pricing', 'bogus']]],
    ['every element of a longer $in', { pricing: { $in: ['free', 'bogus'] } }, [['pricing', 'free'], ['pricing', 'bogus']]],
    ['an object compared whole', { url: { host: 'x' } }, [['url', { host: 'x' }]]],
    ['a nested path', { 'url.host': 'x' }, [['url.host', 'x']]],
    ['$eq next to a comparison', { pricing: { $eq: 'bogus', $ne: 'free' } }, [['pricing', 'bogus']]],
  ])('takes %s', (_label, filter, expected) => {
    expect(seedCandidates(filter).map(({ path, value }) => [path, value])).toEqual(expected);
  });

  it('takes nothing the server never seeds from: patterns, comparisons, $nor, $not, $elemMatch, $expr, operator objects inside $in', () => {
    const filter = {
      name: /code/,
      url: { $ne: 'javascript:x', $not: { $eq: 'javascript:y' } },
      pricing: { $eq: /free/, $in: [/paid/] },
      tags: { $elemMatch: { $eq: 'x' }, $all: [{ $elemMatch: { $eq: 'y' } }] },
      category: { $gt: 'a', $exists: true },
      $nor: [{ description: 'd' }],
      $expr: { $eq: ['$id', 'x'] },
      $comment: 'c',
    };
    expect(seedCandidates(filter)).toEqual([]);
  });

  it('takes nothing from what is not a filter, and keeps values as given', () => {
    for (const filter of [null, undefined, 'x', 5, [{ id: 'x' }]]) expect(seedCandidates(filter)).toEqual([]);
    const id = new Types.ObjectId();
    expect(seedCandidates({ _id: { $in: [id] } })).toEqual([{ path: '_id', value: id }]);
  });
});

describe('analyzeUpdate records only operators the server applies (issue 17, point 11)', () => {
  it('an unknown operator (Mongoose strips it) changes nothing, and is recorded as nothing', () => {
    const analysis = analyzeUpdate({ $frobnicate: { name: 'x' } });
    expect(analysis.businessFields).toEqual([]);
    expect(analysis.mayChangeContent).toBe(false);
    expect(analysis.fields.size).toBe(0);
  });

  it('next to a real operator, only the real one is recorded', () => {
    const analysis = analyzeUpdate({ $frobnicate: { name: 'x' }, $set: { url: 'https://example.org' } });
    expect(analysis.businessFields).toEqual(['url']);
    expect(analysis.mayChangeContent).toBe(false);
  });

  it('$setOnInsert changes no tool a write matches: it may write on insert, and is recorded as no modification', () => {
    const analysis = analyzeUpdate({ $setOnInsert: { name: 'n', description: 'd' } });
    expect([...analysis.fields].sort()).toEqual(['description', 'name']);
    expect(analysis.businessFields).toEqual([]);
    expect(analysis.mayChangeContent).toBe(false);
  });

  it('still refuses a syncMetadata path inside an unknown operator: no write names syncMetadata', () => {
    expect(() => analyzeUpdate({ $frobnicate: { 'syncMetadata.overallStatus': 'synced' } })).toThrow(SyncArgumentError);
  });
});

describe("refuseSyncMetadataInput reads the input as Mongoose will (issue 17, point 4)", () => {
  class Dto {
    id = 'dto';
    syncMetadata = { overallStatus: 'synced' };
  }

  it.each([
    ['a dotted key', { id: 'x', 'syncMetadata.collections.tools.status': 'synced' }, 'syncMetadata.collections.tools.status'],
    ['a class instance', new Dto(), 'syncMetadata'],
    ['a Map', new Map<string, unknown>([['id', 'x'], ['syncMetadata.overallStatus', 'synced']]), 'syncMetadata.overallStatus'],
  ])('refuses %s, naming the path', (_label, input, path) => {
    expect(() => { refuseSyncMetadataInput(input, 'operations[0].insertOne.document'); })
      .toThrow(new RegExp(`^operations\\[0\\]\\.insertOne\\.document: .*"${path.replace(/\./g, '\\.')}"`));
  });
});
