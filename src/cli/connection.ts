import mongoose from 'mongoose';
import { redactUri, resolveDatabase } from '../db/index.js';
import { ToolModel } from '../models/tool.js';

export interface ConnectionOptions {
  uri?: string;
  /** Database to use when the URI names none (the embedded database always uses this one). */
  defaultDbName: string;
  /** Use `defaultDbName` even when the URI names another database. */
  forceDbName?: boolean;
  /** Create the model's indexes. Off by default: on a production collection an index build is the operator's decision (`tool-sync indexes --apply`). */
  ensureIndexes?: boolean;
}

export interface OpenDatabase {
  description: string;
  close(): Promise<void>;
}

function namesDatabase(uri: string): boolean {
  const path = uri.replace(/^mongodb(\+srv)?:\/\/[^/]*/, '').split('?')[0] ?? '';
  return path.replace(/^\//, '') !== '';
}

/** Connects ToolModel's connection: `--uri`, else MONGODB_URI, else the embedded database of the db module. */
export async function openDatabase(options: ConnectionOptions): Promise<OpenDatabase> {
  const explicit = options.uri ?? process.env.MONGODB_URI;
  const embedded = explicit === undefined || explicit === '' ? await resolveDatabase() : undefined;
  const uri = embedded?.uri ?? explicit ?? '';
  try {
    await mongoose.connect(uri, {
      serverSelectionTimeoutMS: 5_000,
      autoIndex: false,
      autoCreate: false,
      ...(embedded !== undefined || options.forceDbName === true || !namesDatabase(uri) ? { dbName: options.defaultDbName } : {}),
    });
    if (options.ensureIndexes === true) await ToolModel.createIndexes();
  } catch (error) {
    await mongoose.disconnect();
    await embedded?.stop();
    throw error;
  }
  const dbName = mongoose.connection.name;
  return {
    description: embedded !== undefined
      ? `embedded ${embedded.engine.name} ${embedded.engine.version}, database ${dbName}`
      : `${redactUri(uri)}, database ${dbName}`,
    async close() {
      await mongoose.disconnect();
      await embedded?.stop();
    },
  };
}
