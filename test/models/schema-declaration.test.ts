import { buildSchema } from '@typegoose/typegoose';
import type mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import * as source from '../../src/index.js';
import {
  CollectionSyncStatus,
  PRICING_MODELS,
  SYNC_COLLECTION_NAMES,
  SYNC_ERROR_CODES,
  SYNC_STATUSES,
  SyncMetadata,
  Tool,
  ToolModel,
} from '../../src/index.js';
import { describeSchema, type SchemaDescription } from '../helpers/describe-schema.js';

function nested(description: SchemaDescription, path: string): SchemaDescription {
  const inner = description.paths[path]?.schema;
  if (inner === undefined) throw new Error(`${path} is not a subdocument`);
  return inner;
}

describe('what the decorators declare', () => {
  // The model's own schema: what users of ToolModel get (typed loosely by Mongoose).
  const tool = describeSchema(ToolModel.schema as mongoose.Schema);
  const meta = nested(tool, 'syncMetadata');
  const collections = nested(meta, 'collections');
  const status = describeSchema(buildSchema(CollectionSyncStatus));

  it('derives every sync enum from its readonly array', () => {
    expect(status.paths.status?.enum).toEqual([...SYNC_STATUSES]);
    expect(meta.paths.overallStatus?.enum).toEqual([...SYNC_STATUSES]);
    expect(status.paths.errorCode?.enum).toEqual([...SYNC_ERROR_CODES]);
    expect(tool.paths.pricing?.enum).toEqual([...PRICING_MODELS]);
    expect(Object.keys(collections.paths).sort()).toEqual([...SYNC_COLLECTION_NAMES].sort());
  });

  it('declares types, defaults and bounds of the collection status', () => {
    expect(status.paths.status).toMatchObject({ instance: 'String', options: { default: 'pending' } });
    expect(status.paths.lastSyncedAt).toMatchObject({ instance: 'Date', options: { default: null } });
    expect(status.paths.lastSyncAttemptAt).toMatchObject({ instance: 'Date', options: { default: null } });
    expect(status.paths.lastError).toMatchObject({ instance: 'String', options: { default: null } });
    expect(status.paths.errorCode).toMatchObject({ instance: 'String', options: { default: null } });
    expect(status.paths.retryCount).toMatchObject({ instance: 'Number', options: { default: 0, min: 0 } });
    expect(status.paths.vectorVersion).toMatchObject({ instance: 'Number', options: { default: 0, min: 0 } });
    expect(status.paths.contentHash).toMatchObject({ instance: 'String', options: { default: '' } });
    expect(status.paths.retryCount?.validators).toContain('user defined: Path `{PATH}` must be an integer, got {VALUE}.');
  });

  it('gives the sync subdocuments no _id, and the tool timestamps', () => {
    expect(status.options._id).toBe(false);
    expect(meta.options._id).toBe(false);
    expect(collections.options._id).toBe(false);
    for (const schema of [status, meta, collections]) expect(schema.paths._id).toBeUndefined();
    expect(tool.options.timestamps).toBe(true);
    expect(tool.options.collection).toBe('tools');
    expect(tool.paths.createdAt?.instance).toBe('Date');
  });

  it('declares the business fields with their types and limits', () => {
    expect(tool.paths.id).toMatchObject({ instance: 'String', options: { maxlength: 100 } });
    expect(tool.paths.name).toMatchObject({ instance: 'String', options: { maxlength: 200, trim: true } });
    expect(tool.paths.description).toMatchObject({ instance: 'String', options: { maxlength: 2000 } });
    expect(tool.paths.longDescription).toMatchObject({ instance: 'String', options: { maxlength: 20000 } });
    for (const list of ['tags', 'functionality', 'useCases', 'interface']) {
      expect(tool.paths[list]).toMatchObject({ instance: 'Array', caster: 'String' });
    }
  });
});

describe('the built package', () => {
  it('has the same schema paths, types, enums, validators and indexes as the source under test', async () => {
    // A path in a variable: dist/ is built by `npm test`'s pretest step, not by the type checker.
    const builtEntry = '../../dist/index.js';
    const built = (await import(builtEntry)) as typeof source;
    expect(built.Tool).not.toBe(Tool);
    for (const [builtClass, sourceClass] of [
      [built.Tool, Tool],
      [built.SyncMetadata, SyncMetadata],
      [built.CollectionSyncStatus, CollectionSyncStatus],
    ] as const) {
      expect(describeSchema(buildSchema(builtClass))).toEqual(describeSchema(buildSchema(sourceClass)));
    }
    expect(Object.keys(built).sort()).toEqual(Object.keys(source).sort());
  });
});
