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

/** Per client: the package's bulk command in flight (see inBulkTurn). */
const turns = new WeakMap<object, Promise<unknown>>();

/**
 * Sends one of the package's bulk commands when no other of this client's is in flight. FerretDB
 * 1.x holds a pooled connection for each statement that matched until its command ends, so two
 * bulks of 25 at once (a worker's claim and its marks, or two workers of a process) hold 50 and
 * wedge it just as one bulk of 50 would; one at a time, the bound of 25 holds for what is in
 * flight. On MongoDB each waits for at most one other bulk's round trip.
 */
export async function inBulkTurn<T, D extends mongo.Document>(collection: mongo.Collection<D>, send: () => Promise<T>): Promise<T> {
  // The driver's collection knows its client (not in its typings); a collection without one is its own lane.
  const key = (collection as unknown as { client?: object }).client ?? collection;
  const previous = turns.get(key) ?? Promise.resolve();
  const turn = previous.catch(() => undefined).then(send);
  const settled = turn.catch(() => undefined);
  turns.set(key, settled);
  try {
    return await turn;
  } finally {
    if (turns.get(key) === settled) turns.delete(key);
  }
}
