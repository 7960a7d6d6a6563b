import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The end-to-end demo run: started by `npm test` after every other package's tests, beside the model-based test.
    include: ['test/**/*.e2e.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    allowOnly: false,
  },
});
