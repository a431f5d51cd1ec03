import { createServer } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { resolveDatabase } from '../db/resolve.js';
import { type CliIo } from './program.js';
import { uriWithDatabase } from './target.js';

/** `tool-sync db`'s port when there is no `--port`: MongoDB's own, so a service's usual connection string finds it. */
export const DEFAULT_DB_PORT = 27017;

/** Whether something on this machine holds `port` on 127.0.0.1 (tried by listening on it, as the server would). */
function portTaken(port: number): Promise<boolean> {
  return new Promise((resolved) => {
    const probe = createServer();
    probe.once('error', () => { resolved(true); });
    probe.listen(port, '127.0.0.1', () => { probe.close(() => { resolved(false); }); });
  });
}

export interface ServeOptions {
  port: number;
  dataDir: string;
  /** The database the printed URI names. */
  dbName: string;
}

/**
 * `tool-sync db`: the embedded database in the foreground on 127.0.0.1:`port`, its data in
 * `dataDir` (kept), until Ctrl-C; then it stops the server, releases the folder and returns.
 * stdout gets one line, `MONGODB_URI=…`, for a script to read; stderr says what runs where.
 */
export async function serveDatabase({ port, dataDir, dbName }: ServeOptions, io: CliIo): Promise<void> {
  const say = (line: string): void => { io.stderr.write(`tool-sync: ${line}\n`); };
  const configured = io.env.MONGODB_URI;
  if (configured !== undefined && configured !== '') say('MONGODB_URI is set: this command starts a server of its own all the same (and prints its URI)');
  if (await portTaken(port)) throw new Error(`port ${port} on 127.0.0.1 is in use (another MongoDB, or tool-sync db already running?): pass --port <n>`);
  // Listened for before the server starts, so that a Ctrl-C during the start stops it as soon as it is up.
  const stop = new AbortController();
  io.interrupt.handler = () => { stop.abort(); };
  const stopped = new Promise<void>((resolved) => { stop.signal.addEventListener('abort', () => { resolved(); }, { once: true }); });
  const database = await resolveDatabase({
    env: { ...io.env, MONGODB_URI: undefined },
    dataDir: isAbsolute(dataDir) ? dataDir : resolve(dataDir),
    port,
    log: (line) => { io.stderr.write(`[tool-sync db] ${line}\n`); },
    announce: false,
  });
  const uri = uriWithDatabase(database.uri, dbName);
  say(`${database.engine.name} ${database.engine.version} (${database.where}) on 127.0.0.1:${port}; Ctrl-C stops it`);
  io.stdout.write(`MONGODB_URI=${uri}\n`);
  // The server's process is unref'd (it lives as long as this one): this keeps this one alive until Ctrl-C.
  const keepAlive = setInterval(() => undefined, 60 * 60 * 1000);
  try {
    await stopped;
  } finally {
    clearInterval(keepAlive);
  }
  say('stopping the database');
  await database.stop();
  say('stopped');
}
