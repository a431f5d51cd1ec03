import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';

/** Valid business fields for a new tool; `id` is unique per call. */
export function toolInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `tool-${randomBytes(5).toString('hex')}`,
    name: 'Example Tool',
    description: 'Does example things.',
    category: 'developer-tools',
    tags: ['example', 'demo'],
    pricing: 'free',
    url: 'https://example.org/tool',
    functionality: ['formats code'],
    useCases: ['keep a codebase tidy'],
    interface: ['cli', 'web'],
    ...overrides,
  };
}

/** The stored document exactly as the server has it, bypassing Mongoose. */
export async function rawTool(filter: Record<string, unknown>): Promise<Record<string, unknown> | null> {
  const db = mongoose.connection.db;
  if (db === undefined) throw new Error('not connected');
  return db.collection<Record<string, unknown>>('tools').findOne(filter);
}

export async function insertRaw(doc: Record<string, unknown>): Promise<void> {
  const db = mongoose.connection.db;
  if (db === undefined) throw new Error('not connected');
  await db.collection('tools').insertOne(doc);
}
