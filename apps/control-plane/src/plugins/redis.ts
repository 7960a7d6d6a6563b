import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import type { ControlPlaneConfig } from '../config.js';

/**
 * The Redis connection (queues, later). It connects lazily and never queues commands while Redis is
 * down, so `/readyz` answers at once instead of hanging.
 */
export const redisPlugin = fp<{ config: ControlPlaneConfig }>(
  async (app: FastifyInstance, { config }) => {
    const redis = new Redis(config.redisUrl, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    redis.on('error', (error) => app.log.debug({ err: error }, 'redis connection error'));
    redis.connect().catch(() => undefined);
    app.decorate('redis', redis);
    app.addHook('onClose', async () => {
      redis.disconnect();
    });
  },
  { name: 'redis' },
);
