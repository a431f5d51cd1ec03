import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mongoose from 'mongoose';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { SYNC_COLLECTION_NAMES, SYNC_ERROR_CODES, SYNC_STATUSES, ToolModel, type SyncStats } from '../../src/index.js';
import { runCli, startCli, startCliInProcess, uriWithDatabase } from '../helpers/cli.js';
import { useTestDatabase } from '../helpers/database.js';
import { embeddedTool } from '../helpers/tombstones.js';
import { toolInput } from '../helpers/tools.js';

const database = useTestDatabase(import.meta.url);
const uri = (): string => uriWithDatabase(inject('mongoUri'), database.name);

/**
 * A collection with something in every part of the dashboard: synced pairs by two embedding models
 * (a migration), stale and failed pairs, pairs in flight, deleted tools' points waiting for removal.
 */
beforeAll(async () => {
  await ToolModel.createIndexes();
  await embeddedTool();
  await embeddedTool(['tools', 'usecases']);
  const other = await ToolModel.create(toolInput());
  await ToolModel.markCollectionSynced(other._id, 'tools', { contentHash: other.syncMetadata.collections.tools.contentHash, embeddingModel: 'm2' });
  const failing = await ToolModel.create(toolInput());
  await ToolModel.markCollectionFailed(failing._id, 'functionality', Object.assign(new Error('429'), { status: 429 }), 'embedding');
  const edited = await embeddedTool();
  await ToolModel.updateOne({ _id: edited }, { $set: { description: 'Edited: now stale everywhere.' } });
  await ToolModel.deleteOne({ _id: await embeddedTool(['tools', 'interface']) });
  await ToolModel.create(toolInput());
  // A worker holding the next tool's pairs (its lease outlives the test).
  await ToolModel.claimSyncWork({ workerId: 'status-serve-test', limit: 1 });
});

/** The status --json of the test's collection, as the command prints it. */
async function statusJson(): Promise<{ text: string; stats: SyncStats }> {
  const result = await runCli(['status', '--json', '--uri', uri()]);
  expect(result.code, result.stderr).toBe(0);
  return { text: result.stdout, stats: JSON.parse(result.stdout) as SyncStats };
}

/** Ages move with the clock: compared as "some wait" or "none". */
const withoutAges = (stats: SyncStats): unknown => ({
  ...stats,
  oldestPendingAgeMs: stats.oldestPendingAgeMs === null ? null : 'some',
  oldestWaitingAgeMs: Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, stats.oldestWaitingAgeMs[name] === null ? null : 'some'])),
});

/** A sample's value from the parsed exposition: the one series of `name` whose labels include `labels` (undefined if none). */
function sample(families: PrometheusFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((found) => found.name === name);
  const matching = family?.metrics.filter((metric) => Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value)) ?? [];
  if (matching.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${matching.length} series`);
  const value = matching[0]?.value;
  return value === undefined ? undefined : Number(value);
}

/** `status --serve` on a free port, once it has printed its URL. */
async function serve(extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const run = startCliInProcess(['status', '--serve', '--port', '0', '--uri', uri(), ...extra], env);
  const url = (await run.waitFor(/^(http:\/\/\S+\/)$/m))[1] ?? '';
  return { run, url };
}

async function stop(run: ReturnType<typeof startCliInProcess>): Promise<Awaited<ReturnType<typeof startCliInProcess>['done']>> {
  expect(run.interrupt()).toBe(true);
  const result = await run.done;
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).toMatch(/^tool-sync: stopped$/m);
  return result;
}

describe('tool-sync status --serve', () => {
  it('serves /metrics (Prometheus text, parsed by a Prometheus parser) with the numbers of status --json', async () => {
    const { run, url } = await serve(['--collect-every-ms', '60000']);
    try {
      const response = await fetch(new URL('metrics', url));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      const families = parsePrometheusTextFormat(await response.text());
      const { stats } = await statusJson();
      // The fixture leaves nothing empty that the comparison below would pass on by zeroes alone.
      expect(stats.inFlight.tools + stats.inFlight.functionality).toBeGreaterThan(0);
      expect(stats.deletions.tools.pending).toBeGreaterThan(0);
      expect(stats.failuresByErrorCode.EMBEDDING_RATE_LIMIT).toBe(1);
      expect(stats.vectorsByEmbeddingModel?.tools.map(({ model }) => model).sort()).toEqual(['m', 'm2']);

      for (const status of SYNC_STATUSES) expect(sample(families, 'tool_sync_tools', { status }), status).toBe(stats.byOverallStatus[status]);
      for (const collection of SYNC_COLLECTION_NAMES) {
        for (const status of SYNC_STATUSES) expect(sample(families, 'tool_sync_pairs', { collection, status }), `${collection} ${status}`).toBe(stats.byCollection[collection][status]);
        expect(sample(families, 'tool_sync_pairs_in_flight', { collection }), collection).toBe(stats.inFlight[collection]);
        expect(sample(families, 'tool_sync_removals_pending', { collection }), collection).toBe(stats.deletions[collection].pending);
        expect(sample(families, 'tool_sync_removals_failing', { collection }), collection).toBe(stats.deletions[collection].failed);
        for (const { model, vectors } of stats.vectorsByEmbeddingModel?.[collection] ?? []) {
          expect(sample(families, 'tool_sync_vectors', { collection, embedding_model: model ?? '(not recorded)' }), `${collection} ${model ?? ''}`).toBe(vectors);
        }
        // The lag is 0 where none waits; sampled before status --json read it, it cannot be longer.
        const lag = sample(families, 'tool_sync_lag', { collection });
        const waited = stats.oldestWaitingAgeMs[collection];
        if (waited === null) expect(lag, collection).toBe(0);
        else expect((lag ?? Number.POSITIVE_INFINITY) * 1000, collection).toBeLessThanOrEqual(waited);
      }
      for (const code of SYNC_ERROR_CODES) expect(sample(families, 'tool_sync_pairs_failed_by_code', { error_code: code }), code).toBe(stats.failuresByErrorCode[code]);
      expect(sample(families, 'tool_sync_tools_quarantined')).toBe(stats.quarantined);
      expect(sample(families, 'tool_sync_tools_unsettled')).toBe(stats.unsettled);
      expect(sample(families, 'tool_sync_tools_legacy')).toBe(stats.legacyWithoutMetadata);
      expect(sample(families, 'tool_sync_tools_unusable')).toBe(stats.unusable);
    } finally {
      await stop(run);
    }
  });

  it('serves /api/stats (exactly the JSON of status --json), /api/history, /healthz and the page; then stops on Ctrl-C and frees the port', async () => {
    const { run, url } = await serve();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(run.stderr()).toMatch(new RegExp(`^tool-sync: status page at ${url.replace(/[.]/g, '\\.')} .*Ctrl-C stops it$`, 'm'));
    expect(run.stderr()).not.toMatch(/warning/);
    try {
      const api = await fetch(new URL('api/stats', url));
      expect(api.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const served = await api.text();
      const printed = await statusJson();
      const stats = JSON.parse(served) as SyncStats;
      expect(withoutAges(stats)).toEqual(withoutAges(printed.stats));
      // The same text, ages aside: the same function prints both (key order and layout included).
      expect(served).toBe(`${JSON.stringify(stats, null, 2)}\n`);
      expect(JSON.stringify(withoutAges(stats))).toBe(JSON.stringify(withoutAges(printed.stats)));

      const history = await (await fetch(new URL('api/history', url))).json() as { samples: { at: number; synced: Record<string, number> }[] };
      expect(history.samples.length).toBeGreaterThanOrEqual(1);
      expect(history.samples[0]?.synced).toEqual(Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, stats.byCollection[name].synced])));

      const health = await fetch(new URL('healthz', url));
      expect([health.status, await health.text()]).toEqual([200, 'ok\n']);

      const page = await fetch(url);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'/);
      const html = await page.text();
      for (const name of SYNC_COLLECTION_NAMES) {
        for (const status of SYNC_STATUSES) expect(html).toContain(`data-collection="${name}" data-status="${status}" data-value="${stats.byCollection[name][status]}"`);
      }
      // Nothing from elsewhere: no URL with a scheme or a protocol-relative one in the page.
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);

      expect((await fetch(new URL('nothing-here', url))).status).toBe(404);
      expect((await fetch(new URL('api/stats', url), { method: 'POST' })).status).toBe(405);
    } finally {
      await stop(run);
    }
    await expect(fetch(url)).rejects.toThrow();
  });

  it('/healthz answers 503 when the database does not answer', async () => {
    const { run, url } = await serve();
    try {
      // The server's own connection, closed under it: the next ping fails.
      const served = mongoose.connections.find((connection) => connection.name === database.name && connection !== ToolModel.db && connection.readyState === mongoose.ConnectionStates.connected);
      expect(served).toBeDefined();
      await served?.close();
      const health = await fetch(new URL('healthz', url));
      expect(health.status).toBe(503);
      expect(await health.text()).toMatch(/^database unreachable: /);
    } finally {
      await stop(run);
    }
  });

  it('warns, in one line, that a --host other than loopback exposes a page without authentication', async () => {
    const { run, url } = await serve(['--host', '0.0.0.0']);
    try {
      expect(url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/$/);
      expect(run.stderr()).toMatch(/^tool-sync: warning: --host 0\.0\.0\.0 lets other machines reach the status page and \/metrics, which have no authentication .*$/m);
    } finally {
      await stop(run);
    }
  });

  it('stops on SIGTERM too (the bin, as a service manager stops it): exit 0', async () => {
    const run = startCli(['status', '--serve', '--port', '0', '--uri', uri()]);
    for (;;) {
      if (/^http:\/\/\S+\/$/m.test(run.stdout()) || run.child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect([result.code, result.signal], result.stderr).toEqual([0, null]);
    expect(result.stderr).toMatch(/^tool-sync: stopped$/m);
  });
});

describe('the CLI loads OpenTelemetry only for --serve', () => {
  it('status --json loads no OpenTelemetry module; status --serve does (the check can fail)', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const dir = await mkdtemp(join(tmpdir(), 'tool-sync-cli-otel-'));
    try {
      const log = join(dir, 'resolved.txt');
      // Every module the ESM loader resolves, written down by a resolve hook (as in instrument-sync.test.ts); CommonJS ones are in require.cache.
      const hooks = `import { appendFileSync } from 'node:fs'; let file;
        export function initialize(data) { file = data.file; }
        export async function resolve(specifier, context, next) { const found = await next(specifier, context); appendFileSync(file, found.url + '\\n'); return found; }`;
      const child = `
        import { register, createRequire } from 'node:module';
        import { readFileSync, writeFileSync } from 'node:fs';
        import { Writable } from 'node:stream';
        writeFileSync(${JSON.stringify(log)}, '');
        register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}), import.meta.url, { data: { file: ${JSON.stringify(log)} } });
        const require = createRequire(import.meta.url);
        const loaded = () => [...readFileSync(${JSON.stringify(log)}, 'utf8').split('\\n'), ...Object.keys(require.cache)].filter((one) => one.includes('@opentelemetry')).length;
        const { runCli } = await import(${JSON.stringify(new URL('dist/cli/program.js', `file://${root}`).href)});
        let out = '';
        const stream = new Writable({ write(chunk, _encoding, done) { out += chunk; done(); } });
        const interrupt = {};
        const json = await runCli(['status', '--json', '--uri', ${JSON.stringify(uri())}], { stdout: stream, stderr: stream, env: process.env, interrupt });
        const afterJson = loaded();
        const serving = runCli(['status', '--serve', '--port', '0', '--uri', ${JSON.stringify(uri())}], { stdout: stream, stderr: stream, env: process.env, interrupt });
        while (!/^http:/m.test(out)) await new Promise((resolve) => setTimeout(resolve, 20));
        interrupt.handler();
        console.log(JSON.stringify({ json, afterJson, serve: await serving, afterServe: loaded() }));
      `;
      const { stdout } = await promisify(execFile)(process.execPath, ['--no-warnings', '--input-type=module', '-e', child], { cwd: root });
      const report = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { json: number; afterJson: number; serve: number; afterServe: number };
      expect(report).toMatchObject({ json: 0, afterJson: 0, serve: 0 });
      expect(report.afterServe).toBeGreaterThan(0);
      expect(await readFile(log, 'utf8')).toContain('@opentelemetry/exporter-prometheus');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('tool-sync status: bad input, in one line, exit 1', () => {
  /** A port some other server holds. */
  async function heldPort(): Promise<{ port: number; holder: Server }> {
    const holder = createServer();
    const port = await new Promise<number>((resolve) => {
      holder.listen(0, '127.0.0.1', () => {
        const address = holder.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    return { port, holder };
  }

  it('a port in use', async () => {
    const { port, holder } = await heldPort();
    try {
      const result = await runCli(['status', '--serve', '--port', String(port), '--uri', uri()]);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.split('\n').filter((line) => line !== '').at(-1)).toBe(
        `tool-sync: port ${port} on 127.0.0.1 is in use (another tool-sync status --serve, or a Prometheus exporter?): pass --port <n>`,
      );
    } finally {
      holder.close();
    }
  });

  it.each([
    [['--serve', '--port', 'abc'], /^tool-sync: option '--port <n>' argument 'abc' is invalid\. expected a port from 0 to 65535/],
    [['--serve', '--port', '65536'], /argument '65536' is invalid\. expected a port from 0 to 65535/],
    [['--serve', '--port', '-1'], /argument '-1' is invalid\. expected a port/],
    [['--serve', '--port', '80.5'], /argument '80\.5' is invalid\. expected a port/],
    [['--serve', '--collect-every-ms', '0'], /^tool-sync: option '--collect-every-ms <n>' argument '0' is invalid\. expected a whole number from 1/],
    [['--watch', '--collect-every-ms', '1e3'], /argument '1e3' is invalid/],
    [['--serve', '--host', ''], /^tool-sync: option '--host <address>' argument '' is invalid\. cannot be empty/],
    [['--json', '--serve'], /^tool-sync: option '--json' cannot be used with option '--serve'/],
    [['--json', '--watch'], /^tool-sync: option '--json' cannot be used with option '--watch'/],
    [['--port', '9000'], /^tool-sync: --port needs --serve/],
    [['--watch', '--host', '0.0.0.0'], /^tool-sync: --host needs --serve/],
    [['--collect-every-ms', '100'], /^tool-sync: --collect-every-ms needs --serve or --watch/],
  ])('status %j', async (args, message) => {
    const result = await runCli(['status', ...args, '--uri', uri()]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});

describe('tool-sync status --watch', () => {
  const frames = (text: string): string[] => text.split(/^=== /m).filter((frame) => frame !== '');
  /** Cursor home and erase the screen: a terminal frame starts with it. */
  const CLEAR = '\x1b[H\x1b[2J';
  const twoFrames = new RegExp(`(${CLEAR.replace(/[[\]]/g, '\\$&')}[\\s\\S]*){2}`);

  it('redraws the dashboard every --collect-every-ms, one frame under its time after another where stdout is no terminal, until Ctrl-C', async () => {
    const run = startCliInProcess(['status', '--watch', '--collect-every-ms', '20', '--uri', uri()]);
    await run.waitFor(/(^=== tool-sync status at [\s\S]*){3}/m);
    const result = await stop(run);
    const { stats } = await statusJson();
    expect(frames(result.stdout).length).toBeGreaterThanOrEqual(3);
    for (const frame of frames(result.stdout)) {
      expect(frame).toMatch(/^tool-sync status at \d{4}-\d\d-\d\dT[\d:.]+Z \(every 20 ms; Ctrl-C stops\)\n/);
      expect(frame).toMatch(new RegExp(`overall(\\s*│\\s*\\d+){4}\\s*│\\s*${stats.total}`));
    }
    expect(result.stdout).not.toContain('\x1b');
  });

  it("beside --serve, draws the server's samples: the page and the terminal agree, and both stop on Ctrl-C", async () => {
    const { run, url } = await serve(['--watch', '--collect-every-ms', '20']);
    await run.waitFor(/(^=== tool-sync status at [\s\S]*){3}/m);
    const page = await (await fetch(`${url}live`)).text();
    const result = await stop(run);
    const total = /data-field="total" data-value="(\d+)"/.exec(page)?.[1];
    expect(total).toBeDefined();
    for (const frame of frames(result.stdout.slice(result.stdout.indexOf('==='))).slice(0, 3)) {
      expect(frame).toMatch(new RegExp(`overall(\\s*│\\s*\\d+){4}\\s*│\\s*${total ?? ''}`));
    }
  });

  it('on a terminal, replaces each frame (clears the screen) and colours the tables, but not with NO_COLOR', async () => {
    const colour = startCliInProcess(['status', '--watch', '--collect-every-ms', '20', '--uri', uri()], { NO_COLOR: undefined }, { tty: true });
    await colour.waitFor(twoFrames);
    const coloured = (await stop(colour)).stdout;
    expect(coloured.startsWith(`${CLEAR}tool-sync status at `)).toBe(true);
    // Bold headings: an SGR sequence of the package's own, whatever @colors/colors guesses of the terminal (CI=true included).
    expect(coloured.replaceAll(CLEAR, '')).toContain('\x1b[1mcollection\x1b[22m');

    const plain = startCliInProcess(['status', '--watch', '--collect-every-ms', '20', '--uri', uri()], { NO_COLOR: '1' }, { tty: true });
    await plain.waitFor(twoFrames);
    const uncoloured = (await stop(plain)).stdout;
    expect(uncoloured.startsWith(`${CLEAR}tool-sync status at `)).toBe(true);
    expect(uncoloured.replaceAll(CLEAR, '')).not.toContain('\x1b');
  });
});
