import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Integration tests talk to real PostgreSQL and Redis; allow for a loaded 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    allowOnly: false,
  },
});
