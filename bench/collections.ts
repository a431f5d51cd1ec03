import mongoose, { type mongo } from 'mongoose';
import { declaredIndexes } from '../src/migrations/index-check.js';
import { ToolModel } from '../src/models/tool.js';

/** Drops a collection that may not exist (a drop, not a delete: FerretDB deletes one by one). */
export async function dropIfExists(collection: mongo.Collection): Promise<void> {
  await collection.drop().catch((error: unknown) => {
    if (!(error instanceof mongoose.mongo.MongoServerError && error.codeName === 'NamespaceNotFound')) throw error;
  });
}

/** Empties a collection and gives it the indexes the Tool model declares. */
export async function recreateWithToolIndexes(collection: mongo.Collection): Promise<void> {
  await dropIfExists(collection);
  for (const { name, key, unique } of declaredIndexes(ToolModel)) {
    if (name !== '_id_') await collection.createIndex(key, { name, unique });
  }
}
