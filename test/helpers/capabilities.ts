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
