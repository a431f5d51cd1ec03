import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import SlowFilesFirst from './test/helpers/sequencer.js';

/**
 * Test files at once: one per core, at least two and at most four. The files wait on the database
 * server and on the processes they start, so two cores keep two files busy; but the one server's
 * CPU is the limit (on two cores, three files at once took longer than two: see the README's
 * "The database"). TOOL_SYNC_TEST_WORKERS overrides it.
 */
const workers = Number(process.env.TOOL_SYNC_TEST_WORKERS ?? '') || Math.min(4, Math.max(2, availableParallelism()));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['reflect-metadata'],
    // Building FerretDB on a fresh machine happens in global setup; tests then talk to a real server.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: workers,
    sequence: { sequencer: SlowFilesFirst },
    // vitest's own report, and the suite's: progress where the output is no terminal, the slowest tests at the end.
    reporters: ['default', './test/helpers/reporter.ts'],
  },
});
