import mongoose from 'mongoose';
import { engineFromBuildInfo, type BuildInfo } from '../db/engine.js';
import { resolveDatabase } from '../db/resolve.js';
import { createToolModel, type ToolModelType } from '../models/create-tool-model.js';
import { describeServer, type Target } from './target.js';

export interface OpenDatabase {
  /** The Tool model on the command's collection. */
  model: ToolModelType;
  /** Which server, database and collection: the line printed before a command does anything. */
  description: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** The configuration variables the embedded database reads (see resolveDatabase). */
  env: NodeJS.ProcessEnv;
  /** Where the embedded database's lines go. */
  log: (line: string) => void;
}

async function engineName(connection: mongoose.Connection): Promise<string | undefined> {
  try {
    const info = (await connection.db?.admin().command({ buildInfo: 1 })) as BuildInfo | undefined;
    const engine = engineFromBuildInfo(info);
    return `${engine.name} ${engine.version}`;
  } catch {
    // buildInfo is only for the line printed; a server that refuses it is still used.
    return undefined;
  }
}

/**
 * A connection of the command's own to the target's server and database, and the Tool model on
 * `collection` there (the default connection is left to whoever else runs in the process). The
 * embedded database is the db module's choice of engine (resolveDatabase), over the target's data
 * folder, which outlives the command.
 */
export async function openDatabase(target: Target, collection: string, { env, log }: OpenOptions): Promise<OpenDatabase> {
  const embedded = target.kind === 'embedded'
    ? await resolveDatabase({ dataDir: target.dataDir, log, announce: false, env })
    : undefined;
  const uri = target.kind === 'server' ? target.uri : embedded?.uri ?? '';
  let connection: mongoose.Connection | undefined;
  const close = async (): Promise<void> => {
    try {
      await connection?.close();
    } finally {
      await embedded?.stop();
    }
  };
  try {
    connection = mongoose.createConnection(uri, { serverSelectionTimeoutMS: 5_000, autoIndex: false, autoCreate: false, dbName: target.dbName });
    await connection.asPromise();
    let server: string;
    if (target.kind === 'server') {
      const engine = await engineName(connection);
      server = `${describeServer(target.uri)} (${engine === undefined ? '' : `${engine}, `}from ${target.from})`;
    } else {
      server = embedded === undefined ? `embedded database (${target.dataDir})` : `embedded ${embedded.engine.name} ${embedded.engine.version} (${embedded.where})`;
    }
    const model = createToolModel(connection, { collection, modelName: collection === 'tools' ? 'Tool' : `Tool:${collection}` });
    return { model, description: `server ${server}, database ${connection.name}, collection ${collection}`, close };
  } catch (error) {
    await close();
    throw error;
  }
}
