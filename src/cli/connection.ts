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

const logToStderr = (line: string): void => { process.stderr.write(`[tool-sync db] ${line}\n`); };

async function engineName(): Promise<string | undefined> {
  try {
    const info = (await mongoose.connection.db?.admin().command({ buildInfo: 1 })) as BuildInfo | undefined;
    const engine = engineFromBuildInfo(info);
    return `${engine.name} ${engine.version}`;
  } catch {
    // buildInfo is only for the line printed; a server that refuses it is still used.
    return undefined;
  }
}

/**
 * Connects the default Mongoose connection to the target's server and database, and gives the Tool
 * model on `collection`. The embedded database is the db module's choice of engine (resolveDatabase),
 * over the target's data folder, which outlives the command.
 */
export async function openDatabase(target: Target, collection: string): Promise<OpenDatabase> {
  const embedded = target.kind === 'embedded'
    ? await resolveDatabase({ dataDir: target.dataDir, log: logToStderr, announce: false })
    : undefined;
  const close = async (): Promise<void> => {
    try {
      await mongoose.disconnect();
    } finally {
      await embedded?.stop();
    }
  };
  try {
    const uri = target.kind === 'server' ? target.uri : embedded?.uri ?? '';
    await mongoose.connect(uri, { serverSelectionTimeoutMS: 5_000, autoIndex: false, autoCreate: false, dbName: target.dbName });
    let server: string;
    if (target.kind === 'server') {
      const engine = await engineName();
      server = `${describeServer(target.uri)} (${engine === undefined ? '' : `${engine}, `}from ${target.from})`;
    } else {
      server = embedded === undefined ? `embedded database (${target.dataDir})` : `embedded ${embedded.engine.name} ${embedded.engine.version} (${embedded.where})`;
    }
    // ToolModel is the default connection's `Tool` on `tools`; another collection gets a model of its own name.
    const model = createToolModel(mongoose.connection, { collection, modelName: collection === 'tools' ? 'Tool' : `Tool:${collection}` });
    return { model, description: `server ${server}, database ${mongoose.connection.name}, collection ${collection}`, close };
  } catch (error) {
    await close();
    throw error;
  }
}
