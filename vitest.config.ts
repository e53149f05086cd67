import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Integration tests fail, never skip, when the stack is missing: see test/integration/global-setup.ts.
    passWithNoTests: false,
    reporters: ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/integration/global-setup.ts'],
          // The broker and the scorer share 2 cores with the tests: one file at a time keeps
          // timings meaningful and avoids starving the JVMs.
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
