import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['reflect-metadata'],
    // Building FerretDB on a fresh machine happens in global setup; tests then talk to a real server.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
