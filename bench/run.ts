/**
 * `npm run bench`: what the sync layer costs against the raw driver, side by side in one run,
 * on the server the tests resolve (MONGODB_URI, else mongodb-memory-server, else FerretDB).
 * Prints a table and writes bench/results.json.
 */
import 'reflect-metadata';
import { Command, Option } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, freemem, release, totalmem, type } from 'node:os';
import { dirname, resolve } from 'node:path';
import mongoose from 'mongoose';
import { DEFAULT_POSTGRESQL_URL, postgresqlReachable, redactUri, resolveDatabase, type ResolvedDatabase } from '../src/db/index.js';
import { benchBackfill } from './backfill.js';
import { loadDataset, toolsAt } from './dataset.js';
import { benchHashing } from './hashing.js';
import { benchQueries } from './queries.js';
import { engineBoundFigures, markdownTable, renderTable, tableRows, TARGETS, type Results } from './report.js';
import { benchWorker, WORKER_EMBED_MS, WORKER_EMBED_PER_INPUT_MS } from './worker.js';
import { benchWritePath, MIN_WRITE_TOOLS, type UpdateStatementLimit } from './write-path.js';

const SECTIONS = ['hashing', 'write', 'backfill', 'queries', 'worker'] as const;
type Section = (typeof SECTIONS)[number];

const SIZES = {
  default: { writes: 10_000, singleWrites: 200, backfill: 100_000, queries: [10_000, 100_000], worker: 10_000 },
  large: { writes: 10_000, singleWrites: 1_000, backfill: 1_000_000, queries: [10_000, 100_000, 1_000_000], worker: 10_000 },
};

/**
 * Time budgets. They bind only on a slow engine (FerretDB); there a figure covers what was done
 * within its budget (at least `minWrites` of each single-document write, one updateMany of each
 * size, one bulkWrite) and says so. The write budget is per kind of write, for its three sides.
 */
const BUDGETS = {
  default: { writes: { scenarioMs: 20_000, minWrites: 3 }, backfillMs: 90_000, query: { minSamples: 2, maxSamples: 50, budgetMs: 10_000 }, workerRunMs: 60_000 },
  large: { writes: { scenarioMs: 120_000, minWrites: 3 }, backfillMs: 3_600_000, query: { minSamples: 2, maxSamples: 50, budgetMs: 60_000 }, workerRunMs: 300_000 },
};

type Budgets = typeof BUDGETS.default;

/**
 * The time spent measuring one figure (a kind of write, a query) times `scale`, like the sizes:
 * a quick try is quick. The least each figure takes stays (3 writes, 2 samples); the backfill's
 * and the worker's budgets are caps on a whole run, which a smaller run ends before, and stay.
 */
function scaledBudgets(budgets: Budgets, scale: number): Budgets {
  return {
    ...budgets,
    writes: { ...budgets.writes, scenarioMs: Math.round(budgets.writes.scenarioMs * scale) },
    query: { ...budgets.query, budgetMs: Math.round(budgets.query.budgetMs * scale) },
  };
}

interface Flags { large?: boolean; scale: number; data: string; out: string; only: Section[]; dbName: string }

/**
 * The sizes times `scale` (at least 10; the write path at least MIN_WRITE_TOOLS tools and 3
 * writes of each kind; the worker at least 40 tools): a quick try, or the bench's own smoke test.
 */
function scaled(sizes: typeof SIZES.default, scale: number): typeof SIZES.default {
  const times = (n: number, least = 10): number => Math.max(least, Math.round(n * scale));
  return {
    writes: times(sizes.writes, MIN_WRITE_TOOLS),
    singleWrites: times(sizes.singleWrites, 3),
    backfill: times(sizes.backfill),
    queries: sizes.queries.map((n) => times(n)),
    // Enough tools for some work of every kind in the mix, few enough for the smoke test.
    worker: times(sizes.worker, 40),
  };
}

/**
 * FerretDB v1 keeps each statement of an update command that matched a document holding one
 * pooled backend connection until the whole command ends (internal/handler/msg_update.go: the
 * statement's iterator is closed by a `defer` inside the loop over statements). An update command
 * with as many such statements as the pool has connections (PostgreSQL: `pool_max_conns`, 50 by
 * default; SQLite: 100) waits forever, and the server stays wedged for every client after it.
 * Not probed: a probe that finds the limit wedges the server it ran on.
 */
function statementLimit(database: ResolvedDatabase): UpdateStatementLimit {
  const { name, version } = database.engine;
  if (name !== 'FerretDB' || !version.startsWith('v1.')) return { statements: null, reason: '' };
  let pool = 50;
  let backend = 'an unknown backend, so the smaller pool: PostgreSQL\'s';
  if (database.ferretDbBackend === 'sqlite') {
    pool = 100;
    backend = 'SQLite';
  } else if (database.ferretDbBackend === 'postgresql') {
    const configured = new URL(process.env.TOOL_SYNC_POSTGRESQL_URL ?? DEFAULT_POSTGRESQL_URL).searchParams.get('pool_max_conns');
    if (configured !== null && Number(configured) > 0) pool = Number(configured);
    backend = 'PostgreSQL';
  }
  return {
    statements: pool,
    reason: `FerretDB ${version} (${backend}) wedges on an update command of ${pool} or more statements that match a document`
      + ' (each holds one of its pooled connections until the command ends)',
  };
}

/**
 * A worker run's budget, shorter at a smaller scale (its square root; at least 5 s, time for a
 * loaded machine's first claim and batch): twelve runs side by side (four modes × 1, 2, 4
 * workers), of which one pair at a time is the slowest.
 */
const workerRunMs = (budgetMs: number, scale: number): number => Math.max(5_000, Math.round(budgetMs * Math.sqrt(scale)));

const benchStarted = Date.now();
const log = (line: string): void => {
  const elapsed = Math.round((Date.now() - benchStarted) / 1000);
  process.stderr.write(`[bench ${String(Math.floor(elapsed / 60)).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')}] ${line}\n`);
};

/** FerretDB's SQLite backend rewrites by scanning (O(n) per write); PostgreSQL is used when it answers. */
async function resolveForBench(): Promise<ResolvedDatabase> {
  const postgresqlUrl = process.env.TOOL_SYNC_POSTGRESQL_URL ?? DEFAULT_POSTGRESQL_URL;
  const choose = process.env.TOOL_SYNC_FERRETDB_BACKEND === undefined && (await postgresqlReachable(postgresqlUrl));
  return resolveDatabase({ log, ...(choose ? { ferretDbBackend: 'postgresql' as const } : {}) });
}

function machine(): Record<string, unknown> {
  const cores = cpus();
  return {
    cpu: cores[0]?.model ?? 'unknown',
    cores: cores.length,
    memoryGb: Number((totalmem() / 2 ** 30).toFixed(1)),
    freeMemoryGb: Number((freemem() / 2 ** 30).toFixed(1)),
    os: `${type()} ${release()}`,
    node: process.version,
  };
}

async function main(flags: Flags): Promise<void> {
  const sizes = scaled(flags.large === true ? SIZES.large : SIZES.default, flags.scale);
  const budgets = scaledBudgets(flags.large === true ? BUDGETS.large : BUDGETS.default, flags.scale);
  const dataset = loadDataset(resolve(flags.data));
  log(`dataset: ${dataset.tools.length.toLocaleString('en-US')} tools from ${dataset.source}`);
  const database = await resolveForBench();
  const startedAt = new Date();
  const results: Results = {};
  try {
    await mongoose.connect(database.uri, { dbName: flags.dbName, autoIndex: false, autoCreate: false, monitorCommands: true });
    await mongoose.connection.dropDatabase();
    const run = async <T>(section: Section, label: string, body: () => Promise<T>): Promise<T | undefined> => {
      if (!flags.only.includes(section)) return undefined;
      log(`${label}…`);
      const started = Date.now();
      const value = await body();
      log(`${label}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return value;
    };
    results.hashing = await run('hashing', 'hashing', () => benchHashing(dataset.tools));
    results.writePath = await run('write', `write path (${sizes.writes.toLocaleString('en-US')} tools)`, () =>
      benchWritePath(toolsAt(dataset, 0, sizes.writes), { ...budgets.writes, maxWrites: sizes.singleWrites }, statementLimit(database), log));
    results.backfill = await run('backfill', `backfill (${sizes.backfill.toLocaleString('en-US')} legacy documents)`, () =>
      benchBackfill(dataset, { uri: database.uri, dbName: flags.dbName }, { documents: sizes.backfill, batchSize: 1000, budgetMs: budgets.backfillMs }));
    results.queries = await run('queries', 'worker and dashboard queries', () =>
      benchQueries(dataset, sizes.queries, budgets.query, (tools) => { log(`  queries at ${tools.toLocaleString('en-US')} tools`); }));
    results.worker = await run('worker', `sync worker (${sizes.worker.toLocaleString('en-US')} tools, ${WORKER_EMBED_MS} ms + ${WORKER_EMBED_PER_INPUT_MS} ms per input embedder)`, () =>
      benchWorker(dataset, { tools: sizes.worker, budgetMs: workerRunMs(budgets.workerRunMs, flags.scale) }, (mode, workers) => { log(`  ${mode}, ${workers} worker${workers === 1 ? '' : 's'}`); }));
    await mongoose.connection.dropDatabase();
  } finally {
    await mongoose.disconnect();
    await database.stop();
  }

  const isMongoDb = database.engine.name === 'MongoDB';
  const rows = tableRows(results, { isMongoDb });
  const engineBound = isMongoDb ? [] : engineBoundFigures(results, database.ferretDbBackend);
  const engine = {
    name: database.engine.name,
    version: database.engine.version,
    source: database.source,
    ...(database.ferretDbBackend === undefined ? {} : { backend: database.ferretDbBackend }),
    ...(database.source === 'MONGODB_URI' ? { uri: redactUri(database.uri) } : {}),
  };
  const report = {
    command: ['npm run bench', ...(flags.large === true || flags.scale !== 1 ? ['--'] : []), ...(flags.large === true ? ['--large'] : []), ...(flags.scale === 1 ? [] : ['--scale', String(flags.scale)])].join(' '),
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    engine,
    machine: machine(),
    dataset: { source: dataset.source, tools: dataset.tools.length },
    sizes,
    budgets,
    targets: TARGETS,
    results,
    engineBound,
    table: rows,
  };
  await mkdir(dirname(resolve(flags.out)), { recursive: true });
  await writeFile(resolve(flags.out), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(resolve(flags.out).replace(/\.json$/, '.md'), `${markdownTable(rows)}\n`);

  const backend = database.ferretDbBackend === undefined ? '' : `, ${database.ferretDbBackend} backend`;
  process.stdout.write(`\n${engine.name} ${engine.version} (${engine.source}${backend}) · ${String(machine().cpu)} × ${cpus().length} · Node ${process.version}\n`);
  process.stdout.write(`${renderTable(rows)}\n`);
  if (engineBound.length > 0) {
    process.stdout.write(`\nBound by the engine on ${engine.name}, not by this package:\n`);
    for (const { figure, reason } of engineBound) process.stdout.write(`- ${figure}: ${reason}\n`);
  }
  process.stdout.write(`\nwritten: ${flags.out}\n`);
}

const program = new Command('bench')
  .description('Measures the sync layer against the raw MongoDB driver, side by side')
  .addOption(new Option('--large', 'backfill 1,000,000 documents and query up to 1,000,000 tools'))
  .addOption(new Option('--scale <fraction>', 'every size, and the time spent measuring each figure, times this (0 < fraction ≤ 1), for a quick try').default(1).argParser((value): number => {
    const scale = Number(value);
    if (!(scale > 0 && scale <= 1)) throw new Error(`--scale must be a number above 0 and at most 1; got "${value}"`);
    return scale;
  }))
  .addOption(new Option('--data <file>', 'legacy tools as JSON lines (realistic text)').default('../shared/data/tools-npm.jsonl'))
  .addOption(new Option('--out <file>', 'where the results go (and a Markdown table beside it)').default('bench/results.json'))
  .addOption(new Option('--only <sections>', `comma-separated: ${SECTIONS.join(', ')}`)
    .default([...SECTIONS])
    .argParser((value): Section[] => value.split(',').map((name) => {
      const section = name.trim();
      if (!(SECTIONS as readonly string[]).includes(section)) throw new Error(`--only: unknown section "${section}"; choose from ${SECTIONS.join(', ')}`);
      return section as Section;
    })))
  .addOption(new Option('--db-name <name>', 'database to use (it is emptied)').default('tool_sync_bench'))
  .action(main);

try {
  await program.parseAsync();
} catch (error) {
  process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
