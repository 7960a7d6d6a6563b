export {
  QUEUE_NAMES,
  PRIORITIES,
  JOB_CATALOG,
  EVALUATE_SCHEDULER_ID,
  chunkJobId,
  rangeJobId,
  workJobId,
  type WorkJob,
  type WorkJobName,
  type VerificationRangeJob,
  type QueueName,
  type JobName,
  type BackfillChunkJob,
  type EvaluateJob,
  type WebhookJob,
} from './job-catalog.js';
export { createRedisConnection, createProducerConnection, openQueue, type QueueConnectionOptions } from './connection.js';
