import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectionNameProblem, databaseInUri, databaseNameProblem, defaultDataDir, describeServer, resolveTarget, UsageError } from '../../src/cli/target.js';

// Pure: where a command works, from its flags and environment. Nothing here connects.
const defaults = { embeddedDbName: 'tool_sync' };

function usageError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error('expected a usage error');
}

describe('the server line', () => {
  it('never shows a password, a path or options', () => {
    expect(describeServer('mongodb://operator:s3cret@db1:27017,db2:27017/prod?authSource=admin&tls=true')).toBe('mongodb://operator:***@db1:27017,db2:27017');
    expect(describeServer('mongodb+srv://app:p%40ss@cluster0.example.net/search?retryWrites=true')).toBe('mongodb+srv://app:***@cluster0.example.net');
    expect(describeServer('mongodb://127.0.0.1:4000/')).toBe('mongodb://127.0.0.1:4000');
    expect(describeServer('mongodb://reader@127.0.0.1')).toBe('mongodb://reader@127.0.0.1');
  });
});

describe('the database a connection string names', () => {
  it.each([
    ['mongodb://h:1/search', 'search'],
    ['mongodb://u:p@h1,h2/search?replicaSet=rs', 'search'],
    ['mongodb://h/my%20tools', 'my tools'],
    ['mongodb://h/', undefined],
    ['mongodb://h', undefined],
    ['mongodb://h/?authSource=admin', undefined],
    ['mongodb+srv://c.example.net/x', 'x'],
  ])('%s -> %s', (uri, expected) => {
    expect(databaseInUri(uri)).toBe(expected);
  });
});

describe('resolveTarget', () => {
  it('uses the embedded database only when neither --uri nor MONGODB_URI is set at all', () => {
    expect(resolveTarget({}, defaults, { HOME: '/h', XDG_CACHE_HOME: '/xdg' })).toEqual({ kind: 'embedded', dataDir: '/xdg/tool-sync/data', dbName: 'tool_sync' });
    expect(resolveTarget({ db: 'other', dataDir: '/d' }, defaults, {})).toEqual({ kind: 'embedded', dataDir: '/d', dbName: 'other' });
    expect(usageError(() => resolveTarget({ uri: '' }, defaults, {}))).toMatch(/^--uri is empty/);
    expect(usageError(() => resolveTarget({ uri: ' ' }, defaults, { MONGODB_URI: 'mongodb://h/x' }))).toMatch(/^--uri is empty/);
    expect(usageError(() => resolveTarget({}, defaults, { MONGODB_URI: '' }))).toMatch(/^MONGODB_URI is set but empty/);
  });

  it('keeps the embedded database in the user cache by default', () => {
    expect(defaultDataDir({ TOOL_SYNC_CACHE_DIR: '/cache' })).toBe(join('/cache', 'data'));
    expect(defaultDataDir({ XDG_CACHE_HOME: '/xdg' })).toBe(join('/xdg', 'tool-sync', 'data'));
  });

  it('refuses a connection string the driver cannot parse, naming where it came from', () => {
    expect(usageError(() => resolveTarget({ uri: 'localhost:27017/x' }, defaults, {}))).toMatch(/^invalid connection string \(--uri\): /);
    expect(usageError(() => resolveTarget({}, defaults, { MONGODB_URI: 'mongodb://' }))).toMatch(/^invalid connection string \(MONGODB_URI\): /);
  });

  it('takes the database from the URI, else --db, and refuses none or two different ones', () => {
    expect(resolveTarget({ uri: 'mongodb://h/a' }, defaults, {})).toMatchObject({ kind: 'server', dbName: 'a', from: '--uri' });
    expect(resolveTarget({ db: 'b' }, defaults, { MONGODB_URI: 'mongodb://h/' })).toMatchObject({ kind: 'server', dbName: 'b', from: 'MONGODB_URI' });
    expect(resolveTarget({ uri: 'mongodb://h/a', db: 'a' }, defaults, {})).toMatchObject({ dbName: 'a' });
    expect(usageError(() => resolveTarget({ uri: 'mongodb://h/a', db: 'b' }, defaults, {}))).toMatch(/names database "a" and --db names "b"/);
    expect(usageError(() => resolveTarget({ uri: 'mongodb://h:27017' }, defaults, {}))).toMatch(/names no database: .*--db/);
    expect(usageError(() => resolveTarget({ uri: 'mongodb://h/a.b' }, defaults, {}))).toMatch(/names database "a\.b": a database name cannot contain "\."/);
  });

  it('gives the demo its own database whatever the URI names, and --data-dir only to the embedded database', () => {
    expect(resolveTarget({ uri: 'mongodb://h/prod' }, { ...defaults, fixedDbName: 'demo' }, {})).toMatchObject({ dbName: 'demo' });
    expect(resolveTarget({ uri: 'mongodb://h' }, { ...defaults, fixedDbName: 'demo' }, {})).toMatchObject({ dbName: 'demo' });
    expect(usageError(() => resolveTarget({ uri: 'mongodb://h/a', dataDir: '/d' }, defaults, {}))).toMatch(/--data-dir is for the embedded database/);
  });
});

describe('names', () => {
  it('refuses database and collection names the server would', () => {
    for (const name of ['', 'a.b', 'a/b', 'a b', 'a$b', 'x'.repeat(64)]) expect(databaseNameProblem(name), name).toBeDefined();
    expect(databaseNameProblem('search_prod')).toBeUndefined();
    for (const name of ['', 'a$b', 'system.views', 'a\0b']) expect(collectionNameProblem(name), name).toBeDefined();
    expect(collectionNameProblem('tools.archive')).toBeUndefined();
  });
});
