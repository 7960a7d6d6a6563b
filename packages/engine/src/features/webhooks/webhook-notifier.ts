import { createHmac } from 'node:crypto';
import { EVALUATE_SCHEDULER_ID, JOB_CATALOG, type WebhookJob } from '@tideway/queue';
import type { Queue } from 'bullmq';
import { systemClock, type Clock } from '../../clock.js';
import { boundedRedis } from '../leases/work-queue.js';

/** Where control work goes (webhook deliveries, the evaluation schedule). */
export interface ControlQueue {
  enqueueWebhook(job: WebhookJob): Promise<void>;
  /** Makes sure `control.evaluate` runs every `everyMs`; idempotent (a FLUSHALL is repaired by calling it again). */
  ensureEvaluateSchedule(everyMs: number): Promise<void>;
}

/** {@link ControlQueue} on a BullMQ queue with the catalog's options; each operation bounded by `boundedRedis` (DependencyUnavailableError naming `redis`). */
export class BullmqControlQueue implements ControlQueue {
  constructor(private readonly queue: Queue) {}

  async enqueueWebhook(job: WebhookJob): Promise<void> {
    await boundedRedis('add webhook.deliver', () => this.queue.add('webhook.deliver', job, JOB_CATALOG['webhook.deliver'].options));
  }

  async ensureEvaluateSchedule(everyMs: number): Promise<void> {
    // Only when missing or changed: upserting an existing scheduler would restart its interval.
    const existing = await boundedRedis('get the evaluation schedule', () => this.queue.getJobScheduler(EVALUATE_SCHEDULER_ID));
    if (existing && Number(existing.every) === everyMs) return;
    await boundedRedis('set the evaluation schedule', () =>
      this.queue.upsertJobScheduler(EVALUATE_SCHEDULER_ID, { every: everyMs }, { name: 'control.evaluate', data: {}, opts: JOB_CATALOG['control.evaluate'].options }),
    );
  }
}

/** The signature header value: `sha256=<hex HMAC-SHA256 of the raw body>` (GitHub's webhook convention). */
export function signWebhook(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** How long one delivery may take, milliseconds. */
export const WEBHOOK_TIMEOUT_MS = 5000;

/**
 * Webhooks: events are queued per configured URL and delivered by a worker as `POST` JSON
 * `{ event, at, ...payload }` with `X-Tideway-Signature` (HMAC-SHA256 of the body), retried with
 * exponential backoff and jitter on any non-2xx answer or network error. `at` is the engine's
 * clock at the moment of the event (so an injected clock stamps its own time).
 */
export class WebhookNotifier {
  constructor(
    private readonly urls: readonly string[],
    private readonly queue: ControlQueue | null,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Queues `event` for every URL; never throws (a notification must not fail the action behind it). */
  async notify(event: string, payload: Record<string, unknown>): Promise<number> {
    if (!this.queue || this.urls.length === 0) return 0;
    let queued = 0;
    for (const url of this.urls) {
      try {
        await this.queue.enqueueWebhook({ url, event, payload: { ...payload, at: this.clock.now().toISOString() } });
        queued++;
      } catch {
        // Redis down: the event is in the audit log; the webhook is lost (documented).
      }
    }
    return queued;
  }
}

/**
 * Delivers one webhook job.
 * @throws Error on a non-2xx answer, a timeout or a network error (the queue retries with backoff).
 */
export async function deliverWebhook(job: WebhookJob, secret: string, fetchImpl: typeof fetch = fetch): Promise<number> {
  const body = JSON.stringify({ event: job.event, ...job.payload });
  const res = await fetchImpl(job.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-tideway-signature': signWebhook(body, secret), 'x-tideway-event': job.event },
    body,
    signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
  });
  if (!res.ok) throw new Error(`webhook ${job.url} answered ${res.status}`);
  return res.status;
}
