import { deliverWebhook, type Engine } from '@tideway/engine';
import type { WebhookJob } from '@tideway/queue';
import type { Job } from 'bullmq';

/**
 * The control-queue processor: `control.evaluate` judges the abort criteria of every active
 * migration and retries the write failures whose re-drive has not succeeded yet; `webhook.deliver`
 * posts one signed event (a throw makes BullMQ retry with backoff).
 */
export function controlProcessor(engine: Engine, webhookSecret: string) {
  return async (job: Job): Promise<unknown> => {
    switch (job.name) {
      case 'control.evaluate': {
        const results = await engine.abortEvaluator.evaluateAll();
        const redriven = await engine.divergence.redriveAllPending();
        return { evaluated: results.length, acted: results.filter((r) => r.acted).map((r) => ({ id: r.migrationId, action: r.acted })), redriven };
      }
      case 'webhook.deliver':
        return { status: await deliverWebhook(job.data as WebhookJob, webhookSecret) };
      default:
        throw new Error(`unknown control job ${job.name}`);
    }
  };
}
