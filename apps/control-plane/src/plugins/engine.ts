import { createDb } from '@tideway/db';
import { BullmqControlQueue, BullmqWorkQueue, createEngine, crashFaults, type EngineOptions } from '@tideway/engine';
import { UnleashFlagControl } from '@tideway/flags';
import { QUEUE_NAMES, createProducerConnection, openQueue } from '@tideway/queue';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { ControlPlaneConfig } from '../config.js';

/** Options of the engine plugin; tests and later features pass hooks and a clock. */
export interface EnginePluginOptions {
  readonly config: ControlPlaneConfig;
  readonly clock?: EngineOptions['clock'];
  readonly configureHooks?: EngineOptions['configureHooks'];
}

/** How long closing waits for the queues, milliseconds (Redis may be down). */
const QUEUE_CLOSE_TIMEOUT_MS = 2_000;

/**
 * Opens the orchestrator database and the work queue and wires the engine; closes them with the
 * app. The queue lets transitions into backfill pump chunks at once (workers' reconcilers would
 * otherwise pick them up within their interval).
 *
 * Bounded waits, so a down dependency is a prompt 503 and never a hung request: the database pool
 * gives up on a connection after `connectionTimeoutMs` (5 s by default; a refused connection fails
 * at once), and the producer connection refuses commands while Redis is down, each queue operation
 * bounded by `QUEUE_TIMEOUT_MS` (2 s). A transition whose only use of Redis is to wake workers
 * still commits (its listeners' queue errors are swallowed; the reconciler re-sends the work).
 */
export const enginePlugin = fp<EnginePluginOptions>(
  async (app: FastifyInstance, options) => {
    const db = createDb({
      connectionString: options.config.databaseUrl,
      max: 10,
      applicationName: 'tideway-control-plane',
      onIdleClientError: (error) => app.log.warn({ err: error }, 'orchestrator database connection error'),
    });
    const producer = createProducerConnection(options.config.redisUrl);
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
    const closeQueue = (q: { close(): Promise<void> }) =>
      Promise.race([q.close().catch(() => undefined), new Promise<void>((resolve) => setTimeout(resolve, QUEUE_CLOSE_TIMEOUT_MS).unref())]);
    app.addHook('onClose', async () => {
      await closeQueue(queue);
      await closeQueue(control);
      producer.disconnect();
      await engine.close();
      await db.destroy();
    });
  },
  { name: 'engine' },
);
