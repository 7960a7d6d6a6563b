import { Queue } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { QUEUE_NAMES, type QueueName } from './job-catalog.js';

/** Where the queues live. */
export interface QueueConnectionOptions {
  /** `redis://host:port`. */
  readonly redisUrl: string;
  /** Key prefix, hash-tagged for Redis Cluster (`{tideway}`) so a queue's keys share a slot. */
  readonly prefix: string;
}

/**
 * An ioredis connection as BullMQ needs it: `maxRetriesPerRequest: null` (a Worker throws at start
 * otherwise) and reconnecting forever with a capped delay (200 ms per try, at most 2 s). Connection
 * errors are swallowed here (ioredis would otherwise report them as unhandled `'error'` events);
 * they surface as failed commands.
 */
export function createRedisConnection(redisUrl: string, extra: RedisOptions = {}): Redis {
  const redis = new Redis(redisUrl, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...extra,
  });
  redis.on('error', () => undefined);
  return redis;
}

/**
 * An ioredis connection for a producer (a `Queue` that adds jobs and reads their state, never a
 * `Worker`): commands fail at once while Redis is unreachable (`enableOfflineQueue: false`) and
 * are retried at most once across a reconnect, so a caller is told instead of waiting for Redis to
 * come back. It still reconnects forever in the background. Callers bound each operation as well
 * (`boundedRedis` in @tideway/engine), which covers the wait for the first connection.
 */
export function createProducerConnection(redisUrl: string, extra: RedisOptions = {}): Redis {
  return createRedisConnection(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, ...extra });
}

/** Opens the work queue (producer side). Close with `queue.close()`. */
export function openQueue(name: QueueName, options: QueueConnectionOptions, connection?: Redis): Queue {
  return new Queue(name, { connection: connection ?? createRedisConnection(options.redisUrl), prefix: options.prefix });
}

export { QUEUE_NAMES };
