import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import SlowFilesFirst from './test/helpers/sequencer.js';

/**
 * Test files at once. The files wait on the database server and on the processes they start far
 * more than they compute, so even two cores keep more than one busy (measured: see the README's
 * Scripts). TOOL_SYNC_TEST_WORKERS overrides it.
 */
const workers = Number(process.env.TOOL_SYNC_TEST_WORKERS ?? '') || Math.max(2, availableParallelism());

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
