import { deliverWebhook, type Engine } from '@tideway/engine';
import type { WebhookJob } from '@tideway/queue';
import { UnrecoverableError, type Job } from 'bullmq';

/**
 * The control-queue processor: `control.evaluate` judges the abort criteria of every active
 * migration and retries the write failures whose re-drive has not succeeded yet; `webhook.deliver`
 * posts one signed event (a throw makes BullMQ retry with backoff).
 */
export function controlProcessor(engine: Engine, webhookSecret: string | null) {
  return async (job: Job): Promise<unknown> => {
    switch (job.name) {
      case 'control.evaluate': {
        const results = await engine.abortEvaluator.evaluateAll();
        const redriven = await engine.divergence.redriveAllPending();
        return { evaluated: results.length, acted: results.filter((r) => r.acted).map((r) => ({ id: r.migrationId, action: r.acted })), redriven };
      }
      case 'webhook.deliver':
        // Config refuses URLs without a secret; a job enqueued by a differently configured process
        // is never sent unsigned or with a guessable key.
        if (webhookSecret === null) throw new UnrecoverableError('TIDEWAY_WEBHOOK_SECRET is not set in this worker: webhook not sent');
        return { status: await deliverWebhook(job.data as WebhookJob, webhookSecret) };
      default:
        throw new Error(`unknown control job ${job.name}`);
    }
  };
}
