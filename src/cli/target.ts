import { isAbsolute, join, resolve } from 'node:path';
import mongoose from 'mongoose';
import { projectCacheDir } from '../db/index.js';

/** A mistake in how the CLI was called (arguments or environment): one line, plus a hint to `--help`. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Where a command works: a server named by a connection string, or the embedded database. */
export type Target =
  | { kind: 'server'; uri: string; from: '--uri' | 'MONGODB_URI'; dbName: string }
  | { kind: 'embedded'; dataDir: string; dbName: string };

export interface TargetFlags {
  uri?: string;
  db?: string;
  dataDir?: string;
}

export interface TargetDefaults {
  /** The embedded database's database when there is no `--db`. */
  embeddedDbName: string;
  /** A database the command always uses, whatever the URI or `--db` say (the demo's own). */
  fixedDbName?: string;
}

/** The embedded database's folder when there is no `--data-dir`: `data` in the user cache folder of the db module. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(projectCacheDir(env), 'data');
}

const FORBIDDEN_IN_DB_NAME = /[/\\. "$\0]/;

/** Why `name` cannot be a MongoDB database name, or undefined when it can. */
export function databaseNameProblem(name: string): string | undefined {
  if (name === '') return 'a database name cannot be empty';
  const forbidden = FORBIDDEN_IN_DB_NAME.exec(name);
  if (forbidden !== null) return `a database name cannot contain ${JSON.stringify(forbidden[0])}`;
  if (Buffer.byteLength(name) > 63) return 'a database name has at most 63 bytes';
  return undefined;
}

/** Why `name` cannot be the tools collection, or undefined when it can. */
export function collectionNameProblem(name: string): string | undefined {
  if (name === '') return 'a collection name cannot be empty';
  if (name.includes('$') || name.includes('\0')) return 'a collection name cannot contain "$" or a NUL character';
  if (name.startsWith('system.')) return 'collections named system.* belong to the server';
  return undefined;
}

/** The database a connection string names (`mongodb://host/<database>?options`), if any. */
export function databaseInUri(uri: string): string | undefined {
  const afterHosts = uri.replace(/^[a-z+]+:\/\/[^/?]*/i, '');
  const path = (afterHosts.split('?')[0] ?? '').replace(/^\//, '');
  if (path === '') return undefined;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** The connection string `uri` naming database `dbName` instead of the one it names, if any. */
export function uriWithDatabase(uri: string, dbName: string): string {
  return uri.replace(/^(mongodb(?:\+srv)?:\/\/[^/?]*)(\/[^?]*)?/, `$1/${dbName}`);
}

/** The server part of a connection string, as it may be printed: no password, no path, no options. */
export function describeServer(uri: string): string {
  const redacted = uri.replace(/^([a-z+]+:\/\/)([^:@/?]+):[^@/?]*@/i, '$1$2:***@');
  return redacted.replace(/^([a-z+]+:\/\/[^/?]*).*$/i, '$1');
}

/**
 * Where a command works, from `--uri`, else `MONGODB_URI`, else the embedded database (only when
 * neither is set at all). An empty or unparsable connection string is an error, never a reason to
 * fall back; so is a database that is named twice differently, or not at all.
 */
export function resolveTarget(flags: TargetFlags, defaults: TargetDefaults, env: NodeJS.ProcessEnv = process.env): Target {
  const from = flags.uri !== undefined ? '--uri' : env.MONGODB_URI !== undefined ? 'MONGODB_URI' : undefined;
  if (from === undefined) {
    const dataDir = flags.dataDir ?? defaultDataDir(env);
    return {
      kind: 'embedded',
      dataDir: isAbsolute(dataDir) ? dataDir : resolve(dataDir),
      dbName: defaults.fixedDbName ?? flags.db ?? defaults.embeddedDbName,
    };
  }
  const uri = (from === '--uri' ? flags.uri : env.MONGODB_URI) ?? '';
  if (uri.trim() === '') {
    throw new UsageError(from === '--uri'
      ? '--uri is empty: give a connection string (leave --uri and MONGODB_URI out for the embedded database)'
      : 'MONGODB_URI is set but empty: set it to a connection string, or unset it for the embedded database');
  }
  try {
    // The driver's own parser; it only parses (nothing connects until connect()).
    new mongoose.mongo.MongoClient(uri);
  } catch (error) {
    throw new UsageError(`invalid connection string (${from}): ${error instanceof Error ? error.message : String(error)}`);
  }
  if (flags.dataDir !== undefined) {
    throw new UsageError(`--data-dir is for the embedded database, and ${from} names a server`);
  }
  if (defaults.fixedDbName !== undefined) return { kind: 'server', uri, from, dbName: defaults.fixedDbName };
  const named = databaseInUri(uri);
  if (named !== undefined) {
    const problem = databaseNameProblem(named);
    if (problem !== undefined) throw new UsageError(`the connection string (${from}) names database "${named}": ${problem}`);
  }
  if (named !== undefined && flags.db !== undefined && named !== flags.db) {
    throw new UsageError(`the connection string (${from}) names database "${named}" and --db names "${flags.db}": give one`);
  }
  const dbName = named ?? flags.db;
  if (dbName === undefined) {
    throw new UsageError(`the connection string (${from}) names no database: add one (mongodb://host/<database>) or pass --db <name>`);
  }
  return { kind: 'server', uri, from, dbName };
}
