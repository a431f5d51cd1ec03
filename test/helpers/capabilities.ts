import mongoose from 'mongoose';

/**
 * Whether the server supports an update form, found by trying it with the raw driver on a
 * scratch collection: a form the engine refuses (or silently ignores) for the driver too is
 * skipped by the tests that need it, with the reason printed.
 */
export async function rawUpdateWorks(
  seed: Record<string, unknown>,
  filter: Record<string, unknown>,
  update: Record<string, unknown> | Record<string, unknown>[],
  expect: (stored: Record<string, unknown> | null) => boolean,
  options: mongoose.mongo.UpdateOptions = {},
): Promise<boolean> {
  const db = mongoose.connection.db;
  if (db === undefined) throw new Error('not connected');
  const scratch = db.collection<Record<string, unknown>>(`capability_${new mongoose.Types.ObjectId().toHexString()}`);
  try {
    const { insertedId } = await scratch.insertOne({ ...seed });
    await scratch.updateOne({ _id: insertedId, ...filter }, update, options);
    return expect(await scratch.findOne({ _id: insertedId }));
  } catch {
    return false;
  } finally {
    await scratch.drop().catch(() => undefined);
  }
}

/** Prints why a test is skipped on this engine (the suite's convention: never a silent skip). */
export function skipReason(what: string, engine: string): string {
  const reason = `[skip reason] ${engine} does not support ${what} (tried with the raw driver); the test needs it`;
  console.log(reason);
  return reason;
}

/** Whether concurrent conditional updates of one document are atomic on this server, and what showed it. */
export interface Atomicity {
  atomic: boolean;
  evidence: string;
}

/**
 * Whether the server applies concurrent conditional updates of one document atomically, as
 * MongoDB does (two compare-and-swaps of the same state: exactly one matches). Tried with the raw
 * driver: two clients race `updateOne({ _id, v: round }, { $set: { v: round + 1 } })` for some
 * rounds; a round where both matched shows it is not. FerretDB 1.x applies an update as a read, a
 * change in memory and a write, so a server whose `buildInfo` says so counts as not atomic without
 * racing (a race may happen not to show it).
 */
export async function conditionalUpdatesAtomic(uri: string, dbName: string, rounds = 30): Promise<Atomicity> {
  const clients = [new mongoose.mongo.MongoClient(uri), new mongoose.mongo.MongoClient(uri)] as const;
  try {
    await Promise.all(clients.map((client) => client.connect()));
    const info = (await clients[0].db(dbName).admin().command({ buildInfo: 1 })) as { ferretdbVersion?: unknown };
    if (typeof info.ferretdbVersion === 'string' && /^v?1\./.test(info.ferretdbVersion)) {
      return { atomic: false, evidence: `buildInfo reports FerretDB ${info.ferretdbVersion}, which applies an update as a read, a change in memory and a write` };
    }
    const scratchName = `atomicity_${new mongoose.Types.ObjectId().toHexString()}`;
    const [first, second] = clients.map((client) => client.db(dbName).collection<{ _id: mongoose.Types.ObjectId; v: number }>(scratchName));
    if (first === undefined || second === undefined) throw new Error('two clients expected');
    try {
      const { insertedId } = await first.insertOne({ _id: new mongoose.Types.ObjectId(), v: 0 });
      for (let round = 0; round < rounds; round += 1) {
        const swap = { $set: { v: round + 1 } };
        const results = await Promise.all([first.updateOne({ _id: insertedId, v: round }, swap), second.updateOne({ _id: insertedId, v: round }, swap)]);
        const matched = results.filter((result) => result.matchedCount === 1).length;
        if (matched === 2) return { atomic: false, evidence: `round ${round + 1}: both of two racing conditional updates of one document matched` };
        if (matched === 0) throw new Error(`conditionalUpdatesAtomic: round ${round + 1}: neither conditional update matched`);
      }
      return { atomic: true, evidence: `${rounds} rounds of two racing conditional updates: one matched each time` };
    } finally {
      await first.drop().catch(() => undefined);
    }
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
}
