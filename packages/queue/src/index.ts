export { QUEUE_NAMES, PRIORITIES, JOB_CATALOG, chunkJobId, type QueueName, type JobName, type BackfillChunkJob } from './job-catalog.js';
export { createRedisConnection, openQueue, type QueueConnectionOptions } from './connection.js';
