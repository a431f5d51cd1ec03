import { readFile } from 'node:fs/promises';
// Types only: erased at build, so importing the package never loads OpenTelemetry (an optional peer).
import type {
  Attributes, BatchObservableCallback, Counter, Meter, Observable, ObservableUpDownCounter,
} from '@opentelemetry/api';
import { type ToolModelType } from '../models/create-tool-model.js';
import { SyncArgumentError } from '../models/errors.js';
import { integerInRange } from '../models/sync-arguments.js';
import { type SyncStats } from '../models/tool-queries.js';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES } from '../sync/vocabulary.js';
import { type SyncWorkerEvent } from '../worker/events.js';
import { MAX_BATCH_SIZE } from '../worker/options.js';

/*
 * Metrics through OpenTelemetry's API: counters and histograms from a worker's events (free: no
 * database read), and the dashboard's numbers sampled from getSyncStats({ full: true }) at most
 * once per `collectEveryMs`, whenever the host's reader collects. No attribute names a worker or
 * a tool: a worker id changes with every process (pid and a random part), so it would make a new
 * series per restart, without bound; per-worker numbers are in each worker's summary.
 */

export interface SyncInstrumentationOptions {
  /** The Tool model whose collection is sampled: `ToolModel`, or `createToolModel(connection)`. */
  model: ToolModelType;
  /** Where the instruments are made (your MeterProvider's); default the global one's `tool-sync` meter. */
  meter?: Meter;
  /** The longest a sample is reused: a collection within this many ms of the last sample reads nothing (default 15,000). */
  collectEveryMs?: number;
  /** The clock (default the system's): the samples' age and getSyncStats' `now`. */
  now?: () => Date;
}

export interface SyncInstrumentation {
  /** Records a worker's event: give it as runSyncWorker's `onEvent` (or call it from yours). */
  onEvent: (event: SyncWorkerEvent) => void;
  /** Samples the collection now (whatever the age of the last sample) and returns the sample; rejects if the read fails. */
  collect: () => Promise<SyncStats>;
  /** The last sample, if one was taken. */
  latest: () => SyncStats | undefined;
  /** Removes the sampled instruments' callback and stops recording events (instruments cannot be unregistered in OpenTelemetry). */
  shutdown: () => void;
}

export const DEFAULT_COLLECT_EVERY_MS = 15_000;
const MAX_COLLECT_EVERY_MS = 86_400_000;
const OPTION_NAMES = new Set(['model', 'meter', 'collectEveryMs', 'now']);
const METER_METHODS = ['createCounter', 'createHistogram', 'createObservableGauge', 'createObservableUpDownCounter', 'addBatchObservableCallback', 'removeBatchObservableCallback'] as const;

/** Seconds: from a fast embedding (a few ms) to a slow store write near a lease's margin. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Pairs per call: powers of two up to the largest batch a worker sends. */
const ITEM_BUCKETS = Array.from({ length: Math.log2(MAX_BATCH_SIZE) + 1 }, (_, power) => 2 ** power);
/** The attribute value of vectors made before the embedding model was recorded. */
export const NOT_RECORDED_MODEL = '(not recorded)';

interface Settings {
  model: ToolModelType;
  meter: Meter | undefined;
  collectEveryMs: number;
  now: () => Date;
}

const isFunction = (value: unknown): boolean => typeof value === 'function';

function settingsOf(options: unknown): Settings {
  if (typeof options !== 'object' || options === null) throw new SyncArgumentError('options', options, 'an object { model, meter?, collectEveryMs?, now? }');
  const given = options as Record<string, unknown>;
  const stray = Object.keys(given).find((key) => !OPTION_NAMES.has(key));
  if (stray !== undefined) throw new SyncArgumentError(stray, given[stray], `no such option (known: ${[...OPTION_NAMES].join(', ')})`);
  const { model, meter, now } = given;
  if (!isFunction(model) || !isFunction((model as { getSyncStats?: unknown }).getSyncStats)) {
    throw new SyncArgumentError('model', model, 'a Tool model (ToolModel, or createToolModel(connection))');
  }
  if (meter !== undefined && (typeof meter !== 'object' || meter === null || METER_METHODS.some((name) => !isFunction((meter as Record<string, unknown>)[name])))) {
    throw new SyncArgumentError('meter', meter, "an OpenTelemetry Meter (meterProvider.getMeter('tool-sync'))");
  }
  if (now !== undefined && !isFunction(now)) throw new SyncArgumentError('now', now, 'a function returning the current Date');
  return {
    model: model as ToolModelType,
    meter: meter as Meter | undefined,
    collectEveryMs: integerInRange(given.collectEveryMs === undefined ? DEFAULT_COLLECT_EVERY_MS : given.collectEveryMs, 'collectEveryMs', 1, MAX_COLLECT_EVERY_MS),
    now: (now as (() => Date) | undefined) ?? (() => new Date()),
  };
}

/** This package's version, for the meter's scope (read only when the global meter is used). */
async function packageVersion(): Promise<string | undefined> {
  try {
    // dist/observability/ or src/observability/ -> the package's root.
    const manifest = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
    return manifest.name === 'tool-sync' && typeof manifest.version === 'string' ? manifest.version : undefined;
  } catch {
    return undefined;
  }
}

async function globalMeter(): Promise<Meter> {
  const { metrics } = await import('@opentelemetry/api');
  return metrics.getMeter('tool-sync', await packageVersion());
}

/** The instruments, as OpenTelemetry's semantic conventions name them (dots, units in UCUM, `{thing}` for counts). */
function instruments(meter: Meter) {
  const counter = (name: string, unit: string, description: string): Counter => meter.createCounter(name, { unit, description });
  const count = (name: string, unit: string, description: string): ObservableUpDownCounter => meter.createObservableUpDownCounter(name, { unit, description });
  return {
    claimed: counter('tool_sync.pairs.claimed', '{pair}', 'Pairs (tool × collection) claimed by workers.'),
    synced: counter('tool_sync.pairs.synced', '{pair}', 'Pairs embedded, stored and marked synced.'),
    failed: counter('tool_sync.pairs.failed', '{pair}', 'Pairs recorded as failed (retried after their backoff), by error code and stage.'),
    contentChanged: counter('tool_sync.pairs.content_changed', '{pair}', 'Pairs whose content changed while embedded: waiting again.'),
    claimLost: counter('tool_sync.pairs.claim_lost', '{pair}', 'Pairs a worker stopped holding, by when it found out.'),
    removalsDone: counter('tool_sync.removals.done', '{removal}', "Deleted tools' points removed from the store."),
    removalsFailed: counter('tool_sync.removals.failed', '{removal}', 'Removals that failed (retried after their backoff).'),
    pauses: counter('tool_sync.pauses', '{pause}', 'Pauses of new calls after a rate limit or an outage.'),
    workerErrors: counter('tool_sync.worker.errors', '{error}', 'Database commands a worker saw refused (it went on).'),
    collectErrors: counter('tool_sync.collect.errors', '{error}', 'Samples of the collection that failed (the last sample is reported meanwhile).'),
    callDuration: meter.createHistogram('tool_sync.call.duration', {
      unit: 's', description: 'Duration of the calls of the embedding API and the vector store.', advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    callItems: meter.createHistogram('tool_sync.call.items', {
      unit: '{pair}', description: 'Pairs (or removals) per call of the embedding API and the vector store.', advice: { explicitBucketBoundaries: ITEM_BUCKETS },
    }),
    tools: count('tool_sync.tools', '{tool}', 'Tools by overall status.'),
    pairs: count('tool_sync.pairs', '{pair}', 'Pairs by collection and status.'),
    inFlight: count('tool_sync.pairs.in_flight', '{pair}', 'Pairs claimed by a worker whose lease has not ended.'),
    failedByCode: count('tool_sync.pairs.failed_by_code', '{pair}', 'Failed pairs by error code.'),
    quarantined: count('tool_sync.tools.quarantined', '{tool}', 'Tools quarantined for stored metadata the package never writes.'),
    unsettled: count('tool_sync.tools.unsettled', '{tool}', 'Tools whose last content write is not settled yet.'),
    legacy: count('tool_sync.tools.legacy', '{tool}', 'Tools written before this package, not backfilled.'),
    unusable: count('tool_sync.tools.unusable', '{tool}', 'Tools holding metadata the next poll quarantines.'),
    removalsPending: count('tool_sync.removals.pending', '{removal}', "Deleted tools' points still to be removed."),
    removalsFailing: count('tool_sync.removals.failing', '{removal}', 'Removals whose last attempt failed.'),
    vectors: count('tool_sync.vectors', '{vector}', 'Vectors by collection and the embedding model that made them.'),
    lag: meter.createObservableGauge('tool_sync.lag', { unit: 's', description: 'Age of the oldest waiting pair per collection (0 when none waits).' }),
  };
}

type Instruments = ReturnType<typeof instruments>;

/** Counters a known attribute set starts at 0 for, so that their series exist before the first event (those with an error code appear with it). */
function startAtZero(made: Instruments): void {
  for (const collection of SYNC_COLLECTION_NAMES) {
    for (const counter of [made.claimed, made.synced, made.contentChanged, made.removalsDone]) counter.add(0, { collection });
  }
  made.collectErrors.add(0);
}

/** Every value of a sample, with the attributes it is reported under. */
function observe(stats: SyncStats, made: Instruments, put: (instrument: Observable, value: number, attributes?: Attributes) => void): void {
  for (const [status, value] of Object.entries(stats.byOverallStatus)) put(made.tools, value, { status });
  for (const collection of SYNC_COLLECTION_NAMES) {
    for (const [status, value] of Object.entries(stats.byCollection[collection])) put(made.pairs, value, { collection, status });
    put(made.inFlight, stats.inFlight[collection], { collection });
    put(made.removalsPending, stats.deletions[collection].pending, { collection });
    put(made.removalsFailing, stats.deletions[collection].failed, { collection });
    for (const { model, vectors } of stats.vectorsByEmbeddingModel?.[collection] ?? []) put(made.vectors, vectors, { collection, embedding_model: model ?? NOT_RECORDED_MODEL });
    // 0, not no point, when none waits: a point left out keeps its last value in the SDK's cumulative export.
    put(made.lag, (stats.oldestWaitingAgeMs[collection] ?? 0) / 1000, { collection });
  }
  for (const code of SYNC_ERROR_CODES) put(made.failedByCode, stats.failuresByErrorCode[code], { error_code: code });
  put(made.quarantined, stats.quarantined);
  put(made.unsettled, stats.unsettled);
  put(made.legacy, stats.legacyWithoutMetadata);
  if (stats.unusable !== null) put(made.unusable, stats.unusable);
}

const COLLECTION_EVENTS = new Set(['synced', 'failed', 'content-changed', 'claim-lost', 'removed', 'remove-failed', 'call']);
const isCollection = (value: unknown): boolean => (SYNC_COLLECTION_NAMES as readonly unknown[]).includes(value);

/**
 * Refuses an event of a known type that lacks what its count needs (an event given by hand, not the
 * worker's), naming the field; an unknown type (a later worker's) is left for the caller to ignore.
 */
function checkEvent(event: unknown): SyncWorkerEvent | undefined {
  if (typeof event !== 'object' || event === null) throw new SyncArgumentError('event', event, "a runSyncWorker event ({ type: 'synced', collection, … })");
  const given = event as Record<string, unknown>;
  if (given.type === 'claimed') {
    const pairs = given.pairs;
    if (!Array.isArray(pairs)) throw new SyncArgumentError('event.pairs', pairs, 'an array of { collection, … }');
    const bad = pairs.findIndex((pair) => !isCollection((pair as { collection?: unknown } | null)?.collection));
    if (bad >= 0) throw new SyncArgumentError(`event.pairs[${bad}].collection`, (pairs[bad] as { collection?: unknown } | null)?.collection, SYNC_COLLECTION_NAMES.join(', '));
  } else if (COLLECTION_EVENTS.has(String(given.type)) && !isCollection(given.collection)) {
    throw new SyncArgumentError('event.collection', given.collection, SYNC_COLLECTION_NAMES.join(', '));
  }
  if (given.type === 'call') {
    for (const field of ['durationMs', 'items'] as const) {
      const value = given[field];
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new SyncArgumentError(`event.${field}`, value, 'a finite number ≥ 0');
    }
  }
  return event as SyncWorkerEvent;
}

function record(event: SyncWorkerEvent, made: Instruments): void {
  switch (event.type) {
    case 'claimed':
      for (const { collection } of event.pairs) made.claimed.add(1, { collection });
      return;
    case 'synced':
      made.synced.add(1, { collection: event.collection });
      return;
    case 'failed':
      made.failed.add(1, { collection: event.collection, error_code: event.errorCode, stage: event.stage });
      return;
    case 'content-changed':
      made.contentChanged.add(1, { collection: event.collection });
      return;
    case 'claim-lost':
      made.claimLost.add(1, { collection: event.collection, during: event.during });
      return;
    case 'removed':
      made.removalsDone.add(1, { collection: event.collection });
      return;
    case 'remove-failed':
      made.removalsFailed.add(1, { collection: event.collection, error_code: event.errorCode });
      return;
    case 'paused':
      made.pauses.add(1, { stage: event.stage, error_code: event.errorCode });
      return;
    case 'call':
      made.callDuration.record(event.durationMs / 1000, { stage: event.stage, collection: event.collection, outcome: event.outcome });
      made.callItems.record(event.items, { stage: event.stage, collection: event.collection });
      return;
    case 'error':
      made.workerErrors.add(1, { phase: event.phase });
      return;
    default:
      // idle, stopped, deleted-meanwhile: in the summary; nothing to count here.
      return;
  }
}

/**
 * Registers the package's metrics on `meter` (default: the global MeterProvider's, loaded only
 * now): counters and histograms fed by `onEvent`, and the collection's numbers sampled from
 * getSyncStats({ full: true }) when the host's reader collects, at most once per
 * `collectEveryMs`. Rejects with a SyncArgumentError for bad options, before anything is registered.
 */
export async function instrumentSync(options: SyncInstrumentationOptions): Promise<SyncInstrumentation> {
  const settings = settingsOf(options);
  const meter = settings.meter ?? (await globalMeter());
  const made = instruments(meter);
  startAtZero(made);
  const { model, collectEveryMs, now } = settings;
  let last: SyncStats | undefined;
  // When the last read started, whether it succeeded or not: a database that is down is asked again only after collectEveryMs too.
  let triedAt: number | undefined;
  let reading: Promise<SyncStats> | undefined;
  let stopped = false;

  const read = async (): Promise<SyncStats> => {
    try {
      const at = now();
      triedAt = at.getTime();
      const stats = await model.getSyncStats({ now: at, full: true });
      last = stats;
      return stats;
    } catch (error) {
      made.collectErrors.add(1);
      throw error;
    }
  };
  // One read at a time: a collect() while a scrape is reading shares its read.
  const sample = (): Promise<SyncStats> => {
    if (reading !== undefined) return reading;
    const current = read();
    reading = current;
    const done = (): void => { if (reading === current) reading = undefined; };
    current.then(done, done);
    return current;
  };

  const observables: Observable[] = [
    made.tools, made.pairs, made.inFlight, made.failedByCode, made.quarantined, made.unsettled, made.legacy, made.unusable,
    made.removalsPending, made.removalsFailing, made.vectors, made.lag,
  ];
  /*
   * Every attribute set reported so far, by instrument. OpenTelemetry's SDK keeps exporting the last
   * value of an asynchronous instrument's attribute set that a callback no longer observes
   * (cumulative temporality): an embedding model whose vectors a migration replaced would show its
   * old count for ever. A set that a sample lacks is observed as 0 instead (the sets are few: models,
   * collections, statuses).
   */
  const reported = new Map<Observable, Map<string, Attributes | undefined>>();
  const callback: BatchObservableCallback = async (result) => {
    if (triedAt === undefined || now().getTime() - triedAt >= collectEveryMs) {
      // A failed read (the database down) is counted in tool_sync.collect.errors; the last sample is reported meanwhile.
      await sample().catch(() => undefined);
    }
    if (last === undefined) return;
    const seen = new Map<Observable, Set<string>>();
    observe(last, made, (instrument, value, attributes) => {
      result.observe(instrument, value, attributes);
      const key = JSON.stringify(attributes ?? {});
      const sets = reported.get(instrument) ?? new Map<string, Attributes | undefined>();
      sets.set(key, attributes);
      reported.set(instrument, sets);
      seen.set(instrument, (seen.get(instrument) ?? new Set<string>()).add(key));
    });
    for (const [instrument, sets] of reported) {
      for (const [key, attributes] of sets) if (seen.get(instrument)?.has(key) !== true) result.observe(instrument, 0, attributes);
    }
  };
  meter.addBatchObservableCallback(callback, observables);

  return {
    onEvent: (event) => {
      const checked = checkEvent(event);
      if (!stopped && checked !== undefined) record(checked, made);
    },
    collect: sample,
    latest: () => last,
    shutdown: () => {
      if (stopped) return;
      stopped = true;
      meter.removeBatchObservableCallback(callback, observables);
    },
  };
}

