import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueDatabaseName } from './helpers/database.js';
import { hasStackTrace } from './helpers/cli.js';

const run = promisify(execFile);
let dir = '';

/** `npm run bench` against the test server (MONGODB_URI). */
async function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'bench', '--', ...args], {
      env: { ...process.env, MONGODB_URI: inject('mongoUri') },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'tool-sync-bench-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('npm run bench', () => {
  it('runs every section side by side and writes every figure to its results file', async () => {
    const out = join(dir, 'results.json');
    // 0.1 % of the sizes: FerretDB's SQLite backend scans on every write (see the README's Performance).
    const result = await bench(['--scale', '0.001', '--out', out, '--db-name', uniqueDatabaseName(import.meta.url)]);
    expect(result.stderr).not.toMatch(/bench: /);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('this package');
    const report = JSON.parse(await readFile(out, 'utf8')) as {
      engine: { name: string; version: string };
      machine: { cpu: string; cores: number };
      results: {
        hashing: { packageHashesPerSecond: number; rawSha256PerSecond: number; ratio: number };
        writePath: { insertMany: { operations: number; ratio: number }; contentUpdates: { operations: number; ratio: number; commandsPerPackageUpdate: number } };
        backfill: { documents: number; package: { processed: number; docsPerSecond: number; peakRssMb: number; completed: boolean }; raw: { processed: number; peakRssMb: number }; ratio: number; verifiedSample: number };
        queries: { sizes: { tools: number; latency: Record<string, { samples: number; medianMs: number; p95Ms: number }> }[]; growth: { factor: Record<string, number> }[] };
      };
      table: unknown[];
    };
    expect(report.engine.name).toBe(inject('dbEngine'));
    expect(report.engine.version).toBe(inject('dbEngineVersion'));
    expect(report.machine.cores).toBeGreaterThan(0);
    const { hashing, writePath, backfill, queries } = report.results;
    expect(hashing.packageHashesPerSecond).toBeGreaterThan(0);
    expect(hashing.rawSha256PerSecond).toBeGreaterThan(0);
    expect(writePath.insertMany).toMatchObject({ operations: 10 });
    expect(writePath.insertMany.ratio).toBeGreaterThan(0);
    expect(writePath.contentUpdates).toMatchObject({ operations: 10, commandsPerPackageUpdate: 2 });
    expect(backfill).toMatchObject({ documents: 100, package: { processed: 100, completed: true }, raw: { processed: 100 } });
    expect(backfill.verifiedSample).toBeGreaterThan(0);
    expect(backfill.package.peakRssMb).toBeGreaterThan(0);
    expect(queries.sizes.map((size) => size.tools)).toEqual([10, 100]);
    for (const size of queries.sizes) {
      for (const latency of Object.values(size.latency)) expect(latency.samples).toBeGreaterThanOrEqual(2);
      expect(Object.keys(size.latency)).toHaveLength(3);
    }
    expect(Object.keys(queries.growth[0]?.factor ?? {})).toHaveLength(3);
    expect(report.table.length).toBeGreaterThanOrEqual(10);
  }, 600_000);

  it('refuses a bad option with one line naming it', async () => {
    const result = await bench(['--only', 'hashing,nope']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--only: unknown section "nope"/);
    expect(hasStackTrace(result.stderr)).toBe(false);
  }, 120_000);
});
