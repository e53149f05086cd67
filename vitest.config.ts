import { defineConfig } from 'vitest/config';
import { BROKER_LINES } from './test/integration/lines.js';

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
      // The same integration files once per broker line (test/integration/lines.ts), each line
      // against its own broker: `vitest run --project integration-kafka39` runs one line.
      ...BROKER_LINES.map(({ project, include }) => ({
        test: {
          name: project,
          include: include ?? ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/integration/global-setup.ts'],
          // The brokers and the scorer share 2 cores with the tests: one file at a time, across
          // both lines, keeps timings meaningful and avoids starving the JVMs.
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 240_000,
        },
      })),
    ],
  },
});
