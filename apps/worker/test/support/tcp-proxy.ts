/**
 * A TCP proxy on 127.0.0.1 in front of a shared server (Unleash), so a test can take the server
 * away from the components it points at the proxy without stopping the server itself. `stop()`
 * closes the listening socket (new connections are refused) and cuts every open one (pooled
 * keep-alive connections included); `start()` listens again on the same port.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export class TcpProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | null = null;
  #port = 0;

  /** @param targetUrl - where connections go, e.g. `http://127.0.0.1:4242` (only host and port are used). */
  constructor(targetUrl: string) {
    const url = new URL(targetUrl);
    this.#target = { host: url.hostname, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
  }

  /** The proxy's base URL (same scheme as an HTTP target). Valid once `start()` resolved. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get running(): boolean {
    return this.#server !== null;
  }

  /** Starts listening (on a free port the first time, on the same port afterwards). Idempotent. */
  async start(): Promise<void> {
    if (this.#server) return;
    const server = net.createServer((client) => {
      const upstream = net.connect(this.#target.port, this.#target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Refuses new connections and cuts the open ones. Idempotent. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }
}
