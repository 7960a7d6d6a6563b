import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The vitest settings every package shares: tests beside the source (`*.test.ts`) and integration
 * tests under `test/`; integration tests talk to real PostgreSQL, Redis and Unleash, so timeouts
 * allow for a loaded 2-core machine; `.only` never passes. `unleash: true` runs
 * vitest.unleash-setup.ts first (this checkout's Unleash, its URL in the environment).
 */
export function sharedConfig(
  overrides: { testTimeout?: number; hookTimeout?: number; fileParallelism?: boolean; maxWorkers?: number; include?: string[]; unleash?: boolean } = {},
) {
  return defineConfig({
    test: {
      ...(overrides.unleash ? { globalSetup: [fileURLToPath(new URL('./vitest.unleash-setup.ts', import.meta.url))] } : {}),
      include: overrides.include ?? ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 60_000,
      hookTimeout: overrides.hookTimeout ?? overrides.testTimeout ?? 60_000,
      allowOnly: false,
      ...(overrides.fileParallelism === undefined ? {} : { fileParallelism: overrides.fileParallelism }),
      ...(overrides.maxWorkers === undefined ? {} : { maxWorkers: overrides.maxWorkers }),
    },
  });
}
