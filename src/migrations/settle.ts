import { type ReturnModelType } from '@typegoose/typegoose';
import { settlePlan } from '../models/conditional-write.js';
import { type Tool } from '../models/tool.js';
import { PENDING_HASH_CHECK } from '../sync/sync-state.js';
import { batchOptions, type BatchOptions } from './backfill.js';
import { runBatchMigration, type MigrationSummary } from './batch-migration.js';

/**
 * Finishes the tools whose last content write was not settled (its writer stopped between the
 * write and the settle): hashes computed from the stored content, transitions applied, the
 * pending hash check cleared. Reads only such tools (through `sync_pending_hash_check_idx`).
 */
export function settle(model: ReturnModelType<typeof Tool>, options: BatchOptions = {}): Promise<MigrationSummary> {
  return runBatchMigration(model, { name: 'settle', plan: settlePlan, filter: { [PENDING_HASH_CHECK]: { $ne: null } }, ...batchOptions(options) });
}
