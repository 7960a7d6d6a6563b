import { sharedConfig } from '../../vitest.shared.js';

// The files mostly wait on `tideway` child processes: run three at once (vitest would give a
// 2-core machine one worker). Each file has its own databases and Redis prefix.
export default sharedConfig({ testTimeout: 120_000, maxWorkers: 3, unleash: true });
