#!/usr/bin/env node
import 'reflect-metadata';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { type BatchOptions } from '../migrations/backfill.js';
import { backfill } from '../migrations/backfill.js';
import { checkIndexes, type IndexSpec } from '../migrations/index-check.js';
import { rehash } from '../migrations/rehash.js';
import { settle } from '../migrations/settle.js';
import { type MigrationSummary } from '../migrations/batch-migration.js';
import { ToolModel } from '../models/tool.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, type SyncCollectionName, type SyncErrorCode } from '../sync/vocabulary.js';
import { openDatabase } from './connection.js';
import { runDemo } from './demo/run-demo.js';
import { describeFailure } from './errors.js';
import { formatSummary, migrationProgress } from './progress.js';
import { generateTools, seededRandom } from './seed-data.js';
import { formatStatus } from './status-report.js';

const print = (text: string): void => { process.stdout.write(`${text}\n`); };

/** The database when the URI names none, and always for the demo (which starts from an empty one). */
const DEFAULT_DB = 'tool_sync';
const DEMO_DB = 'tool_sync_demo';

function positiveInteger(max: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < 1 || number > max) throw new InvalidArgumentError(`expected a whole number from 1 to ${max}, got "${value}"`);
    return number;
  };
}

interface ConnectionFlags { uri?: string }

/** Runs `work` connected to `--uri`, else MONGODB_URI, else the embedded database. */
async function withDatabase<T>(
  flags: ConnectionFlags,
  work: () => Promise<T>,
  options: { dbName?: string; forceDbName?: boolean; ensureIndexes?: boolean } = {},
): Promise<T> {
  const database = await openDatabase({ uri: flags.uri, defaultDbName: options.dbName ?? DEFAULT_DB, forceDbName: options.forceDbName, ensureIndexes: options.ensureIndexes });
  process.stderr.write(`database: ${database.description}\n`);
  try {
    return await work();
  } finally {
    await database.close();
  }
}

function finishMigration(summary: MigrationSummary): void {
  print(formatSummary(summary));
  // Some documents could not be migrated, or the run was stopped: not a success, though nothing was lost.
  if (summary.failed.length > 0 || summary.aborted) process.exitCode = 2;
}

/**
 * A migration's options from the command line: Ctrl-C (SIGINT) stops it after the batch in
 * progress, keeping its checkpoint; a second Ctrl-C ends the process at once.
 */
function migrationOptions(label: string, flags: { dryRun?: boolean; batchSize: number }): BatchOptions {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write(`${label}: stopping after this batch (Ctrl-C again to stop now)\n`);
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return { batchSize: flags.batchSize, dryRun: flags.dryRun === true, progress: migrationProgress(label), signal: controller.signal };
}

function indexLine(index: IndexSpec): string {
  return `${index.name} ${JSON.stringify(index.key)}${index.unique ? ' unique' : ''}`;
}

const uriOption = (): Option => new Option('--uri <uri>', 'MongoDB connection string (default: MONGODB_URI, else an embedded database)');
const batchOption = (): Option =>
  new Option('--batch-size <n>', 'documents read and written per batch').argParser(positiveInteger(100_000)).default(1000);

const program = new Command()
  .name('tool-sync')
  .description('Keep tool records and their four vector collections honestly in sync.')
  .showHelpAfterError()
  .exitOverride();

program
  .command('backfill')
  .description('give every tool lacking complete sync metadata full defaults with real content hashes; repair partial metadata; resumable')
  .addOption(new Option('--dry-run', 'write nothing; report what would change'))
  .addOption(batchOption())
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags & { dryRun?: boolean; batchSize: number }) => {
    await withDatabase(flags, async () => {
      finishMigration(await backfill(ToolModel, migrationOptions('backfill', flags)));
    });
  });

program
  .command('rehash')
  .description('recompute every content hash under the current field lists and hashing scheme; flag changed collections stale')
  .addOption(new Option('--dry-run', 'write nothing; report what would change'))
  .addOption(batchOption())
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags & { dryRun?: boolean; batchSize: number }) => {
    await withDatabase(flags, async () => {
      finishMigration(await rehash(ToolModel, migrationOptions('rehash', flags)));
    });
  });

program
  .command('settle')
  .description('finish tools whose last content write was interrupted before its hashes were checked (a pending hash check)')
  .addOption(new Option('--dry-run', 'write nothing; report what would change'))
  .addOption(batchOption())
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags & { dryRun?: boolean; batchSize: number }) => {
    await withDatabase(flags, async () => {
      finishMigration(await settle(ToolModel, migrationOptions('settle', flags)));
    });
  });

program
  .command('indexes')
  .description("compare the server's indexes on the tools collection with the model's; --apply creates the missing ones (never drops)")
  .addOption(new Option('--apply', 'create the missing indexes'))
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags & { apply?: boolean }) => {
    await withDatabase(flags, async () => {
      const comparison = await checkIndexes(ToolModel, { apply: flags.apply === true });
      print(`matching: ${comparison.matching.length}`);
      for (const index of comparison.matching) print(`  ok       ${indexLine(index)}`);
      for (const index of comparison.missing) print(`  MISSING  ${indexLine(index)}`);
      for (const { expected, actual } of comparison.different) print(`  DIFFERENT ${expected.name}: model ${indexLine(expected)}, server ${indexLine(actual)}`);
      for (const index of comparison.extra) print(`  extra    ${indexLine(index)} (not the model's; left alone)`);
      if (flags.apply === true && comparison.missing.length > 0) {
        for (const name of comparison.created) print(`created ${name}`);
      } else if (comparison.missing.length > 0 || comparison.different.length > 0) {
        print(`${comparison.missing.length} missing, ${comparison.different.length} different${comparison.missing.length > 0 ? ': run with --apply to create the missing ones' : ''}`);
        process.exitCode = 2;
      }
    });
  });

program
  .command('requeue')
  .description('put failed collections back in line (stale if ever synced, else pending), retries reset')
  .addOption(new Option('--collection <name>', 'only this collection').choices(SYNC_COLLECTION_NAMES))
  .addOption(new Option('--error-code <code>', 'only failures with this code').choices(SYNC_ERROR_CODES))
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags & { collection?: SyncCollectionName; errorCode?: SyncErrorCode }) => {
    await withDatabase(flags, async () => {
      const count = await ToolModel.requeueFailed({
        ...(flags.collection === undefined ? {} : { collections: [flags.collection] }),
        ...(flags.errorCode === undefined ? {} : { errorCodes: [flags.errorCode] }),
      });
      print(`requeued ${count} failed collection${count === 1 ? '' : 's'}`);
    });
  });

program
  .command('status')
  .description('the sync dashboard: overall counts, collection × status, failures by error code, oldest wait, legacy and unsettled counts')
  .addOption(new Option('--json', 'print the same data as JSON, for scripts'))
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags & { json?: boolean }) => {
    await withDatabase(flags, async () => {
      const stats = await ToolModel.getSyncStats();
      print(flags.json === true ? JSON.stringify(stats, null, 2) : formatStatus(stats));
    });
  });

program
  .command('seed')
  .description('insert realistic, varied tools through new ToolModel(), for demos and benchmarks')
  .requiredOption('--count <n>', 'how many tools', positiveInteger(10_000_000))
  .addOption(new Option('--seed <n>', 'random seed, for a repeatable set').argParser(positiveInteger(2 ** 31)))
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags & { count: number; seed?: number }) => {
    await withDatabase(flags, async () => {
      const random = seededRandom(flags.seed ?? Date.now());
      const prefix = `s${(flags.seed ?? Date.now()).toString(36)}-`;
      for (let done = 0; done < flags.count; done += 1000) {
        const inputs = generateTools(Math.min(1000, flags.count - done), random, prefix).map((tool, i) => ({ ...tool, id: `${tool.id}-${done + i + 1}` }));
        await ToolModel.insertMany(inputs.map((input) => new ToolModel(input)));
      }
      print(`inserted ${flags.count} tools`);
    }, { ensureIndexes: true });
  });

program
  .command('demo')
  .description(`the main job: seed, legacy data, backfill, a sync worker against a simulated embedder, edits; on database ${DEMO_DB}, emptied first`)
  .addOption(uriOption())
  .action(async (flags: ConnectionFlags) => {
    await withDatabase(flags, async () => {
      await ToolModel.db.dropDatabase();
      await ToolModel.createIndexes();
      await runDemo(print);
    }, { dbName: DEMO_DB, forceDbName: true });
  });

process.on('SIGINT', () => {
  process.stderr.write('\ntool-sync: interrupted; nothing half-written is left behind — run the same command again to resume\n');
  process.exit(130);
});

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else {
    process.stderr.write(`tool-sync: ${describeFailure(error)}\n`);
    process.exitCode = 1;
  }
}
