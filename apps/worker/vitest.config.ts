import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    allowOnly: false,
    // Backfill tests start worker processes and one of them FLUSHALLs Redis: run files one at a time.
    fileParallelism: false,
  },
});
