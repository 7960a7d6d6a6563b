import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Integration tests talk to a real control plane, PostgreSQL and Redis; allow for a loaded
    // 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    allowOnly: false,
    // The test files mostly wait on `tideway` child processes: run all three at once (vitest would
    // give a 2-core machine a single worker). Each file has its own databases and Redis prefix.
    maxWorkers: 3,
  },
});
