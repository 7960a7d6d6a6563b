import { once } from 'node:events';
import { PHASES, STATUSES } from '@tideway/core';
import { unleashTestEnv } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { act, call, createMigration, startHarness, type Harness } from './support/harness.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('operations');
});

afterAll(async () => {
  await h?.close();
});

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the Prometheus text format (one sample a line; HELP/TYPE comments skipped). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] as string] = pair[2] as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

describe('health', () => {
  it('GET /healthz answers 200 without a token', async () => {
    const res = await call(h.app, { method: 'GET', url: '/healthz', token: null });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 with a check per dependency once Redis is connected', async () => {
    if (h.app.redis.status !== 'ready') await once(h.app.redis, 'ready');
    const res = await call(h.app, { method: 'GET', url: '/readyz', token: null });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready', checks: { postgres: { ok: true }, redis: { ok: true } } });
  });

  it('GET /readyz answers 503 DEPENDENCY_UNAVAILABLE naming Redis when it cannot be reached', async () => {
    const app = await buildApp(
      loadConfig({
        TIDEWAY_DATABASE_URL: h.orch.url,
        TIDEWAY_REDIS_URL: 'redis://127.0.0.1:1',
        TIDEWAY_DATASOURCES: JSON.stringify({ main: h.user.url }),
        TIDEWAY_LOG_LEVEL: 'silent',
        ...unleashTestEnv(),
      }),
    );
    try {
      const res = await call(app, { method: 'GET', url: '/readyz', token: null });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('DEPENDENCY_UNAVAILABLE');
      expect(res.body.error.details.unavailable).toEqual(['redis']);
      expect(res.body.error.details.checks.postgres).toEqual({ ok: true });
      expect(res.body.error.details.checks.redis.ok).toBe(false);
      expect(typeof res.body.error.details.checks.redis.error).toBe('string');
    } finally {
      await app.close();
    }
  });
});

describe('GET /metrics', () => {
  it('exposes request latency by route template and migrations by phase and status, with the right counts', async () => {
    // draft/active ×2, prepare/active ×1, prepare/paused ×1, draft/aborted ×1.
    const ids = [];
    for (const name of ['a', 'b', 'c', 'd', 'e']) ids.push((await createMigration(h.app, `metrics-${name}`)).id);
    const [, , c, d, e] = ids as [string, string, string, string, string];
    await act(h.app, c, 'start');
    await act(h.app, d, 'start');
    await act(h.app, d, 'pause');
    await act(h.app, e, 'abort');
    const refused = await call(h.app, { method: 'POST', url: `/v1/migrations/${e}/pause` });
    expect(refused.status).toBe(409);
    expect((await call(h.app, { method: 'GET', url: '/no/such/route' })).status).toBe(404);

    const res = await call(h.app, { method: 'GET', url: '/metrics', token: null });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.text).toContain('# TYPE tideway_http_request_duration_seconds histogram');
    expect(res.text).toContain('# TYPE tideway_migrations gauge');
    const samples = parseMetrics(res.text);

    const migrations = samples.filter((s) => s.name === 'tideway_migrations');
    expect(migrations).toHaveLength(PHASES.length * STATUSES.length);
    const count = (phase: string, status: string) => migrations.find((s) => s.labels['phase'] === phase && s.labels['status'] === status)?.value;
    expect(count('draft', 'active')).toBe(2);
    expect(count('prepare', 'active')).toBe(1);
    expect(count('prepare', 'paused')).toBe(1);
    expect(count('draft', 'aborted')).toBe(1);
    expect(count('done', 'completed')).toBe(0);
    expect(migrations.reduce((sum, s) => sum + s.value, 0)).toBe(5);

    const requests = (method: string, route: string, status: string) =>
      samples.find((s) => s.name === 'tideway_http_request_duration_seconds_count' && s.labels['method'] === method && s.labels['route'] === route && s.labels['status_code'] === status)?.value;
    expect(requests('POST', '/v1/migrations', '201')).toBe(5);
    expect(requests('POST', '/v1/migrations/:id/start', '200')).toBe(2);
    expect(requests('POST', '/v1/migrations/:id/pause', '200')).toBe(1);
    expect(requests('POST', '/v1/migrations/:id/pause', '409')).toBe(1);
    // Raw URLs never become labels: an unknown path is one series, not one per path.
    expect(samples.some((s) => (s.labels['route'] ?? '').includes(e))).toBe(false);
    expect(samples.some((s) => s.labels['route'] === '/no/such/route')).toBe(false);
    const buckets = samples.filter((s) => s.name === 'tideway_http_request_duration_seconds_bucket' && s.labels['route'] === '/v1/migrations' && s.labels['status_code'] === '201');
    expect(buckets.find((s) => s.labels['le'] === '+Inf')?.value).toBe(5);

    // The gauge is read at scrape time: a change shows up in the next scrape.
    await act(h.app, d, 'resume');
    const next = parseMetrics((await call(h.app, { method: 'GET', url: '/metrics', token: null })).text);
    const after = (phase: string, status: string) => next.find((s) => s.name === 'tideway_migrations' && s.labels['phase'] === phase && s.labels['status'] === status)?.value;
    expect(after('prepare', 'active')).toBe(2);
    expect(after('prepare', 'paused')).toBe(0);
  });
});

describe('GET /metrics: the latency guard', () => {
  it("exports each datasource's guard: its pace, its signal, and other clients' throughput held back and now", async () => {
    await h.orch.query(
      `INSERT INTO datasource_paces (datasource, holder, lease_until, mode, pace_rows_per_second, observed_p99_ms, baseline_p99_ms, throughput_baseline_per_second, throughput_observed_per_second)
       VALUES ('main', 'test', now() + interval '1 minute', 'guarding', 4200, 3.5, 2, 5800, 5600)
       ON CONFLICT (datasource) DO UPDATE SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until, mode = EXCLUDED.mode, pace_rows_per_second = EXCLUDED.pace_rows_per_second,
         observed_p99_ms = EXCLUDED.observed_p99_ms, baseline_p99_ms = EXCLUDED.baseline_p99_ms, throughput_baseline_per_second = EXCLUDED.throughput_baseline_per_second, throughput_observed_per_second = EXCLUDED.throughput_observed_per_second`,
    );
    try {
      const samples = parseMetrics((await call(h.app, { method: 'GET', url: '/metrics', token: null })).text);
      const value = (name: string) => samples.find((s) => s.name === name && s.labels['datasource'] === 'main')?.value;
      expect(value('tideway_latency_guard_pace_rows_per_second')).toBe(4200);
      expect(value('tideway_latency_guard_observed_p99_seconds')).toBeCloseTo(0.0035, 6);
      expect(value('tideway_latency_guard_baseline_p99_seconds')).toBeCloseTo(0.002, 6);
      expect(value('tideway_latency_guard_statements_per_second')).toBe(5600);
      expect(value('tideway_latency_guard_baseline_statements_per_second')).toBe(5800);
    } finally {
      await h.orch.query(`DELETE FROM datasource_paces WHERE datasource = 'main'`);
    }
  });
});

describe('API description', () => {
  it('GET /openapi.json answers a coherent OpenAPI 3 document with the /v1 paths', async () => {
    const res = await call(h.app, { method: 'GET', url: '/openapi.json', token: null });

    expect(res.status).toBe(200);
    const doc = res.body as {
      openapi: string;
      info: { title: string; version: string };
      paths: Record<string, Record<string, { responses?: Record<string, unknown>; parameters?: { in: string; name: string; required?: boolean }[]; requestBody?: { content: Record<string, { schema: { required?: string[] } }> } }>>;
      components: { securitySchemes: Record<string, unknown> };
      security: unknown[];
    };
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info).toMatchObject({ title: 'Tideway control plane', version: '0.1.0' });
    expect(doc.components.securitySchemes).toEqual({ bearer: { type: 'http', scheme: 'bearer' } });
    expect(doc.security).toEqual([{ bearer: [] }]);

    const methods = (path: string) => Object.keys(doc.paths[path] ?? {}).sort();
    expect(methods('/v1/migrations')).toEqual(['get', 'post']);
    expect(methods('/v1/migrations/{id}')).toEqual(['get', 'patch']);
    for (const action of ['start', 'advance', 'pause', 'resume', 'abort', 'rollback']) expect(methods(`/v1/migrations/{id}/${action}`)).toEqual(['post']);
    expect(methods('/v1/migrations/{id}/events')).toEqual(['get']);
    expect(methods('/v1/tokens')).toEqual(['get', 'post']);
    expect(methods('/v1/tokens/{name}/revoke')).toEqual(['post']);
    for (const hidden of ['/openapi.json', '/docs', '/docs/']) expect(doc.paths[hidden]).toBeUndefined();

    // Every operation documents its answers, and every path template parameter is declared.
    for (const [path, operations] of Object.entries(doc.paths)) {
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(operations)) {
        expect(Object.keys(op.responses ?? {}).length, `${method} ${path}`).toBeGreaterThan(0);
        for (const name of templated) {
          expect(op.parameters?.find((p) => p.in === 'path' && p.name === name)?.required, `${method} ${path} {${name}}`).toBe(true);
        }
      }
    }
    const createBody = doc.paths['/v1/migrations']?.['post']?.requestBody?.content['application/json']?.schema;
    expect(createBody?.required?.sort()).toEqual(['mapping', 'name', 'source', 'syncMode', 'target']);

    // Every local $ref points at something in the document.
    const refs = [...res.text.matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1] as string);
    for (const ref of refs) {
      let node: unknown = doc;
      for (const part of ref.split('/')) node = (node as Record<string, unknown> | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
      expect(node, ref).toBeDefined();
    }
  });

  it('GET /docs answers the documentation page as HTML without a token', async () => {
    const res = await call(h.app, { method: 'GET', url: '/docs', token: null });

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toContain('<html');
    expect(res.text).toContain('swagger-ui');

    const spec = await call(h.app, { method: 'GET', url: '/docs/json', token: null });
    expect(spec.status).toBe(200);
    expect(Object.keys(spec.body.paths)).toContain('/v1/migrations');
  });
});
