import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runSyncWorker, SYNC_COLLECTION_NAMES, SYNC_STATUSES, ToolModel, type SyncStats } from '../../src/index.js';
import { runCli, startCliInProcess, uriWithDatabase } from '../helpers/cli.js';
import { useTestDatabase } from '../helpers/database.js';
import { embeddedTool } from '../helpers/tombstones.js';
import { toolInput } from '../helpers/tools.js';
import { recordingStore, storeWorker } from '../helpers/worker.js';

/**
 * The status page in a real browser: Debian's Chromium, driven by playwright-core (which downloads
 * nothing). Missing, the test says so and skips, except where it must run (CI, or
 * TOOL_SYNC_BROWSER_REQUIRED=1, which .ci/run sets after installing Chromium): there it fails.
 */
const CHROMIUM = process.env.TOOL_SYNC_CHROMIUM ?? '/usr/bin/chromium';
const required = (process.env.CI ?? '') !== '' || process.env.TOOL_SYNC_BROWSER_REQUIRED === '1';
const present = existsSync(CHROMIUM);
if (!present && !required) {
  console.warn(`[skip reason] the status page's browser test needs Chromium at ${CHROMIUM} (apt-get install chromium, or set TOOL_SYNC_CHROMIUM); it is not there, so the test is skipped here. CI runs it.`);
}

const database = useTestDatabase(import.meta.url);
const uri = (): string => uriWithDatabase(inject('mongoUri'), database.name);

let work = '';
let browser: Browser | undefined;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tool-sync-status-page-'));
  if (present) browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});
afterAll(async () => {
  await browser?.close();
  if (work !== '') await rm(work, { recursive: true, force: true });
});

async function statusJson(): Promise<SyncStats> {
  const result = await runCli(['status', '--json', '--uri', uri()]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as SyncStats;
}

/** The numbers the page shows for each collection, read from its data attributes. */
async function pageNumbers(page: Page): Promise<Record<string, Record<string, number>>> {
  const read = async (selector: string): Promise<number> => Number(await page.locator(selector).getAttribute('data-value'));
  const numbers: Record<string, Record<string, number>> = {};
  for (const name of SYNC_COLLECTION_NAMES) {
    const of = `[data-collection="${name}"]`;
    const row: Record<string, number> = {};
    for (const status of SYNC_STATUSES) row[status] = await read(`span${of}[data-status="${status}"]`);
    row.inFlight = await read(`span${of}[data-field="in-flight"]`);
    row.deletionsPending = await read(`span${of}[data-field="deletions-pending"]`);
    row.deletionsFailed = await read(`span${of}[data-field="deletions-failed"]`);
    numbers[name] = row;
  }
  return numbers;
}

function expectedNumbers(stats: SyncStats): Record<string, Record<string, number>> {
  return Object.fromEntries(SYNC_COLLECTION_NAMES.map((name) => [name, {
    ...stats.byCollection[name],
    inFlight: stats.inFlight[name],
    deletionsPending: stats.deletions[name].pending,
    deletionsFailed: stats.deletions[name].failed,
  }]));
}

describe.runIf(present || required)('the status page in headless Chromium', () => {
  it('shows the numbers of status --json per collection, follows a worker without a reload, loads nothing from elsewhere; a screenshot', async () => {
    if (!present) throw new Error(`Chromium is not installed at ${CHROMIUM}, and this run requires the browser test (CI or TOOL_SYNC_BROWSER_REQUIRED=1)`);
    if (browser === undefined) throw new Error('the browser did not start');
    for (let i = 0; i < 6; i += 1) await ToolModel.create(toolInput());
    await embeddedTool(['tools']);
    await ToolModel.deleteOne({ _id: await embeddedTool(['usecases']) });

    const server = startCliInProcess(['status', '--serve', '--port', '0', '--collect-every-ms', '200', '--uri', uri()]);
    const url = (await server.waitFor(/^(http:\/\/\S+\/)$/m))[1] ?? '';
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (request) => { requests.push(request.url()); });
    page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text()); });
    page.on('pageerror', (error) => { problems.push(error.message); });
    try {
      await page.goto(url);
      expect(await pageNumbers(page)).toEqual(expectedNumbers(await statusJson()));
      // A mark in the page's own state: a reload would lose it.
      await page.evaluate('window.toolSyncTestMark = "no reload"');

      // A worker syncs every pending pair of two collections.
      const summary = await runSyncWorker(storeWorker(recordingStore(), { model: ToolModel, collections: ['tools', 'usecases'] }));
      expect(summary.synced).toBeGreaterThan(0);
      const after = await statusJson();
      expect(after.byCollection.tools.pending).toBe(0);
      // Read from Node through the page's DOM until the page's script has swapped the new numbers in (no eval in the page: its CSP refuses it).
      await expect.poll(() => pageNumbers(page), { timeout: 20_000, interval: 100 }).toEqual(expectedNumbers(after));
      expect(await page.evaluate('window.toolSyncTestMark')).toBe('no reload');
      // The sparkline has more than one sample by now: a line from the first count to the last.
      await expect.poll(async () => Number(await page.locator('[data-collection="tools"][data-field="sparkline"]').getAttribute('data-points')), { timeout: 20_000, interval: 100 })
        .toBeGreaterThanOrEqual(2);
      expect(await page.locator('svg[data-collection="tools"][data-field="sparkline"] polyline').count()).toBe(1);

      const screenshot = join(work, 'status-page.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect(statSync(screenshot).size).toBeGreaterThan(10_000);

      const origin = new URL(url).origin;
      expect(requests.length).toBeGreaterThan(1);
      expect(requests.filter((request) => new URL(request).origin !== origin)).toEqual([]);
      // No CSP refusal (the inline script's hash), no script error.
      expect(problems).toEqual([]);
    } finally {
      await page.close();
      expect(server.interrupt()).toBe(true);
      expect((await server.done).code).toBe(0);
    }
  });

  it('is readable without JavaScript: the numbers are in the HTML', async () => {
    if (!present) throw new Error(`Chromium is not installed at ${CHROMIUM}, and this run requires the browser test (CI or TOOL_SYNC_BROWSER_REQUIRED=1)`);
    if (browser === undefined) throw new Error('the browser did not start');
    const server = startCliInProcess(['status', '--serve', '--port', '0', '--uri', uri()]);
    const url = (await server.waitFor(/^(http:\/\/\S+\/)$/m))[1] ?? '';
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      await page.goto(url);
      expect(await pageNumbers(page)).toEqual(expectedNumbers(await statusJson()));
      // The script did not run: the header still says the page reloads itself (the <noscript> refresh).
      expect(await page.locator('#state').textContent()).toMatch(/^reloads every \d+s$/);
      const stats = await statusJson();
      for (const name of SYNC_COLLECTION_NAMES) {
        expect(await page.locator(`section.collection[data-collection="${name}"] h2`).textContent()).toBe(name);
        expect(await page.locator(`span[data-collection="${name}"][data-status="synced"]`).textContent()).toBe(stats.byCollection[name].synced.toLocaleString('en-US'));
      }
    } finally {
      await context.close();
      expect(server.interrupt()).toBe(true);
      expect((await server.done).code).toBe(0);
    }
  });
});
