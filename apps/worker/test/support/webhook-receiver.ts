/**
 * A real local HTTP server that records every webhook POSTed to it (raw body, signature and event
 * headers) and answers 204.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '@tideway/testing';

export interface ReceivedWebhook {
  /** `X-Tideway-Event`. */
  readonly event: string | undefined;
  /** `X-Tideway-Signature`. */
  readonly signature: string | undefined;
  /** The raw body, exactly as signed. */
  readonly body: string;
  readonly json: Record<string, unknown>;
}

export class WebhookReceiver {
  private constructor(
    private readonly server: http.Server,
    /** Where to send webhooks. */
    readonly url: string,
    /** Every webhook received, in arrival order. */
    readonly received: ReceivedWebhook[],
  ) {}

  static async start(): Promise<WebhookReceiver> {
    const received: ReceivedWebhook[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(body) as Record<string, unknown>;
        } catch {
          // Recorded with an empty object: the assertions on it fail.
        }
        received.push({ event: req.headers['x-tideway-event'] as string | undefined, signature: req.headers['x-tideway-signature'] as string | undefined, body, json });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new WebhookReceiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, received);
  }

  /** Webhooks of `event` about migration `migrationId`, in arrival order. */
  of(event: string, migrationId: string): ReceivedWebhook[] {
    return this.received.filter((w) => w.event === event && w.json['migrationId'] === migrationId);
  }

  /** Waits until `count` webhooks of `event` about `migrationId` arrived; returns them. */
  async waitFor(event: string, migrationId: string, count = 1, timeoutMs = 15_000): Promise<ReceivedWebhook[]> {
    return waitFor(`${count} × ${event} for ${migrationId}`, () => {
      const hooks = this.of(event, migrationId);
      return hooks.length >= count ? hooks : null;
    }, timeoutMs, 25);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
