import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../src/api-client.js';
import { ApiError } from '../src/api-error.js';

/** A real HTTP server whose answers the tests choose, recording what it was sent. */
let server: Server;
let base: string;
const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const path = (req.url ?? '').split('?')[0];
      if (path === '/prefix/v1/ok') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
      } else if (path === '/prefix/v1/conflict') {
        res.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'VERSION_CONFLICT', message: 'stale', details: { expected: 1, actual: 2 } } }));
      } else if (path === '/prefix/v1/proxy') {
        res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
      } else if (path === '/prefix/v1/slow') {
        setTimeout(() => res.writeHead(200).end('{}'), 2_000).unref();
      } else {
        res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}/prefix`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe('ApiClient', () => {
  it('sends the token, query and JSON body under the base path, and no body when there is none', async () => {
    const client = new ApiClient({ baseUrl: base, token: 'secret-token-0123456789' });
    expect(await client.get('/v1/ok', { limit: 5, phase: undefined, cursor: 'a b' })).toEqual({ ok: true });
    expect(await client.post('/v1/ok', { reason: 'x' }, { 'idempotency-key': 'k1' })).toEqual({ ok: true });
    expect(await client.post('/v1/ok')).toEqual({ ok: true });
    const [get, post, bare] = seen.slice(-3);
    expect(get).toMatchObject({ method: 'GET', url: '/prefix/v1/ok?limit=5&cursor=a+b', body: '' });
    expect(get?.headers['authorization']).toBe('Bearer secret-token-0123456789');
    expect(post).toMatchObject({ method: 'POST', body: '{"reason":"x"}' });
    expect(post?.headers['content-type']).toBe('application/json');
    expect(post?.headers['idempotency-key']).toBe('k1');
    expect(bare?.body).toBe('');
    expect(bare?.headers['content-type']).toBeUndefined();

    await new ApiClient({ baseUrl: `${base}/`, token: null }).get('/v1/ok');
    expect(seen.at(-1)?.url).toBe('/prefix/v1/ok');
    expect(seen.at(-1)?.headers['authorization']).toBeUndefined();
  });

  it('turns error answers, foreign answers, silence and refusal into ApiError', async () => {
    const client = new ApiClient({ baseUrl: base, token: 't', timeoutMs: 200 });
    const conflict = await failure(client.post('/v1/conflict', {}));
    expect({ status: conflict.status, code: conflict.code, message: conflict.message, details: conflict.details }).toEqual({
      status: 409,
      code: 'VERSION_CONFLICT',
      message: 'stale',
      details: { expected: 1, actual: 2 },
    });

    const proxy = await failure(client.get('/v1/proxy'));
    expect(proxy).toMatchObject({ status: 502, code: 'BAD_RESPONSE', details: { status: 502, contentType: 'text/html', body: '<html>bad gateway</html>' } });

    const slow = await failure(client.get('/v1/slow'));
    expect(slow).toMatchObject({ status: 0, code: 'TIMEOUT', message: expect.stringContaining('within 200 ms') });

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await failure(new ApiClient({ baseUrl: `http://127.0.0.1:${port}`, token: 'secret-token-0123456789' }).get('/v1/ok'));
    expect(refused).toMatchObject({ status: 0, code: 'UNREACHABLE', message: `cannot reach http://127.0.0.1:${port}: ECONNREFUSED` });
    expect(JSON.stringify(refused.details)).not.toContain('secret-token');
  });
});
