import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { backfill, type BatchOptions } from '../migrations/backfill.js';
import { type MigrationSummary } from '../migrations/batch-migration.js';
import { checkIndexes, type IndexSpec } from '../migrations/index-check.js';
import { reembed } from '../migrations/reembed.js';
import { rehash } from '../migrations/rehash.js';
import { settle } from '../migrations/settle.js';
import { type ToolModelType } from '../models/create-tool-model.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, type SyncCollectionName, type SyncErrorCode } from '../sync/vocabulary.js';
import { openDatabase, type OpenDatabase } from './connection.js';
import { DEFAULT_DB_PORT, serveDatabase } from './db-command.js';
import { runDemo } from './demo/run-demo.js';
import { describeFailure } from './errors.js';
import { formatSummary, migrationProgress, type OutputStream } from './progress.js';
import { generateTools, seededRandom } from './seed-data.js';
import { DEFAULT_COLLECT_EVERY_MS, DEFAULT_STATUS_HOST, DEFAULT_STATUS_PORT, isLoopback, startStatusServer, type StatusServer } from './serve/server.js';
import { formatStatus, readStatus, statusJson, useColour } from './status-report.js';
import { watchStatus } from './status-watch.js';
import { collectionNameProblem, databaseNameProblem, defaultDataDir, resolveTarget, UsageError, type Target } from './target.js';

/** Where a run of the CLI reads and writes: the process's own streams and environment for the bin, captured ones in tests. */
export interface CliIo {
  stdout: OutputStream;
  stderr: OutputStream;
  env: NodeJS.ProcessEnv;
  /**
   * What the next Ctrl-C does while a command asks for it (a migration stops after its batch,
   * `tool-sync db` stops its server): the bin calls and clears it on SIGINT; unset, Ctrl-C ends
   * the process at once (exit 130).
   */
  interrupt: { handler?: () => void };
}

/** The embedded database's database when there is no `--db`. */
const DEFAULT_DB = 'tool_sync';
/** The demo's own database, on any server: it empties it first. */
const DEMO_DB = 'tool_sync_demo';
const DEFAULT_COLLECTION = 'tools';

/** Exit codes: 0 done; 1 an error (usage, connection, anything unexpected); 2 done, but the operator has to act. */
const EXIT_NEEDS_OPERATOR = 2;

const EXIT_CODES = `
Exit codes:
  0    done
  1    an error: a usage error, an empty or invalid connection string, a missing collection,
       an unreachable server, no database (neither --uri/MONGODB_URI nor an embedded engine),
       a failed command
  2    needs the operator: a migration left documents failed or was stopped (Ctrl-C),
       indexes missing or different, seed refused a collection that already holds tools
  130  interrupted (Ctrl-C; a second one during a migration or tool-sync db)`;

/** The version in the package.json two folders up (dist/cli/program.js, or src/cli/program.ts in the tests, -> package.json). */
function packageVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
    if (manifest.name === 'tool-sync' && typeof manifest.version === 'string') return manifest.version;
  } catch { /* reported as unknown */ }
  return 'unknown';
}

function positiveInteger(max: number) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < 1 || number > max) throw new InvalidArgumentError(`expected a whole number from 1 to ${max}, got "${value}"`);
    return number;
  };
}

/** A TCP port; 0 asks the system for a free one. */
function portNumber(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number > 65_535) throw new InvalidArgumentError(`expected a port from 0 to 65535 (0: a free one), got "${value}"`);
  return number;
}

function validName(problem: (name: string) => string | undefined) {
  return (value: string): string => {
    const found = problem(value);
    if (found !== undefined) throw new InvalidArgumentError(found);
    return value;
  };
}

function nonEmpty(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('cannot be empty');
  return value;
}

/** A usage error as one line, with a hint to the command's help; never the whole usage. */
function usageLine(message: string, commandPath: string): string {
  const text = message.replace(/^error: /, '').split('\n').map((line) => line.trim()).filter((line) => line !== '').join(' ');
  return `tool-sync: ${text} (see ${commandPath} --help)`;
}

/** Commander's output into the run's streams; usage errors as one line pointing at the command's help. */
function configureOutput(command: Command, commandPath: string, io: CliIo): Command {
  return command.configureOutput({
    writeOut: (text) => { io.stdout.write(text); },
    writeErr: (text) => { io.stderr.write(text); },
    outputError: (message, write) => { write(`${usageLine(message, commandPath)}\n`); },
  });
}

interface WhereFlags {
  uri?: string;
  db?: string;
  collection: string;
  dataDir?: string;
}

const uriOption = (): Option => new Option('--uri <uri>', 'MongoDB connection string (default: MONGODB_URI; with neither set, the embedded database)');
const dbOption = (): Option =>
  new Option('--db <name>', `the database when the connection string names none (embedded database: default ${DEFAULT_DB})`).argParser(validName(databaseNameProblem));
const collectionOption = (): Option =>
  new Option('--collection <name>', 'the collection of tools').default(DEFAULT_COLLECTION).argParser(validName(collectionNameProblem));
const dataDirOption = (env: NodeJS.ProcessEnv): Option =>
  new Option('--data-dir <dir>', `the embedded database's folder, kept between commands (default: ${defaultDataDir(env)})`).argParser(nonEmpty);
const batchOption = (): Option =>
  new Option('--batch-size <n>', 'documents read and written per batch').argParser(positiveInteger(100_000)).default(1000);

/** Every command but `seed`, `demo` and `indexes --apply` works on tools that exist: a missing collection is a wrong URI, database or name. */
async function requireCollection(model: ToolModelType, hint = ''): Promise<void> {
  const db = model.db.db;
  if (db === undefined) throw new Error('not connected');
  const name = model.collection.collectionName;
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((info) => info.name).filter((found) => !found.startsWith('system.')).sort();
  if (names.includes(name)) return;
  const present = names.length === 0 ? 'it has none' : `it has ${names.slice(0, 10).join(', ')}${names.length > 10 ? `, … (${names.length})` : ''}`;
  throw new Error(`database ${model.db.name} has no collection "${name}" (${present}): check --uri, --db and --collection${hint}`);
}

function indexLine(index: IndexSpec): string {
  return `${index.name} ${JSON.stringify(index.key)}${index.unique ? ' unique' : ''}`;
}

type StatusFlags = WhereFlags & { json?: boolean; watch?: boolean; serve?: boolean; port: number; host: string; collectEveryMs: number };

type MigrationFlags = WhereFlags & { dryRun?: boolean; batchSize: number };
const MIGRATIONS = [
  {
    name: 'backfill',
    run: backfill,
    description: 'give every tool lacking complete sync metadata full defaults with real content hashes; repair partial metadata; resumable',
  },
  { name: 'rehash', run: rehash, description: 'recompute every content hash under the current field lists and hashing scheme; flag changed collections stale' },
  {
    name: 'settle',
    run: settle,
    description: 'finish tools whose last content write was interrupted before its hashes were checked (a pending hash check)',
  },
] as const;

/** One run of the CLI: its streams, its exit code, and the commands, which write to them. */
class CliRun {
  exitCode = 0;
  readonly program: Command;

  constructor(private readonly io: CliIo) {
    this.program = configureOutput(
      new Command()
        .name('tool-sync')
        .description('Keep tool records and their four vector collections honestly in sync.')
        .version(packageVersion(), '-V, --version', 'print the version')
        .addHelpText('after', EXIT_CODES)
        .exitOverride(),
      'tool-sync',
      io,
    );
    this.addCommands();
  }

  private print(text: string): void { this.io.stdout.write(`${text}\n`); }

  private warn(text: string): void { this.io.stderr.write(`tool-sync: ${text}\n`); }

  /** A subcommand whose usage errors are one line pointing at its own help. */
  private subcommand(name: string): Command {
    return configureOutput(this.program.command(name), `tool-sync ${name}`, this.io);
  }

  /** The options that say where a command works; the demo has its own database, so no --db. */
  private addWhereOptions(command: Command, options: { db?: boolean } = {}): Command {
    command.addOption(uriOption());
    if (options.db !== false) command.addOption(dbOption());
    return command.addOption(collectionOption()).addOption(dataDirOption(this.io.env));
  }

  /**
   * Runs `work` on the command's server, database and collection, after saying on stderr which they
   * are. Usage mistakes in where to work (an empty URI, no database) are one-line usage errors.
   */
  private async withDatabase(
    command: Command,
    flags: WhereFlags,
    work: (database: OpenDatabase) => Promise<void>,
    options: { fixedDbName?: string; needsCollection?: boolean; collectionHint?: string } = {},
  ): Promise<void> {
    let target: Target;
    try {
      target = resolveTarget(flags, { embeddedDbName: DEFAULT_DB, fixedDbName: options.fixedDbName }, this.io.env);
    } catch (error) {
      if (error instanceof UsageError) command.error(error.message);
      throw error;
    }
    const database = await openDatabase(target, flags.collection, { env: this.io.env, log: (line) => { this.io.stderr.write(`[tool-sync db] ${line}\n`); } });
    this.warn(database.description);
    try {
      if (options.needsCollection === true) await requireCollection(database.model, options.collectionHint);
      await work(database);
    } finally {
      await database.close();
    }
  }

  private finishMigration(summary: MigrationSummary): void {
    this.print(formatSummary(summary));
    // Some documents could not be migrated, or the run was stopped: not a success, though nothing was lost.
    if (summary.failed.length > 0 || summary.aborted) this.exitCode = EXIT_NEEDS_OPERATOR;
  }

  /**
   * A migration's options from the command line: Ctrl-C (SIGINT) stops it after the batch in
   * progress, keeping its checkpoint (exit 2); a second Ctrl-C ends the process at once (exit 130).
   */
  private migrationOptions(label: string, flags: { dryRun?: boolean; batchSize: number }): BatchOptions {
    const controller = new AbortController();
    this.io.interrupt.handler = () => {
      this.io.stderr.write(`${label}: stopping after this batch (Ctrl-C again to stop now)\n`);
      controller.abort();
    };
    return { batchSize: flags.batchSize, dryRun: flags.dryRun === true, progress: migrationProgress(label, this.io.stderr), signal: controller.signal };
  }

  private addCommands(): void {
    for (const migration of MIGRATIONS) {
      this.addWhereOptions(
        this.subcommand(migration.name)
          .description(migration.description)
          .addOption(new Option('--dry-run', 'write nothing; report what would change'))
          .addOption(batchOption()),
      ).action(async (flags: MigrationFlags, command: Command) => {
        await this.withDatabase(command, flags, async ({ model }) => {
          this.finishMigration(await migration.run(model, this.migrationOptions(migration.name, flags)));
        }, { needsCollection: true });
      });
    }
    this.addReembed();
    this.addIndexes();
    this.addRequeue();
    this.addStatus();
    this.addSeed();
    this.addDemo();
    this.addDb();
  }

  private addReembed(): void {
    this.addWhereOptions(
      this.subcommand('reembed')
        .description("the embedding model of a vector collection changed: flag every synced vector another model made (or an unrecorded one) stale, so the worker re-embeds it; resumable")
        .addOption(new Option('--vector-collection <name>', 'the vector collection whose model changed').choices(SYNC_COLLECTION_NAMES).makeOptionMandatory())
        .addOption(new Option('--model <name>', 'the embedding model the worker now uses (as it passes to markCollectionSynced)').argParser(nonEmpty).makeOptionMandatory())
        .addOption(new Option('--dry-run', 'write nothing; report what would change'))
        .addOption(batchOption()),
    ).action(async (flags: MigrationFlags & { vectorCollection: SyncCollectionName; model: string }, command: Command) => {
      await this.withDatabase(command, flags, async ({ model }) => {
        const options = this.migrationOptions('reembed', flags);
        this.finishMigration(await reembed(model, { ...options, collection: flags.vectorCollection, embeddingModel: flags.model }));
      }, { needsCollection: true });
    });
  }

  private addIndexes(): void {
    this.addWhereOptions(
      this.subcommand('indexes')
        .description("compare the server's indexes on the tools collection with the model's; --apply creates the missing ones (never drops)")
        .addOption(new Option('--apply', 'create the missing indexes (and the collection, if there is none yet)')),
    ).action(async (flags: WhereFlags & { apply?: boolean }, command: Command) => {
      await this.withDatabase(command, flags, async ({ model }) => {
        const comparison = await checkIndexes(model, { apply: flags.apply === true });
        this.print(`matching: ${comparison.matching.length}`);
        for (const index of comparison.matching) this.print(`  ok       ${indexLine(index)}`);
        for (const index of comparison.missing) this.print(`  MISSING  ${indexLine(index)}`);
        for (const { expected, actual } of comparison.different) this.print(`  DIFFERENT ${expected.name}: model ${indexLine(expected)}, server ${indexLine(actual)}`);
        for (const index of comparison.extra) this.print(`  extra    ${indexLine(index)} (not the model's; left alone)`);
        if (flags.apply === true && comparison.missing.length > 0) {
          for (const name of comparison.created) this.print(`created ${name}`);
        }
        const unresolved = { missing: flags.apply === true ? 0 : comparison.missing.length, different: comparison.different.length };
        if (unresolved.missing > 0 || unresolved.different > 0) {
          this.print(`${unresolved.missing} missing, ${unresolved.different} different${unresolved.missing > 0 ? ': run with --apply to create the missing ones' : ''}`);
          this.exitCode = EXIT_NEEDS_OPERATOR;
        }
      }, { needsCollection: flags.apply !== true });
    });
  }

  private addRequeue(): void {
    this.addWhereOptions(
      this.subcommand('requeue')
        .description("put failed collections back in line (stale if ever synced, else pending), and failed removals of deleted tools' points (pending); retries reset")
        .addOption(new Option('--vector-collection <name>', 'only failures of this vector collection').choices(SYNC_COLLECTION_NAMES))
        .addOption(new Option('--error-code <code>', 'only failures with this code').choices(SYNC_ERROR_CODES)),
    ).action(async (flags: WhereFlags & { vectorCollection?: SyncCollectionName; errorCode?: SyncErrorCode }, command: Command) => {
      // `--collection usecases` meant the vector collection before there was a --collection for the tools.
      const meantVector = flags.collection !== DEFAULT_COLLECTION && (SYNC_COLLECTION_NAMES as readonly string[]).includes(flags.collection);
      await this.withDatabase(command, flags, async ({ model }) => {
        const which = {
          ...(flags.vectorCollection === undefined ? {} : { collections: [flags.vectorCollection] }),
          ...(flags.errorCode === undefined ? {} : { errorCodes: [flags.errorCode] }),
        };
        const count = await model.requeueFailed(which);
        this.print(`requeued ${count} failed collection${count === 1 ? '' : 's'}`);
        const deletions = await model.requeueFailedDeletions(which);
        if (deletions > 0) this.print(`requeued ${deletions} failed removal${deletions === 1 ? '' : 's'} of deleted tools' points`);
      }, { needsCollection: true, collectionHint: meantVector ? `; to requeue one vector collection, use --vector-collection ${flags.collection}` : '' });
    });
  }

  private addStatus(): void {
    this.addWhereOptions(
      this.subcommand('status')
        .description('the sync dashboard: overall counts, collection × status, failures by error code, oldest wait, legacy and unsettled counts; '
          + '--watch redraws it, --serve serves it as a page and /metrics')
        .addOption(new Option('--json', 'print the same data as JSON, for scripts').conflicts(['watch', 'serve']))
        .addOption(new Option('--watch', 'redraw the dashboard every --collect-every-ms until Ctrl-C'))
        .addOption(new Option('--serve', 'serve a status page (/), /metrics (Prometheus), /api/stats (this JSON) and /healthz until Ctrl-C'))
        .addOption(new Option('--port <n>', 'with --serve: the port (0: a free one, printed)').argParser(portNumber).default(DEFAULT_STATUS_PORT))
        .addOption(new Option('--host <address>', 'with --serve: the address to listen on; anything but loopback exposes a page without authentication')
          .argParser(nonEmpty).default(DEFAULT_STATUS_HOST))
        .addOption(new Option('--collect-every-ms <n>', 'with --serve or --watch: how often the numbers are read')
          .argParser(positiveInteger(86_400_000)).default(DEFAULT_COLLECT_EVERY_MS)),
    ).action(async (flags: StatusFlags, command: Command) => {
      const given = (name: string): boolean => command.getOptionValueSource(name) === 'cli';
      const live = flags.serve === true || flags.watch === true;
      if (!flags.serve) for (const name of ['port', 'host']) if (given(name)) command.error(`--${name} needs --serve`);
      if (!live && given('collectEveryMs')) command.error('--collect-every-ms needs --serve or --watch');
      await this.withDatabase(command, flags, async ({ model, description }) => {
        if (live) {
          await this.liveStatus(model, description, flags);
          return;
        }
        const stats = await readStatus(model);
        this.print(flags.json === true ? statusJson(stats) : formatStatus(stats, { colour: useColour(this.io.stdout, this.io.env) }));
      }, { needsCollection: true });
    });
  }

  /** `status --serve` and/or `--watch`, until Ctrl-C (or SIGTERM): then the server closes, and the command ends with exit 0. */
  private async liveStatus(model: ToolModelType, target: string, flags: StatusFlags): Promise<void> {
    // Listened for first, so that a Ctrl-C while the server starts stops it as soon as it is up.
    const stop = new AbortController();
    this.io.interrupt.handler = () => { stop.abort(); };
    let server: StatusServer | undefined;
    if (flags.serve === true) {
      if (!isLoopback(flags.host)) {
        this.warn(`warning: --host ${flags.host} lets other machines reach the status page and /metrics, which have no authentication `
          + '(keep it on a trusted network, or behind a proxy that authenticates)');
      }
      server = await startStatusServer({
        model, host: flags.host, port: flags.port, collectEveryMs: flags.collectEveryMs, target, warn: (line) => { this.warn(line); },
      });
      this.warn(`status page at ${server.url} (also metrics, healthz, api/stats, api/history); Ctrl-C stops it`);
      this.print(server.url);
    }
    try {
      if (flags.watch === true) {
        await watchStatus({
          // Beside --serve, the server's samples: one read per interval serves the page, /metrics and the terminal.
          read: server === undefined ? () => readStatus(model) : server.latest, everyMs: flags.collectEveryMs, stdout: this.io.stdout, colour: useColour(this.io.stdout, this.io.env), signal: stop.signal,
        });
      } else if (!stop.signal.aborted) {
        await new Promise<void>((resolve) => { stop.signal.addEventListener('abort', () => { resolve(); }, { once: true }); });
      }
    } finally {
      await server?.close();
    }
    this.warn('stopped');
  }

  private addSeed(): void {
    this.addWhereOptions(
      this.subcommand('seed')
        .description('insert realistic, varied fake tools through the model, for demos and benchmarks; only into an empty collection unless --force')
        .requiredOption('--count <n>', 'how many tools', positiveInteger(10_000_000))
        .addOption(new Option('--seed <n>', 'random seed, for a repeatable set').argParser(positiveInteger(2 ** 31)))
        .addOption(new Option('--force', 'add the fake tools even to a collection that already holds tools')),
    ).action(async (flags: WhereFlags & { count: number; seed?: number; force?: boolean }, command: Command) => {
      await this.withDatabase(command, flags, async ({ model }) => {
        const held = await model.collection.findOne({}, { projection: { _id: 1 } });
        if (held !== null && flags.force !== true) {
          this.warn(`collection ${model.collection.collectionName} in database ${model.db.name} already holds tools (about ${await model.estimatedDocumentCount()}); `
            + `seed only fills an empty collection: pass --force to add ${flags.count} fake tools anyway`);
          this.exitCode = EXIT_NEEDS_OPERATOR;
          return;
        }
        // An empty collection is seed's own: it gets the model's indexes. One that held tools keeps its indexes as they are.
        if (held === null) await checkIndexes(model, { apply: true });
        else this.warn('the collection already held tools: its indexes are left as they are (see tool-sync indexes)');
        const random = seededRandom(flags.seed ?? Date.now());
        const prefix = `s${(flags.seed ?? Date.now()).toString(36)}-`;
        for (let done = 0; done < flags.count; done += 1000) {
          const inputs = generateTools(Math.min(1000, flags.count - done), random, prefix).map((tool, i) => ({ ...tool, id: `${tool.id}-${done + i + 1}` }));
          await model.insertMany(inputs.map((input) => new model(input)));
        }
        this.print(`inserted ${flags.count} tools`);
      });
    });
  }

  private addDemo(): void {
    this.addWhereOptions(
      this.subcommand('demo')
        .description(`the main job: seed, legacy data, backfill, a sync worker against a simulated embedder, edits; always on database ${DEMO_DB}, emptied first`)
        .addOption(new Option('--quiet', 'print only the phase headings and the final state')),
      { db: false },
    ).action(async (flags: WhereFlags & { quiet?: boolean }, command: Command) => {
      await this.withDatabase(command, flags, async ({ model }) => {
        await model.db.dropDatabase();
        await model.createIndexes();
        await runDemo({ print: (text) => { this.print(text); }, model, format: { colour: useColour(this.io.stdout, this.io.env) }, quiet: flags.quiet === true });
      }, { fixedDbName: DEMO_DB });
    });
  }

  private addDb(): void {
    this.subcommand('db')
      .description('run the embedded database in the foreground for your own service (MongoDB from mongodb-memory-server, else FerretDB): '
        + 'prints the MONGODB_URI to use; Ctrl-C stops it')
      .addOption(new Option('--port <n>', 'the port on 127.0.0.1').argParser(positiveInteger(65_535)).default(DEFAULT_DB_PORT))
      .addOption(dataDirOption(this.io.env))
      .action(async (flags: { port: number; dataDir?: string }) => {
        await serveDatabase({ port: flags.port, dataDir: flags.dataDir ?? defaultDataDir(this.io.env), dbName: DEFAULT_DB }, this.io);
      });
  }
}

/**
 * Runs the CLI on `argv` (the arguments after the command name) against `io`, and gives the exit
 * code: 0 done, 1 an error, 2 needs the operator. What it prints goes to `io`; nothing else of the
 * process (its exit code, its signal handlers) is touched: that is the bin's (main.ts).
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const run = new CliRun(io);
  try {
    if (argv.length === 0) {
      io.stderr.write(`${usageLine(`no command given: one of ${run.program.commands.map((command) => command.name()).join(', ')}`, 'tool-sync')}\n`);
      return 1;
    }
    await run.program.parseAsync([...argv], { from: 'user' });
    return run.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    io.stderr.write(`tool-sync: ${describeFailure(error)}\n`);
    return 1;
  } finally {
    io.interrupt.handler = undefined;
  }
}
