import { createDb } from '@tideway/db';
import { BullmqControlQueue, BullmqWorkQueue, createEngine, crashFaults, type EngineOptions } from '@tideway/engine';
import { UnleashFlagControl } from '@tideway/flags';
import { QUEUE_NAMES, createRedisConnection, openQueue } from '@tideway/queue';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ControlPlaneConfig } from '../config.js';

/** Options of the engine plugin; tests and later features pass hooks and a clock. */
export interface EnginePluginOptions {
  readonly config: ControlPlaneConfig;
  readonly clock?: EngineOptions['clock'];
  readonly configureHooks?: EngineOptions['configureHooks'];
}

/**
 * Opens the orchestrator database and the work queue and wires the engine; closes them with the
 * app. The queue lets transitions into backfill pump chunks at once (workers' reconcilers would
 * otherwise pick them up within their interval).
 */
export const enginePlugin = fp<EnginePluginOptions>(
  async (app: FastifyInstance, options) => {
    const db = createDb({ connectionString: options.config.databaseUrl, max: 10, applicationName: 'tideway-control-plane' });
    const producer = createRedisConnection(options.config.redisUrl, { lazyConnect: true, enableOfflineQueue: true });
    const queue = openQueue(QUEUE_NAMES.work, { redisUrl: options.config.redisUrl, prefix: options.config.redisPrefix }, producer);
    queue.on('error', (error) => app.log.debug({ err: error }, 'queue error'));
    const control = openQueue(QUEUE_NAMES.control, { redisUrl: options.config.redisUrl, prefix: options.config.redisPrefix }, producer);
    control.on('error', (error) => app.log.debug({ err: error }, 'control queue error'));
    const engine = createEngine({
      db,
      queue: new BullmqWorkQueue(queue),
      controlQueue: new BullmqControlQueue(control),
      webhookUrls: options.config.webhookUrls,
      flags: options.config.unleash ? new UnleashFlagControl(options.config.unleash) : null,
      workerName: 'control-plane',
      datasources: options.config.datasources,
      bootstrapAdminToken: options.config.adminToken,
      installation: options.config.installation,
      faults: crashFaults(options.config.crashPoints),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.configureHooks ? { configureHooks: options.configureHooks } : {}),
    });
    app.decorate('engine', engine);
    app.addHook('onClose', async () => {
      await queue.close().catch(() => undefined);
      await control.close().catch(() => undefined);
      producer.disconnect();
      await engine.close();
      await db.destroy();
    });
  },
  { name: 'engine' },
);
