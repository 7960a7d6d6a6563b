import { sharedConfig } from '../../vitest.shared.js';

// Backfill tests start worker processes and several time the database's latency: one file at a time.
export default sharedConfig({ testTimeout: 120_000, fileParallelism: false, unleash: true });
