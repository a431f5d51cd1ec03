import mongoose from 'mongoose';
import { describe, expect, it } from 'vitest';
import { LAST_ERROR_MAX_LENGTH, SYNC_ERROR_CODES, SyncArgumentError, ToolModel } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

const { ValidationError } = mongoose.Error;

/** Saving must fail with a ValidationError whose message names the path and the value. */
async function expectRejected(save: () => Promise<unknown>, path: string, value: string): Promise<void> {
  const error: unknown = await save().then(() => null, (e: unknown) => e);
  expect(error, `${path} = ${value} was accepted`).toBeInstanceOf(ValidationError);
  const message = (error as Error).message;
  expect(message).toContain(path);
  expect(message).toContain(value);
}

const statusPath = 'syncMetadata.collections.functionality.status';
const invalidNumbers: [string, number][] = [['negative', -1], ['fractional', 1.5]];

/** Every way a value reaches a document: constructor input, nested assignment (new and loaded), doc.set(). */
const ways = {
  'constructor input': (path: string, value: unknown) => {
    const doc = new ToolModel(toolInput(nest(path, value)));
    return Promise.resolve({ save: () => doc.save(), id: doc.id });
  },
  'assignment on a new document': (path: string, value: unknown) => {
    const doc = new ToolModel(toolInput());
    assign(doc, path, value);
    return Promise.resolve({ save: () => doc.save(), id: doc.id });
  },
  'assignment on a loaded document': async (path: string, value: unknown) => {
    const created = await ToolModel.create(toolInput());
    const doc = await ToolModel.findById(created._id).orFail();
    assign(doc, path, value);
    return { save: () => doc.save(), id: doc.id };
  },
  'doc.set(path, value) on a loaded document': async (path: string, value: unknown) => {
    const created = await ToolModel.create(toolInput());
    const doc = await ToolModel.findById(created._id).orFail();
    doc.set(path, value);
    return { save: () => doc.save(), id: doc.id };
  },
};

function nest(path: string, value: unknown): Record<string, unknown> {
  return path.split('.').reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
}

/** Plain JavaScript assignment to the nested property, as application code would write it. */
function assign(doc: object, path: string, value: unknown): void {
  const keys = path.split('.');
  const last = keys.pop() ?? '';
  let target = doc as Record<string, unknown>;
  for (const key of keys) target = target[key] as Record<string, unknown>;
  target[last] = value;
}

const invalidValues: [string, unknown][] = [
  [statusPath, 'bogus'],
  [statusPath, null],
  ['syncMetadata.overallStatus', 'done'],
  ['syncMetadata.overallStatus', null],
  ['syncMetadata.collections.tools.errorCode', 'OOPS'],
  ...invalidNumbers.map(([, n]) => ['syncMetadata.collections.usecases.retryCount', n] as [string, number]),
  ...invalidNumbers.map(([, n]) => ['syncMetadata.collections.interface.vectorVersion', n] as [string, number]),
];
/** Valid values are refused all the same: they would forge sync state. */
const forgeries: [string, unknown][] = [
  [statusPath, 'synced'],
  ['syncMetadata.overallStatus', 'synced'],
  ['syncMetadata.collections.tools.contentHash', '0123456789abcdef'],
  ['syncMetadata.collections.tools.vectorVersion', 7],
];

describe.each(Object.entries(ways))('a user cannot write sync metadata, by %s', (_way, prepare) => {
  it.each([...invalidValues, ...forgeries])('refuses %s = %s with SyncArgumentError, and stores nothing', async (path, value) => {
    const { save, id } = await prepare(path, value);
    const before = await rawTool({ id });
    const error: unknown = await save().then(() => null, (e: unknown) => e);
    expect(error, `${path} = ${String(value)} was accepted`).toBeInstanceOf(SyncArgumentError);
    // Constructor input names the whole `syncMetadata`; the other ways name the path itself.
    expect((error as Error).message).toMatch(/syncMetadata/);
    if (_way !== 'constructor input') expect((error as Error).message).toContain(path);
    expect(await rawTool({ id })).toEqual(before);
  });
});

/** A stored tool as Mongoose loads it: what `validate()` reports on it is what the schema declares. */
const loaded = (input: Record<string, unknown>): ReturnType<typeof ToolModel.hydrate> => ToolModel.hydrate({ _id: new mongoose.Types.ObjectId(), ...input });

describe('the schema declares valid sync metadata (what validate() reports on a stored tool)', () => {
  it.each(invalidValues)('rejects %s = %s, naming the path and the value', async (path, value) => {
    const error: unknown = await loaded(toolInput(nest(path, value))).validate().then(() => null, (e: unknown) => e);
    expect(error, `${path} = ${String(value)} was accepted`).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toContain(String(value));
  });

  it.each([...SYNC_ERROR_CODES, null])('errorCode accepts %s', async (code) => {
    await expect(loaded(toolInput(nest('syncMetadata.collections.tools.errorCode', code))).validate()).resolves.toBeUndefined();
  });

  it.each(['synced', 'pending', 'failed', 'stale'] as const)('status and overallStatus accept %s', async (status) => {
    const input = toolInput({ syncMetadata: { overallStatus: status, collections: { interface: { status } } } });
    await expect(loaded(input).validate()).resolves.toBeUndefined();
  });
});

describe('lastError', () => {
  it('truncates a 50 KB message to 1,000 characters and the failure is recorded', async () => {
    const message = 'Embedding API said: ' + 'x'.repeat(50 * 1024);
    const doc = await ToolModel.create(toolInput());
    await ToolModel.markCollectionFailed(doc._id, 'tools', message, 'embedding');
    const stored = (await rawTool({ _id: doc._id })) as { syncMetadata: { collections: { tools: { lastError: string; status: string } } } };
    expect(stored.syncMetadata.collections.tools.status).toBe('failed');
    expect(stored.syncMetadata.collections.tools.lastError).toHaveLength(LAST_ERROR_MAX_LENGTH);
    expect(stored.syncMetadata.collections.tools.lastError.startsWith('Embedding API said: xxx')).toBe(true);
    expect(stored.syncMetadata.collections.tools.lastError.endsWith('…')).toBe(true);
  });

  it('keeps a message at the limit as it is, takes an Error\'s message, and never splits a surrogate pair', () => {
    const doc = new ToolModel(toolInput());
    const exact = 'e'.repeat(LAST_ERROR_MAX_LENGTH);
    doc.set('syncMetadata.collections.tools.lastError', exact);
    expect(doc.syncMetadata.collections.tools.lastError).toBe(exact);
    doc.set('syncMetadata.collections.tools.lastError', new Error('socket hang up'));
    expect(doc.syncMetadata.collections.tools.lastError).toBe('socket hang up');
    doc.set('syncMetadata.collections.tools.lastError', 'a'.repeat(LAST_ERROR_MAX_LENGTH - 2) + '😀'.repeat(10));
    const cut = doc.syncMetadata.collections.tools.lastError ?? '';
    expect(cut.length).toBeLessThanOrEqual(LAST_ERROR_MAX_LENGTH);
    expect(cut).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });
});

describe('business field validation names the field and the value', () => {
  // [path, value, what the message must show]: text is trimmed and interfaces lowercased first.
  it.each([
    ['id', 'Not A Slug', 'Not A Slug'],
    ['id', 'a'.repeat(101), 'aaaaaaaaaa'],
    ['name', '   ', 'got '],
    ['description', 'd'.repeat(2001), 'dddddddddd'],
    ['longDescription', 'l'.repeat(20_001), 'llllllllll'],
    ['url', 'ftp://example.org/file', 'ftp://example.org/file'],
    ['url', 'not a url', 'not a url'],
    ['pricing', 'priceless', 'priceless'],
    ['interface', ['Web Browser'], 'web browser'],
    ['tags', [''], '[""]'],
    ['useCases', ['u'.repeat(1001)], 'uuuuuuuuuu'],
  ])('rejects %s (case %#)', async (path, value, shown) => {
    const doc = new ToolModel(toolInput({ [path]: value }));
    await expectRejected(() => doc.save(), path, shown);
    expect(await rawTool({ _id: doc._id })).toBeNull();
  });

  it.each(['id', 'name', 'description', 'category'])('requires %s', async (path) => {
    const doc = new ToolModel(toolInput({ [path]: undefined }));
    await expectRejected(() => doc.save(), path, 'required');
  });

  it('trims text and lowercases interfaces', async () => {
    const doc = await ToolModel.create(toolInput({ name: '  Spaced  ', tags: [' a ', 'b'], interface: [' CLI ', 'Web'] }));
    expect(doc.name).toBe('Spaced');
    expect([...doc.tags]).toEqual(['a', 'b']);
    expect([...doc.interface]).toEqual(['cli', 'web']);
  });

  it('keeps the stored document when an update of a loaded one is invalid', async () => {
    const created = await ToolModel.create(toolInput());
    const before = await rawTool({ _id: created._id });
    const doc = await ToolModel.findById(created._id).orFail();
    doc.name = 'Renamed';
    doc.url = 'javascript:alert(1)';
    await expectRejected(() => doc.save(), 'url', 'javascript:alert(1)');
    expect(await rawTool({ _id: created._id })).toEqual(before);
  });
});

describe('a new tool given syncMetadata', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['a status', { overallStatus: 'synced' }, '{"overallStatus":"synced"}'],
    ['a collection\'s state', { collections: { tools: { status: 'synced', retryCount: 3 } } }, '{"collections":{"tools":{"status":"synced","retryCount":3}}}'],
    ['an empty object', {}, '{}'],
  ])('is refused with what the caller passed (%s), not the defaults filled in around it, and nothing is written', async (_name, given, shown) => {
    const error: unknown = await ToolModel.create(toolInput({ id: 'forged-create', syncMetadata: given })).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(SyncArgumentError);
    expect((error as Error).message).toBe(`syncMetadata: expected a new tool without syncMetadata: tool-sync writes it, got ${shown}`);
    expect(await rawTool({ id: 'forged-create' })).toBeNull();
  });
});
