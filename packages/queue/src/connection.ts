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
 * otherwise) and reconnecting forever with a capped delay.
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

/** Opens the work queue (producer side). Close with `queue.close()`. */
export function openQueue(name: QueueName, options: QueueConnectionOptions, connection?: Redis): Queue {
  return new Queue(name, { connection: connection ?? createRedisConnection(options.redisUrl), prefix: options.prefix });
}

export { QUEUE_NAMES };
