import { describe, expect, it } from 'vitest';
import { ToolModel, type SyncStage } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { rawTool, toolInput } from '../helpers/tools.js';

useTestDatabase(import.meta.url);

/** A Proxy every one of whose traps throws. */
function trapsThrow<T extends object>(target: T): T {
  const fail = (): never => { throw new Error('trap'); };
  return new Proxy(target, { get: fail, has: fail, ownKeys: fail, getPrototypeOf: fail, getOwnPropertyDescriptor: fail, apply: fail });
}

function revoked<T extends object>(target: T): T {
  const { proxy, revoke } = Proxy.revocable(target, {});
  revoke();
  return proxy;
}

function fail(): void { /* thrown as a value, never called */ }

const messageThrows = Object.defineProperty(new Error('x'), 'message', { get: (): never => { throw new Error('getter'); } });

interface StoredState { status: string; lastError: unknown; errorCode: unknown; retryCount: number; lastSyncAttemptAt: unknown }

const cases: [string, unknown, SyncStage, string, string][] = [
  ['a Symbol', Symbol('boom'), 'embedding', 'UNKNOWN', 'Symbol(boom)'],
  ['a function', fail, 'qdrant', 'UNKNOWN', 'function fail'],
  ['a Proxy whose traps throw', trapsThrow(new Error('hidden')), 'embedding', 'UNKNOWN', '[object (proxy whose traps throw)]'],
  ['a Proxy whose traps throw, at the validation stage', trapsThrow({}), 'validation', 'VALIDATION_ERROR', '[object (proxy whose traps throw)]'],
  ['a revoked Proxy', revoked(new Error('gone')), 'qdrant', 'UNKNOWN', '[object (revoked proxy)]'],
  ['an Error whose message getter throws', messageThrows, 'embedding', 'UNKNOWN', 'Error (its message cannot be read)'],
  ['a BigInt', 7n, 'embedding', 'UNKNOWN', '7n was thrown'],
];

describe('markCollectionFailed with hostile thrown values', () => {
  it.each(cases)('%s: recorded as failed with a meaningful lastError, nothing thrown', async (_label, thrown, stage, code, message) => {
    const tool = await ToolModel.create(toolInput());
    await expect(ToolModel.markCollectionFailed(tool._id, 'usecases', thrown, stage)).resolves.toEqual({ recorded: true, errorCode: code, retryCount: 1 });
    const stored = (await rawTool({ _id: tool._id })) as { syncMetadata: { overallStatus: string; collections: Record<string, StoredState> } } | null;
    const state = stored?.syncMetadata.collections.usecases;
    expect(state?.status).toBe('failed');
    expect(state?.errorCode).toBe(code);
    expect(state?.lastError).toBe(message);
    expect(state?.retryCount).toBe(1);
    expect(state?.lastSyncAttemptAt).toBeInstanceOf(Date);
    expect(stored?.syncMetadata.overallStatus).toBe('failed');
  });
});
