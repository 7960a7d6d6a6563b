export { startWorker, type WorkerRuntime } from './worker.js';
export { loadWorkerConfig, ConfigError, type WorkerConfig } from './config.js';
export { backfillChunkProcessor, workProcessor } from './processors/backfill-chunk.js';
