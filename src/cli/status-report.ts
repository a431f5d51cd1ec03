import CliTable from 'cli-table3';
import { type ToolModelType } from '../models/create-tool-model.js';
import { type SyncStats } from '../models/tool-queries.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES } from '../sync/vocabulary.js';

/** A wait as people say it: 45s, 12min, 3.5h, 2.0d; `none waiting` for null. */
export function formatAge(ms: number | null): string {
  if (ms === null) return 'none waiting';
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)}h`;
  return `${(seconds / 86_400).toFixed(1)}d`;
}

/**
 * Whether tables may carry colour codes: only on a terminal, and never when `NO_COLOR` is set to
 * anything but the empty string (https://no-color.org).
 */
export function useColour(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

/** What `tool-sync status` shows, `--json`, `--watch` and `--serve` alike: the full dashboard (also the counts that take a pass over every tool). */
export function readStatus(model: ToolModelType): Promise<SyncStats> {
  return model.getSyncStats({ full: true });
}

/** The text `status --json` prints and `/api/stats` serves. */
export function statusJson(stats: SyncStats): string {
  return JSON.stringify(stats, null, 2);
}

export interface StatusFormat {
  /** Bold headings (on a terminal); without, plain text (default). */
  colour?: boolean;
}

/** The dashboard: overall counts, collection × status, in flight and lag, failures by error code, the oldest wait, tools needing care. */
export function formatStatus(stats: SyncStats, format: StatusFormat = {}): string {
  // Our own SGR codes: cli-table3's colours obey @colors/colors' guess of the terminal (off wherever CI is set), not useColour.
  const style = { head: [], border: [] };
  const bold = (text: string): string => (format.colour === true ? `\x1b[1m${text}\x1b[22m` : text);
  const Table = class extends CliTable {
    constructor(options: { head: string[]; style: typeof style }) {
      super({ ...options, head: options.head.map(bold) });
    }
  };
  const overall = new Table({ head: ['tools', ...SYNC_STATUSES, 'total'], style });
  overall.push(['overall', ...SYNC_STATUSES.map((status) => stats.byOverallStatus[status]), stats.total]);
  // The lag: how long the oldest pending or stale pair of the collection has waited.
  const grid = new Table({ head: ['collection', ...SYNC_STATUSES, 'in flight', 'lag'], style });
  for (const name of SYNC_COLLECTION_NAMES) {
    const lag = stats.oldestWaitingAgeMs[name];
    grid.push([name, ...SYNC_STATUSES.map((status) => stats.byCollection[name][status]), stats.inFlight[name], lag === null ? '-' : formatAge(lag)]);
  }
  const failures = new Table({ head: ['error code', 'failed collections'], style });
  for (const code of SYNC_ERROR_CODES) if (stats.failuresByErrorCode[code] > 0) failures.push([code, stats.failuresByErrorCode[code]]);
  const models = new Table({ head: ['collection', 'embedding model', 'vectors'], style });
  for (const name of SYNC_COLLECTION_NAMES) {
    for (const { model, vectors } of stats.vectorsByEmbeddingModel?.[name] ?? []) models.push([name, model ?? '(not recorded)', vectors]);
  }
  const deletions = new Table({ head: ['collection', 'deletions pending', 'deletions failed'], style });
  const anyDeletion = SYNC_COLLECTION_NAMES.some((name) => stats.deletions[name].pending + stats.deletions[name].failed > 0);
  if (anyDeletion) for (const name of SYNC_COLLECTION_NAMES) deletions.push([name, stats.deletions[name].pending, stats.deletions[name].failed]);
  return [
    overall.toString(),
    grid.toString(),
    models.length > 0 ? models.toString() : stats.vectorsByEmbeddingModel === null ? 'vectors by embedding model: not counted' : 'no vectors yet',
    anyDeletion ? deletions.toString() : "no deleted tools' points waiting for removal",
    failures.length > 0 ? failures.toString() : 'no failed collections',
    `oldest pending or stale: ${formatAge(stats.oldestPendingAgeMs)}`,
    `legacy tools without sync metadata (counted as pending): ${stats.legacyWithoutMetadata}${stats.legacyWithoutMetadata > 0 ? ' — run `tool-sync backfill`' : ''}`,
    `unsettled tools (a content write whose hashes are not verified yet): ${stats.unsettled}${stats.unsettled > 0 ? ' — run `tool-sync settle`' : ''}`,
    `quarantined tools (stored sync metadata could not be used; back in line after an edit or a requeue): ${stats.quarantined}`,
    `unusable tools not quarantined yet (the next poll that meets one does): ${stats.unusable ?? 'not counted'}`,
  ].join('\n');
}
