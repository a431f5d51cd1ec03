import { type Connection, type mongo } from 'mongoose';
import { type BuildInfo, engineFromBuildInfo, type EngineInfo } from '../db/engine.js';

/**
 * How many conditional updates the package sends in one bulk command (a settle's, a
 * migration's). One bulk per batch read (1,000 tools), so the follow-up of a write does not grow
 * with the number of tools it changed; but FerretDB 1.x never answers an update command whose
 * statements outnumber its connection pool (50 with PostgreSQL, 100 with SQLite: each holds a
 * pooled connection until the command ends) and stops answering others meanwhile, so there the
 * package sends 25 at a time.
 */
export const UPDATES_PER_BULK = 1000;
export const FERRETDB_V1_UPDATES_PER_BULK = 25;

export function updatesPerBulkOn(engine: EngineInfo): number {
  const ferretDbV1 = engine.name === 'FerretDB' && /^v?1\./.test(engine.version);
  return ferretDbV1 ? FERRETDB_V1_UPDATES_PER_BULK : UPDATES_PER_BULK;
}

/** Per client: the server is asked once, and only by a write with more updates than every engine takes. */
const perClient = new WeakMap<mongo.MongoClient, Promise<number>>();

async function askServer(connection: Connection): Promise<number> {
  try {
    const info = (await connection.db?.admin().command({ buildInfo: 1 })) as BuildInfo | undefined;
    return updatesPerBulkOn(engineFromBuildInfo(info));
  } catch {
    // A server that refuses buildInfo is sent what every engine takes.
    return FERRETDB_V1_UPDATES_PER_BULK;
  }
}

/** The bulk size for `writes` updates on this connection's server. */
export async function updatesPerBulk(connection: Connection, writes: number): Promise<number> {
  if (writes <= FERRETDB_V1_UPDATES_PER_BULK) return FERRETDB_V1_UPDATES_PER_BULK;
  const client = connection.getClient();
  let size = perClient.get(client);
  if (size === undefined) {
    size = askServer(connection);
    perClient.set(client, size);
  }
  return size;
}
