import { sharedConfig } from '../../vitest.shared.js';

// Backfill tests start worker processes and one of them FLUSHALLs Redis: one file at a time.
export default sharedConfig({ testTimeout: 120_000, fileParallelism: false, unleash: true });
