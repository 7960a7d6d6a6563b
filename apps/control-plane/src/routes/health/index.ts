import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { sql } from 'kysely';
import { Type } from 'typebox';

const READY_TIMEOUT_MS = 1000;

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);
}

/** `/healthz` (process alive), `/readyz` (PostgreSQL and Redis answer), `/metrics` (Prometheus text). No token needed. */
export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/healthz',
    { config: { access: 'public' }, schema: { summary: 'The process is alive', tags: ['health'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  const Check = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });
  app.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        summary: 'PostgreSQL and Redis answer; 503 names the one that does not',
        tags: ['health'],
        response: {
          200: Type.Object({ status: Type.Literal('ready'), checks: Type.Object({ postgres: Check, redis: Check }) }),
          503: Type.Object({
            error: Type.Object({ code: Type.Literal('DEPENDENCY_UNAVAILABLE'), message: Type.String(), details: Type.Object({ unavailable: Type.Array(Type.String()), checks: Type.Object({ postgres: Check, redis: Check }) }) }),
          }),
        },
      },
    },
    async (_request, reply) => {
      const check = async (fn: () => Promise<unknown>) => {
        try {
          await within(fn(), READY_TIMEOUT_MS);
          return { ok: true };
        } catch (error) {
          return { ok: false, error: error instanceof Error ? error.message : 'unavailable' };
        }
      };
      const [postgres, redis] = await Promise.all([check(() => sql`select 1`.execute(app.engine.db)), check(() => app.redis.ping())]);
      const checks = { postgres, redis };
      const unavailable = Object.entries(checks).filter(([, c]) => !c.ok).map(([name]) => name);
      if (unavailable.length === 0) return { status: 'ready' as const, checks };
      return reply.code(503).send({
        error: { code: 'DEPENDENCY_UNAVAILABLE' as const, message: `not ready: ${unavailable.join(', ')} unavailable`, details: { unavailable, checks } },
      });
    },
  );

  app.get('/metrics', { config: { access: 'public' }, schema: { summary: 'Prometheus metrics', tags: ['health'], hide: false } }, async (_request, reply) => {
    const text = await app.metrics.metrics();
    return reply.type(app.metrics.contentType).send(text);
  });
};
