import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { FlagReader } from '@tideway/core';
import { flagNames } from '@tideway/core';

/** A migration name unique to this test run: the Unleash server is shared by every run. */
export function uniqueMigrationName(label: string): string {
  return `flags-test-${label}-${randomBytes(5).toString('hex')}`;
}

/** The installation id these tests name their flags with. */
export const TEST_INSTALLATION = 'flagstest';

/** One unique flag name in the `tideway.<installation>.<migration>.<purpose>` scheme. */
export function uniqueFlag(label: string): string {
  return flagNames(TEST_INSTALLATION, uniqueMigrationName(label)).readNew;
}

/** `count` keys, the same for every call (`key-0` … `key-<count-1>`). */
export function keys(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `key-${i}`);
}

/** The keys for which `flag` is on. */
export function keysOn(reader: FlagReader, flag: string, all: readonly string[]): string[] {
  return all.filter((key) => reader.isEnabled(flag, { key }));
}

/** A local HTTP server on 127.0.0.1; `stop()` closes it and every open connection. */
export interface LocalServer {
  readonly url: string;
  stop(): Promise<void>;
}

async function listen(server: http.Server | net.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

/** A tiny reverse proxy to `target`, so a test can make "the flag server" go away. */
export async function startProxy(target: string): Promise<LocalServer> {
  const to = new URL(target);
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const url = await listen(server);
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An HTTP server answering every request with `status` and an Unleash-shaped error body. */
export async function startFixedAnswer(status: number): Promise<LocalServer> {
  const server = http.createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ name: 'TestError', message: `fixed answer ${status}` }));
  });
  const url = await listen(server);
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A TCP server that accepts connections and never answers (a hung flag server). */
export async function startSilent(): Promise<LocalServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const url = await listen(server);
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** An HTTP server that holds every request until `answer(status)`; then answers and closes the connection. */
export interface HeldAnswerServer extends LocalServer {
  /** How many requests arrived so far. */
  readonly received: () => number;
  /** Answers every held request with `status` (Connection: close); resolves when the client hung up. */
  answer(status: number): Promise<void>;
}

export async function startHeldAnswer(): Promise<HeldAnswerServer> {
  const held: http.ServerResponse[] = [];
  let received = 0;
  const server = http.createServer((_req, res) => {
    received++;
    held.push(res);
  });
  const url = await listen(server);
  return {
    url,
    received: () => received,
    answer: async (status) => {
      const responses = held.splice(0);
      await Promise.all(
        responses.map(
          (res) =>
            new Promise<void>((resolve) => {
              res.socket?.once('close', () => resolve());
              res.writeHead(status, { 'content-type': 'application/json', connection: 'close' });
              res.end(JSON.stringify({ message: `held answer ${status}` }));
            }),
        ),
      );
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
