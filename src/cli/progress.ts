import { SingleBar, Presets } from 'cli-progress';
import { type MigrationProgress, type MigrationSummary } from '../migrations/batch-migration.js';

function rate(done: number, startedAt: number): number {
  const seconds = (Date.now() - startedAt) / 1000;
  return seconds > 0 ? done / seconds : 0;
}

/** A stream the CLI writes to: the process's own, or a captured one (whose isTTY is not true). */
export type OutputStream = NodeJS.WritableStream & { isTTY?: boolean };

/**
 * Progress of a migration on stderr: a bar with count, rate and ETA on a terminal; otherwise
 * (CI, a pipe, a log file) a plain line at most every five seconds.
 */
export function migrationProgress(label: string, stream: OutputStream = process.stderr): MigrationProgress {
  let total = 0;
  let startedAt = Date.now();
  if (stream.isTTY) {
    const bar = new SingleBar(
      { format: `${label} [{bar}] {value}/{total} | {rate}/s | ETA {eta_formatted}`, stream, hideCursor: true, etaBuffer: 50 },
      Presets.shades_classic,
    );
    return {
      start(count) { total = count; startedAt = Date.now(); bar.start(total, 0, { rate: '0' }); },
      update(done) { bar.update(Math.min(done, total), { rate: rate(done, startedAt).toFixed(0) }); },
      stop() { bar.stop(); },
    };
  }
  let lastLine = 0;
  const line = (done: number, summary?: MigrationSummary): void => {
    const perSecond = rate(done, startedAt);
    const eta = perSecond > 0 ? `${Math.max(0, Math.round((total - done) / perSecond))}s` : '?';
    const failed = summary === undefined ? '' : `, ${summary.failed.length} failed`;
    stream.write(`${label}: ${done}/${total} scanned (${perSecond.toFixed(0)}/s, ETA ${eta}${failed})\n`);
  };
  return {
    start(count) { total = count; startedAt = Date.now(); stream.write(`${label}: ${total} documents to scan\n`); },
    update(done, summary) {
      if (Date.now() - lastLine < 5_000 && done < total) return;
      lastLine = Date.now();
      line(done, summary);
    },
    stop() { /* the summary follows */ },
  };
}

/** The closing summary of a migration, as lines of text. */
export function formatSummary(summary: MigrationSummary): string {
  const lines = [
    `${summary.migration}${summary.dryRun ? ' (dry run: nothing was written; counts are what would change)' : ''}`,
    ...(summary.resumedAfter === null ? [] : [`  resumed after _id ${summary.resumedAfter} (an earlier run was interrupted)`]),
    `  scanned:          ${summary.scanned}`,
    ...Object.entries(summary.outcomes).map(([outcome, n]) => `  ${`${outcome}:`.padEnd(18)}${n}`),
    ...(summary.replanned > 0 ? [`  re-planned:       ${summary.replanned} (changed by someone else while being migrated)`] : []),
    `  failed:           ${summary.failed.length}`,
    // The _id finds the document; the business id tells the operator which tool it is.
    ...summary.failed.slice(0, 50).map(({ _id, id, reason }) => `    _id ${_id} (id ${id ?? 'missing'}): ${reason}`),
    ...(summary.failed.length > 50 ? [`    … and ${summary.failed.length - 50} more`] : []),
    ...(summary.aborted ? ['  stopped:          after a batch, on request; run it again to resume'] : []),
    `  elapsed:          ${(summary.elapsedMs / 1000).toFixed(1)}s`,
  ];
  return lines.join('\n');
}
