import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Integration tests talk to the real local Unleash server (started by infra/unleash.mjs, which
    // boots it on first use); allow for its first install and a loaded 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    allowOnly: false,
  },
});
