import { PACE_TICK_MS } from '@tideway/core';
import { createDb } from '@tideway/db';
import { BullmqControlQueue, BullmqWorkQueue, createEngine, crashFaults, type Engine } from '@tideway/engine';
import { UnleashFlagControl } from '@tideway/flags';
import { QUEUE_NAMES, createProducerConnection, createRedisConnection, openQueue } from '@tideway/queue';
import { Worker } from 'bullmq';
import type { WorkerConfig } from './config.js';
import { workProcessor } from './processors/backfill-chunk.js';
import { controlProcessor } from './processors/control.js';

/** A running worker: the BullMQ worker on the work queue plus the reconciler timer. */
export interface WorkerRuntime {
  readonly engine: Engine;
  /** Stops taking jobs, lets the running one finish, stops the reconciler, closes connections. */
  close(): Promise<void>;
}

/**
 * Starts a worker: consumes `backfill.chunk` jobs and control jobs (abort-criteria evaluation,
 * webhook delivery) and, every `reconcileIntervalMs`: converges the desired state (sync triggers,
 * flags) of migrations that changed or are due for a drift check, moves what the sync triggers
 * could not apply into the ledger, re-creates from PostgreSQL any work Redis lost, re-asserts the
 * evaluation schedule and fires due timers (ramp holds, cleanup reminders). The reconciler is a
 * plain timer, not a repeatable job, so a FLUSHALL cannot take it away.
 */
export async function startWorker(config: WorkerConfig, log: (msg: string, extra?: unknown) => void = () => undefined): Promise<WorkerRuntime> {
  // Every connection error is an event with a listener or a failed call, never an uncaught
  // exception: pg clients (createPool), ioredis connections (createRedisConnection), BullMQ
  // queues and workers (below). A restart of PostgreSQL or Redis must not end the process.
  const db = createDb({ connectionString: config.databaseUrl, max: 4, applicationName: 'tideway-worker', onIdleClientError: (error) => log('orchestrator connection error', { error: error.message }) });
  // The producer fails commands at once while Redis is down, so a reconcile round is not held up.
  const producer = createProducerConnection(config.redisUrl);
  const queue = openQueue(QUEUE_NAMES.work, { redisUrl: config.redisUrl, prefix: config.redisPrefix }, producer);
  const control = openQueue(QUEUE_NAMES.control, { redisUrl: config.redisUrl, prefix: config.redisPrefix }, producer);
  queue.on('error', (error) => log('work queue error', { error: error.message }));
  control.on('error', (error) => log('control queue error', { error: error.message }));
  const controlQueue = new BullmqControlQueue(control);
  const engine = createEngine({
    db,
    datasources: config.datasources,
    queue: new BullmqWorkQueue(queue),
    controlQueue,
    webhookUrls: config.webhookUrls,
    flags: config.unleash ? new UnleashFlagControl(config.unleash) : null,
    datasourceConcurrency: config.datasourceConcurrency,
    installation: config.installation,
    faults: crashFaults(config.crashPoints),
    ...(config.workerName ? { workerName: config.workerName } : {}),
    log: (msg, extra) => log(msg, extra),
  });
  const worker = new Worker(QUEUE_NAMES.work, workProcessor(engine.backfill, engine.verification), {
    connection: createRedisConnection(config.redisUrl),
    prefix: config.redisPrefix,
    concurrency: config.concurrency,
  });
  const controlWorker = new Worker(QUEUE_NAMES.control, controlProcessor(engine, config.webhookSecret), {
    connection: createRedisConnection(config.redisUrl),
    prefix: config.redisPrefix,
    concurrency: 4,
  });
  controlWorker.on('error', (error) => log('control worker error', { error: error.message }));
  engine.ramp.onWaitChange((notice) =>
    log(notice.waitsFor ? 'ramp step waits for the flag server' : 'ramp step no longer waits for the flag server', {
      migrationId: notice.migrationId,
      name: notice.name,
      since: notice.since.toISOString(),
      reason: notice.reason,
    }),
  );
  worker.on('failed', (job, error) => log('job failed', { job: job?.id, error: error.message }));
  worker.on('error', (error) => log('worker error', { error: error.message }));

  let reconciling = false;
  // Each step on its own: Redis down must not stop leases from being released or timers from
  // firing, nor a datasource down the evaluation schedule.
  const step = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (error) {
      log(`reconcile: ${name} failed`, { error: error instanceof Error ? error.message : String(error) });
    }
  };
  const reconcile = async () => {
    if (reconciling) return;
    reconciling = true;
    try {
      await step('evaluation schedule', () => controlQueue.ensureEvaluateSchedule(config.evaluationIntervalMs));
      await step('desired state', async () => {
        const converged = await engine.desiredState.reconcileAll();
        if (converged.changes.length || converged.failures.length) log('converged', { changes: converged.changes, failures: converged.failures });
      });
      await step('ddl guard', async () => {
        const changed = await engine.ddlGuard.checkAll();
        if (changed) log('ddl detected', { migrations: changed });
      });
      await step('sync failures', async () => {
        const rows = await engine.syncFailures.collectAll();
        if (rows) log('sync failures collected', { rows });
      });
      await step('backfill', async () => {
        const r = await engine.backfill.reconcile();
        if (r.releasedLeases || r.lostJobs) log('reconciled', r);
      });
      await step('verification', async () => {
        await engine.verification.reconcile();
      });
      await step('timers', async () => {
        await engine.timers.fireDue();
      });
    } finally {
      reconciling = false;
    }
  };
  const timer = setInterval(() => void reconcile(), config.reconcileIntervalMs);
  void reconcile();
  // The latency guard ticks on its own timer: its 500 ms beat must not wait for a reconcile round.
  let guarding = false;
  const guardTimer = setInterval(() => {
    if (guarding) return;
    guarding = true;
    engine.latencyGuard
      .tick()
      .catch((error: unknown) => log('latency guard failed', { error: error instanceof Error ? error.message : String(error) }))
      .finally(() => {
        guarding = false;
      });
  }, PACE_TICK_MS);

  return {
    engine,
    close: async () => {
      clearInterval(timer);
      clearInterval(guardTimer);
      await worker.close();
      await controlWorker.close();
      await queue.close();
      await control.close();
      producer.disconnect();
      await engine.close();
      await db.destroy();
    },
  };
}
