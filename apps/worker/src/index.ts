export { startWorker, type WorkerRuntime } from './worker.js';
export { loadWorkerConfig, ConfigError, type WorkerConfig } from './config.js';
export { backfillChunkProcessor } from './processors/backfill-chunk.js';
