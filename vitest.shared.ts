import { defineConfig } from 'vitest/config';

/**
 * The vitest settings every package shares: tests beside the source (`*.test.ts`) and integration
 * tests under `test/`; integration tests talk to real PostgreSQL, Redis and Unleash, so timeouts
 * allow for a loaded 2-core machine; `.only` never passes.
 */
export function sharedConfig(overrides: { testTimeout?: number; hookTimeout?: number; fileParallelism?: boolean; maxWorkers?: number; include?: string[] } = {}) {
  return defineConfig({
    test: {
      include: overrides.include ?? ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 60_000,
      hookTimeout: overrides.hookTimeout ?? overrides.testTimeout ?? 60_000,
      allowOnly: false,
      ...(overrides.fileParallelism === undefined ? {} : { fileParallelism: overrides.fileParallelism }),
      ...(overrides.maxWorkers === undefined ? {} : { maxWorkers: overrides.maxWorkers }),
    },
  });
}
