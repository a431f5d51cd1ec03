import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest, started first (in this order): with files in parallel, a long file
 * started last would keep the run going alone at its end. Measured on a 2-core machine (2026-12);
 * the rest follow vitest's own order (slowest of the last run first, else the largest).
 */
export const SLOW_FILES = [
  'test/worker/run-sync-worker.test.ts',
  'test/models/concurrency.test.ts',
  'test/cli/operations.test.ts',
  'test/bench.test.ts',
  'test/cli/embedded.test.ts',
  'test/package/consumer.test.ts',
  'test/cli/migrations.test.ts',
  'test/models/write-path-regressions.test.ts',
  'test/cli/safety.test.ts',
];

export default class SlowFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (file: TestSpecification): number => {
      const index = SLOW_FILES.findIndex((slow) => file.moduleId.endsWith(`/${slow}`));
      return index === -1 ? SLOW_FILES.length : index;
    };
    // A stable sort: vitest's order among the others.
    return sorted.map((file, order) => ({ file, order })).sort((a, b) => rank(a.file) - rank(b.file) || a.order - b.order).map(({ file }) => file);
  }
}
