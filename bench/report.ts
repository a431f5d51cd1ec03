/** The benchmark's verdicts, its table and what on FerretDB is the engine's doing. */
import Table from 'cli-table3';
import type { BackfillResult } from './backfill.js';
import type { HashingResult } from './hashing.js';
import { QUERY_NAMES, QUEUE_NAMES, type QueriesResult, type QueueName } from './queries.js';
import type { WorkerResult, WorkerRun } from './worker.js';
import type { PerWrite, WriteFigure, WritePathResult } from './write-path.js';

export interface Results {
  hashing?: HashingResult;
  writePath?: WritePathResult;
  backfill?: BackfillResult;
  queries?: QueriesResult;
  worker?: WorkerResult;
}

export interface Row {
  figure: string;
  package: string;
  plain: string;
  raw: string;
  /** The package's figure over the plain model's, and over the raw driver's. */
  vsPlain: string;
  vsRaw: string;
  target: string;
  verdict: string;
}

export interface EngineBound { figure: string; reason: string }

export const TARGETS = {
  hashesPerSecond: 100_000,
  writeRatio: 1.3,
  /** Issue 9: CPU per document and insertMany at most this many times the plain model's. */
  plainRatio: 2,
  /** Issue 9: commands per write (a single-document content update, a non-content one, a save). */
  contentUpdateCommands: 2,
  nonContentUpdateCommands: 1,
  saveCommands: 1,
  backfillPeakRssMb: 300,
  backfillRssAtDocuments: 1_000_000,
  /** The dashboard's counts (getSyncStats): latency growth per size step. */
  queryGrowth: 3,
  /** The three queues: latency and documents per call, 10,000 → 100,000 tools. */
  queueGrowth: 1.5,
  queueGrowthFrom: 10_000,
  /** Issue 19: the worker at batch 64 — database commands per pair, pairs per second over one pair at a time, share of the embedder's ceiling (an engine that uses the indexes). */
  workerCommandsPerPair: 0.15,
  workerSpeedup: 10,
  workerCeilingShare: 0.5,
} as const;

const count = (value: number): string => value.toLocaleString('en-US', { maximumFractionDigits: value < 100 ? 1 : 0 });
const times = (value: number): string => `${value.toFixed(2)}×`;
const ms = (value: number): string => `${value.toLocaleString('en-US', { maximumFractionDigits: value < 1 ? 3 : value < 10 ? 2 : 0 })} ms`;
const verdict = (met: boolean): string => (met ? 'met' : 'MISSED');
const partial = (completed: boolean, done: number, of: number): string => (completed ? '' : ` (${count(done)} of ${count(of)} in the time budget)`);
const blank = { package: '', plain: '', raw: '', vsPlain: '', vsRaw: '', target: '', verdict: '' };

/** `3 (update 2, find 1)`: commands per write, and by command name when there is more than one kind. */
function commandsCell(side: PerWrite): string {
  const names = Object.entries(side.commandsByName);
  const total = count(side.commandsPerWrite);
  return names.length <= 1 ? `${total}${names[0] === undefined ? '' : ` (${names[0][0]})`}` : `${total} (${names.map(([name, n]) => `${name} ${count(n)}`).join(', ')})`;
}

const timeCell = (side: PerWrite): string => `${ms(side.msPerWrite)} (CPU ${ms(side.clientCpuMsPerWrite)})`;

/** Issue 9's goals for the commands of a write, where it states one. */
function commandTarget(figure: WriteFigure, figures: WriteFigure[]): { target: string; verdict: string } {
  const sent = figure.sides.package.commandsPerWrite;
  switch (figure.name) {
    case 'updateOne, content':
    case "findOneAndUpdate (returnDocument: 'after'), content":
      return { target: `≤ ${TARGETS.contentUpdateCommands}`, verdict: verdict(sent <= TARGETS.contentUpdateCommands) };
    case 'updateOne, non-content':
      return { target: `${TARGETS.nonContentUpdateCommands}`, verdict: verdict(sent <= TARGETS.nonContentUpdateCommands) };
    case 'doc.save(), content changed':
    case 'doc.save(), non-content changed':
      return { target: `${TARGETS.saveCommands} (goal)`, verdict: verdict(sent <= TARGETS.saveCommands) };
    default: {
      const smallest = figures.find((other) => other.name.startsWith('updateMany of'));
      if (!figure.name.startsWith('updateMany of') || smallest === undefined || smallest === figure) return { target: '', verdict: '' };
      const size = /updateMany of (\d+)/.exec(smallest.name)?.[1] ?? '?';
      return { target: `same as at ${size} tools`, verdict: verdict(sent <= smallest.sides.package.commandsPerWrite) };
    }
  }
}

function writePathRows(writePath: WritePathResult): Row[] {
  const { cpuPerDocument: cpu, insertMany, writes } = writePath;
  const rows: Row[] = [
    {
      figure: 'CPU per tool, no I/O: construct + validate + toObject (of which hashing)',
      package: `${ms(cpu.packageMs)} (${ms(cpu.hashingMs)})`,
      plain: ms(cpu.plainMs),
      raw: '',
      vsPlain: times(cpu.ratio),
      vsRaw: '',
      target: `≤ ${TARGETS.plainRatio}× plain`,
      verdict: verdict(cpu.ratio <= TARGETS.plainRatio),
    },
    {
      figure: `insertMany of ${count(insertMany.documents)} tools (documents per second)`,
      package: count(insertMany.perSecond.package),
      plain: count(insertMany.perSecond.plain),
      raw: count(insertMany.perSecond.raw),
      vsPlain: times(insertMany.ratio.plain),
      vsRaw: times(insertMany.ratio.raw),
      target: `≤ ${TARGETS.plainRatio}× plain · ≤ ${TARGETS.writeRatio}× raw`,
      verdict: `${verdict(insertMany.ratio.plain <= TARGETS.plainRatio)} · ${verdict(insertMany.ratio.raw <= TARGETS.writeRatio)}`,
    },
  ];
  for (const figure of writes) {
    const { package: ours, plain, raw } = figure.sides;
    rows.push({
      figure: `${figure.name}: commands per write`,
      package: commandsCell(ours),
      plain: commandsCell(plain),
      raw: commandsCell(raw),
      vsPlain: times(figure.commandRatio.plain),
      vsRaw: times(figure.commandRatio.raw),
      ...commandTarget(figure, writes),
    });
  }
  for (const { name, reason } of writePath.skipped) rows.push({ ...blank, figure: `${name}: not sent`, package: `not measured here: ${reason}` });
  for (const figure of writes) {
    const { package: ours, plain, raw } = figure.sides;
    const timeTarget = figure.name === 'updateOne, content';
    rows.push({
      figure: `${figure.name}: time per write (client CPU), ${count(ours.writes)} each${partial(figure.completed, ours.writes, figure.planned)}`,
      package: timeCell(ours),
      plain: timeCell(plain),
      raw: timeCell(raw),
      vsPlain: times(figure.timeRatio.plain),
      vsRaw: times(figure.timeRatio.raw),
      target: timeTarget ? `≤ ${TARGETS.writeRatio}× raw` : '',
      verdict: timeTarget ? verdict(figure.timeRatio.raw <= TARGETS.writeRatio) : '',
    });
  }
  return rows;
}

/**
 * `read 170 for 100 pairs · examined 130 (keys 140, 9 finds) · 1.02× / 1.00× the size before`:
 * what one call of a queue read, what the server examined for it, and their growth.
 */
function readsCell(queries: QueriesResult, index: number, name: QueueName): string {
  const reads = queries.sizes[index]?.reads[name];
  if (reads === undefined) return '';
  const { documentsRead, examined, returned } = reads;
  const unit = name.startsWith('claimSyncWork') ? 'pairs' : 'tools';
  const max = documentsRead.max === documentsRead.median ? '' : ` (max ${count(documentsRead.max)})`;
  const parts = [`read ${count(documentsRead.median)}${max} for ${count(returned)} ${unit}`];
  parts.push(examined === null
    ? 'examined: not given (no executionStats)'
    : `examined ${count(examined.totalDocsExamined)} (keys ${count(examined.totalKeysExamined)}, ${examined.finds} finds)`);
  const step = index === 0 ? undefined : queries.growth[index - 1];
  if (step !== undefined) {
    const factor = (value: number | null): string => (value === null ? '—' : times(value));
    const examinedGrowth = step.docsExamined[name];
    parts.push(`${factor(step.documentsRead[name])}${examined === null ? '' : ` / ${factor(examinedGrowth)}`} the size before`);
  }
  return parts.join(' · ');
}

/**
 * The queues are judged from 10,000 tools on (smaller, a queue may be shorter than what a call
 * reads); their latency on MongoDB only, their documents on any engine (explain's where given).
 */
function queryRows(queries: QueriesResult, engine: { isMongoDb: boolean }): Row[] {
  const rows: Row[] = [];
  const queueTarget = `growth ≤ ${TARGETS.queueGrowth}× from ${count(TARGETS.queueGrowthFrom)}`;
  for (const name of QUERY_NAMES) {
    const queue = (QUEUE_NAMES as readonly string[]).includes(name) ? (name as QueueName) : undefined;
    const limit = queue === undefined ? TARGETS.queryGrowth : TARGETS.queueGrowth;
    for (const [index, size] of queries.sizes.entries()) {
      const step = index === 0 ? undefined : queries.growth[index - 1];
      const growth = step?.factor[name];
      const latency = size.latency[name];
      const judged = step !== undefined && (queue === undefined || step.from >= TARGETS.queueGrowthFrom);
      let latencyVerdict = '';
      if (step !== undefined && !judged) latencyVerdict = 'scaled run';
      else if (step !== undefined) latencyVerdict = engine.isMongoDb && growth !== undefined ? verdict(growth <= limit) : 'not MongoDB';
      rows.push({
        ...blank,
        figure: `${name} at ${count(size.tools)} tools (median / p95, ${latency.samples} runs)`,
        package: `${ms(latency.medianMs)} / ${ms(latency.p95Ms)}${growth === undefined ? '' : ` (${times(growth)} the size before)`}`,
        target: step === undefined ? '' : queue === undefined ? `growth ≤ ${limit}× (MongoDB)` : `${queueTarget} (MongoDB)`,
        verdict: latencyVerdict,
      });
    }
    if (queue === undefined) continue;
    for (const [index, size] of queries.sizes.entries()) {
      const step = index === 0 ? undefined : queries.growth[index - 1];
      let documentsVerdict = '';
      if (step !== undefined && step.from < TARGETS.queueGrowthFrom) documentsVerdict = 'scaled run';
      else if (step !== undefined) {
        const judge = (factor: number | null): string => (factor === null ? '—' : verdict(factor <= TARGETS.queueGrowth));
        const examined = step.docsExamined[queue];
        documentsVerdict = `read ${judge(step.documentsRead[queue])}${examined === null ? '' : ` · examined ${judge(examined)}`}`;
      }
      rows.push({
        ...blank,
        figure: `${name} at ${count(size.tools)} tools: documents per call (read · examined)`,
        package: readsCell(queries, index, queue),
        target: step === undefined ? '' : queueTarget,
        verdict: documentsVerdict,
      });
    }
  }
  return rows;
}

const perPairCell = (run: WorkerRun): string => {
  const names = Object.entries(run.commandsByName).map(([name, n]) => `${name} ${count(n)}`).join(', ');
  return `${run.commandsPerPair} (${names})`;
};

/** Each mode and worker count side by side, then the issue's targets at batch 64. */
function workerRows(worker: WorkerResult, engine: { isMongoDb: boolean }): Row[] {
  const rows: Row[] = [];
  const embedder = `${worker.embedMs} ms + ${worker.embedPerInputMs} ms/input embedder`;
  for (const { mode, runs } of worker.modes) {
    for (const run of runs) {
      const lost = run.syncedAgain + run.claimLost + run.failed + run.errors === 0
        ? ''
        : `; ${run.syncedAgain} synced again, ${run.claimLost} claims lost, ${run.failed} failed, ${run.errors} errors`;
      rows.push({
        ...blank,
        figure: `sync worker, ${mode}: ${run.workers} × concurrency ${worker.concurrency}, ${embedder}, ${count(worker.tools)} tools`
          + ` (pairs per second; the embedder allows ${count(run.ceiling)}) · db commands · embedding · store requests per pair`,
        package: `${count(run.pairsPerSecond)} (${count(run.synced)} of ${count(run.waitingPairs)} waiting in ${run.seconds} s`
          + `${run.completed ? '' : ', time budget'}${lost})${run.workers === 1 ? '' : ` ${times(run.speedup)} one worker`}`
          + ` · ${perPairCell(run)} · ${run.embedRequestsPerPair} · ${run.storeRequestsPerPair}`,
        target: '—',
        verdict: '—',
      });
    }
  }
  const batch64 = worker.modes.find(({ batchSize }) => batchSize === 64)?.runs ?? [];
  const perPair = worker.modes.find(({ batchSize }) => batchSize === null)?.runs ?? [];
  if (batch64.length === 0) return rows;
  const mostCommands = Math.max(...batch64.map((run) => run.commandsPerPair));
  rows.push({
    ...blank,
    figure: 'sync worker, batch 64: database commands per pair (most of 1, 2, 4 workers)',
    package: count(mostCommands),
    target: `≤ ${TARGETS.workerCommandsPerPair}`,
    verdict: verdict(mostCommands <= TARGETS.workerCommandsPerPair),
  });
  const ratios = batch64.map((run, index) => {
    const slow = perPair[index]?.pairsPerSecond ?? 0;
    return slow === 0 ? Number.POSITIVE_INFINITY : run.pairsPerSecond / slow;
  });
  rows.push({
    ...blank,
    figure: 'sync worker, batch 64 over one pair at a time: pairs per second, same run (1, 2, 4 workers)',
    package: ratios.map((ratio) => times(ratio)).join(', '),
    target: `≥ ${TARGETS.workerSpeedup}×`,
    verdict: verdict(Math.min(...ratios) >= TARGETS.workerSpeedup),
  });
  const shares = batch64.map((run) => (run.ceiling === 0 ? 0 : run.pairsPerSecond / run.ceiling));
  rows.push({
    ...blank,
    figure: "sync worker, batch 64: share of the embedder's ceiling (1, 2, 4 workers)",
    package: shares.map((share) => `${Math.round(share * 100)} %`).join(', '),
    target: `≥ ${Math.round(TARGETS.workerCeilingShare * 100)} % (MongoDB)`,
    verdict: engine.isMongoDb ? verdict(Math.min(...shares) >= TARGETS.workerCeilingShare) : 'not MongoDB',
  });
  return rows;
}

export function tableRows(results: Results, engine: { isMongoDb: boolean }): Row[] {
  const rows: Row[] = [];
  const { hashing, writePath, backfill, queries } = results;
  if (hashing !== undefined) {
    rows.push({
      ...blank,
      figure: `content hashes, ${count(hashing.tools)} tools × 4 collections (per second, one core)`,
      package: count(hashing.packageHashesPerSecond),
      raw: `${count(hashing.rawSha256PerSecond)} (bare SHA-256)`,
      vsRaw: times(hashing.ratio),
      target: `≥ ${count(TARGETS.hashesPerSecond)}/s`,
      verdict: verdict(hashing.packageHashesPerSecond >= TARGETS.hashesPerSecond),
    });
  }
  if (writePath !== undefined) rows.push(...writePathRows(writePath));
  if (backfill !== undefined) {
    const rssTarget = backfill.documents >= TARGETS.backfillRssAtDocuments;
    rows.push({
      ...blank,
      figure: `backfill of ${count(backfill.documents)} legacy documents (per second)${partial(backfill.package.completed, backfill.package.processed, backfill.documents)}`,
      package: count(backfill.package.docsPerSecond),
      raw: `${count(backfill.raw.docsPerSecond)} (updateMany, constant defaults)`,
      vsRaw: backfill.ratio === null ? 'none done in the budget' : times(backfill.ratio),
      target: '—',
      verdict: '—',
    });
    rows.push({
      ...blank,
      figure: `backfill peak RSS (MB; at connect: ${backfill.package.startRssMb} / ${backfill.raw.startRssMb})`,
      package: count(backfill.package.peakRssMb),
      raw: count(backfill.raw.peakRssMb),
      target: `< ${TARGETS.backfillPeakRssMb} MB at ${count(TARGETS.backfillRssAtDocuments)}`,
      verdict: rssTarget ? verdict(backfill.package.peakRssMb < TARGETS.backfillPeakRssMb) : 'run --large',
    });
  }
  if (queries !== undefined) rows.push(...queryRows(queries, engine));
  if (results.worker !== undefined) rows.push(...workerRows(results.worker, engine));
  return rows;
}

/** On FerretDB, which figures its engine decides rather than this package, and why. */
export function engineBoundFigures(results: Results, backend: string | undefined): EngineBound[] {
  const bound: EngineBound[] = [];
  const lookup = backend === 'postgresql'
    ? "FerretDB v1 on PostgreSQL sends `_id: x` to SQL as a JSONB containment (`_jsonb->'_id' @> x`), which its own btree index on `_jsonb->'_id'` cannot serve (EXPLAIN: sequential scan), so even a lookup by `_id` scans the collection"
    : 'FerretDB v1 on SQLite pushes down only a filter that is exactly `{ _id }` and decodes the whole collection for anything else';
  const writes = results.writePath?.writes ?? [];
  const byName = new Map(writes.map((figure) => [figure.name, figure]));
  const contentUpdate = byName.get('updateOne, content');
  if (contentUpdate !== undefined) {
    const find = contentUpdate.sides.package.serverMsByName.find;
    const save = byName.get('doc.save(), content changed')?.sides.package.serverMsByName.find;
    bound.push({
      figure: 'single-document content writes',
      reason: `${lookup}. The settle's find by \`syncMetadata.pendingHashCheck\` (a path inside a document) is not pushed down at all: FerretDB decodes every tool of the collection to answer it`
        + (find === undefined ? '' : ` (${ms(find)} of the package's ${ms(contentUpdate.sides.package.msPerWrite)} per content updateOne here)`)
        + `, where MongoDB answers it from the index sync_pending_hash_check_idx; a doc.save() settles by \`_id\`${save === undefined ? '' : ` (its find: ${ms(save)})`}`,
    });
  }
  if (writes.some((figure) => figure.name.startsWith('updateMany of') || figure.name.startsWith('bulkWrite of'))) {
    bound.push({
      figure: 'updateMany and bulkWrite time',
      reason: `${lookup}; each operation of a bulk write (the caller's, and the settle's conditional updates, one per changed tool) costs a pass over the collection, so their time grows with the tools they change, while their commands do not`,
    });
  }
  for (const { name, reason } of results.writePath?.skipped ?? []) {
    if (reason.includes('FerretDB')) bound.push({ figure: name, reason: `not measured: ${reason}` });
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
      reason: 'FerretDB v1 uses no secondary index for these filters (no range, `$in` or `$or` is pushed down), so each query decodes every document: latency grows linearly with the collection, whatever the indexes'
        + '; claimSyncWork sends one find per queue (two per collection) and one conditional update'
        + ' per tool it claims (`_id` and the state as read), which scans the collection too.'
        + ' The documents each call reads stay bounded (its cursors are merged lazily);'
        + ' what the server examines is not reported: its explain gives no executionStats',
    });
  }
  if (results.worker !== undefined) {
    bound.push({
      figure: 'sync worker pairs per second',
      reason: 'each claim reads its queues by a pass over the collection, and each claim, mark and lease'
        + ' renewal is a conditional write that FerretDB finds by scanning (see above); a bulk of them is'
        + ' at most 25 statements a command (more wedges FerretDB 1.x): one pair at a time, the database'
        + ' sets the pace; in batches, the commands per pair fall, each still a pass over the collection',
    });
  }
  return bound;
}

const HEAD = ['figure', 'this package', 'plain model', 'raw driver', 'package ÷ plain', 'package ÷ raw', 'target', 'verdict'];
const cells = (row: Row): string[] => [row.figure, row.package, row.plain, row.raw, row.vsPlain, row.vsRaw, row.target, row.verdict];

export function renderTable(rows: Row[]): string {
  const table = new Table({ head: HEAD, wordWrap: true, colWidths: [40, 26, 20, 20, 11, 11, 16, 11] });
  for (const row of rows) table.push(cells(row));
  return table.toString();
}

/** The same rows as a Markdown table, for the README. */
export function markdownTable(rows: Row[]): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const lines = [`| ${HEAD.join(' | ')} |`, `|${HEAD.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${cells(row).map(escape).join(' | ')} |`);
  return lines.join('\n');
}
