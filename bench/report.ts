/** The benchmark's verdicts, its table and what on FerretDB is the engine's doing. */
import Table from 'cli-table3';
import type { BackfillResult } from './backfill.js';
import type { HashingResult } from './hashing.js';
import { QUERY_NAMES, type QueriesResult } from './queries.js';
import type { WritePathResult } from './write-path.js';

export interface Results {
  hashing?: HashingResult;
  writePath?: WritePathResult;
  backfill?: BackfillResult;
  queries?: QueriesResult;
}

export interface Row {
  figure: string;
  package: string;
  raw: string;
  ratio: string;
  target: string;
  verdict: string;
}

export interface EngineBound { figure: string; reason: string }

export const TARGETS = {
  hashesPerSecond: 100_000,
  writeRatio: 1.3,
  backfillPeakRssMb: 300,
  backfillRssAtDocuments: 1_000_000,
  queryGrowth: 3,
} as const;

const count = (value: number): string => value.toLocaleString('en-US', { maximumFractionDigits: value < 100 ? 1 : 0 });
const times = (value: number): string => `${value.toFixed(2)}×`;
const ms = (value: number): string => `${value.toLocaleString('en-US', { maximumFractionDigits: value < 1 ? 3 : value < 10 ? 2 : 0 })} ms`;
const verdict = (met: boolean): string => (met ? 'met' : 'MISSED');
const partial = (completed: boolean, done: number, of: number): string => (completed ? '' : ` (${count(done)} of ${count(of)} in the time budget)`);

export function tableRows(results: Results, engine: { isMongoDb: boolean }): Row[] {
  const rows: Row[] = [];
  const { hashing, writePath, backfill, queries } = results;
  if (hashing !== undefined) {
    rows.push({
      figure: `content hashes, ${count(hashing.tools)} tools × 4 collections (per second, one core)`,
      package: count(hashing.packageHashesPerSecond),
      raw: `${count(hashing.rawSha256PerSecond)} (bare SHA-256)`,
      ratio: times(hashing.ratio),
      target: `≥ ${count(TARGETS.hashesPerSecond)}/s`,
      verdict: verdict(hashing.packageHashesPerSecond >= TARGETS.hashesPerSecond),
    });
  }
  if (writePath !== undefined) {
    const { insertMany, contentUpdates } = writePath;
    rows.push({
      figure: `insertMany of ${count(insertMany.operations)} tools (documents per second)`,
      package: count(insertMany.packagePerSecond),
      raw: count(insertMany.rawPerSecond),
      ratio: times(insertMany.ratio),
      target: `≤ ${TARGETS.writeRatio}×`,
      verdict: verdict(insertMany.ratio <= TARGETS.writeRatio),
    });
    rows.push({
      figure: 'CPU per tool, no I/O: Mongoose builds and validates (of which hashing)',
      package: `${ms(insertMany.cpuPerToolMs.buildAndValidate)} (${ms(insertMany.cpuPerToolMs.hashing)})`,
      raw: '',
      ratio: '',
      target: '',
      verdict: '',
    });
    rows.push({
      figure: `content updates, one updateOne each (per second)${partial(contentUpdates.completed, contentUpdates.operations, insertMany.operations)}`,
      package: `${count(contentUpdates.packagePerSecond)} (${contentUpdates.commandsPerPackageUpdate} commands each)`,
      raw: `${count(contentUpdates.rawPerSecond)} (1 command each)`,
      ratio: times(contentUpdates.ratio),
      target: `≤ ${TARGETS.writeRatio}×`,
      verdict: verdict(contentUpdates.ratio <= TARGETS.writeRatio),
    });
  }
  if (backfill !== undefined) {
    const rssTarget = backfill.documents >= TARGETS.backfillRssAtDocuments;
    rows.push({
      figure: `backfill of ${count(backfill.documents)} legacy documents (per second)${partial(backfill.package.completed, backfill.package.processed, backfill.documents)}`,
      package: count(backfill.package.docsPerSecond),
      raw: `${count(backfill.raw.docsPerSecond)} (updateMany, constant defaults)`,
      ratio: backfill.ratio === null ? 'none done in the budget' : times(backfill.ratio),
      target: '—',
      verdict: '—',
    });
    rows.push({
      figure: `backfill peak RSS (MB; at connect: ${backfill.package.startRssMb} / ${backfill.raw.startRssMb})`,
      package: count(backfill.package.peakRssMb),
      raw: count(backfill.raw.peakRssMb),
      ratio: '',
      target: `< ${TARGETS.backfillPeakRssMb} MB at ${count(TARGETS.backfillRssAtDocuments)}`,
      verdict: rssTarget ? verdict(backfill.package.peakRssMb < TARGETS.backfillPeakRssMb) : 'run --large',
    });
  }
  if (queries !== undefined) {
    for (const name of QUERY_NAMES) {
      for (const [index, size] of queries.sizes.entries()) {
        const growth = index === 0 ? undefined : queries.growth[index - 1]?.factor[name];
        const latency = size.latency[name];
        const growthTarget = index > 0 && engine.isMongoDb;
        rows.push({
          figure: `${name} at ${count(size.tools)} tools (median / p95, ${latency.samples} runs)`,
          package: `${ms(latency.medianMs)} / ${ms(latency.p95Ms)}`,
          raw: '',
          ratio: growth === undefined ? '' : `${times(growth)} the size before`,
          target: index === 0 ? '' : `≤ ${TARGETS.queryGrowth}× (MongoDB)`,
          verdict: growthTarget && growth !== undefined ? verdict(growth <= TARGETS.queryGrowth) : index === 0 ? '' : 'not MongoDB',
        });
      }
    }
  }
  return rows;
}

/** On FerretDB, which figures its engine decides rather than this package, and why. */
export function engineBoundFigures(results: Results, backend: string | undefined): EngineBound[] {
  const bound: EngineBound[] = [];
  const lookup = backend === 'postgresql'
    ? "FerretDB v1 on PostgreSQL sends `_id: x` to SQL as a JSONB containment (`_jsonb->'_id' @> x`), which its own btree index on `_jsonb->'_id'` cannot serve (EXPLAIN: sequential scan), so even a lookup by `_id` scans the collection"
    : 'FerretDB v1 on SQLite pushes down only a filter that is exactly `{ _id }` and decodes the whole collection for anything else';
  if (results.writePath !== undefined) {
    bound.push({
      figure: 'content updates',
      reason: `${lookup}; every command costs a scan, so the ratio is about the number of commands: ${results.writePath.contentUpdates.commandsPerPackageUpdate} (read, conditional save) against 1`,
    });
  }
  if (results.backfill !== undefined) {
    bound.push({
      figure: 'backfill documents per second',
      reason: `${lookup}; no range is pushed down either, so each batch's \`_id > last\` page query and each conditional write costs a pass over the collection and a backfill O(n²), where the raw updateMany makes one pass`,
    });
  }
  if (results.queries !== undefined) {
    bound.push({
      figure: 'worker and dashboard query latency and growth',
      reason: 'FerretDB v1 uses no secondary index for these filters (no range, `$in` or `$or` is pushed down), so each query decodes every document: latency grows linearly with the collection, whatever the indexes',
    });
  }
  return bound;
}

export function renderTable(rows: Row[]): string {
  const table = new Table({ head: ['figure', 'this package', 'raw driver', 'ratio', 'target', 'verdict'], wordWrap: true, colWidths: [46, 24, 26, 22, 18, 12] });
  for (const row of rows) table.push([row.figure, row.package, row.raw, row.ratio, row.target, row.verdict]);
  return table.toString();
}

/** The same rows as a Markdown table, for the README. */
export function markdownTable(rows: Row[]): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const lines = ['| figure | this package | raw driver | ratio | target | verdict |', '|---|---|---|---|---|---|'];
  for (const row of rows) lines.push(`| ${[row.figure, row.package, row.raw, row.ratio, row.target, row.verdict].map(escape).join(' | ')} |`);
  return lines.join('\n');
}
