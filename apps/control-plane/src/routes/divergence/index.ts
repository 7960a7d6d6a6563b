import { DualWriteReportSchema, ShadowResultBatchSchema } from '@tideway/core';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CursorSchema, IdParamsSchema, errorResponses } from '../schemas.js';

const WINDOW_SECONDS = 300;

const WindowSchema = Type.Object({
  samples: Type.Integer(),
  mismatches: Type.Integer(),
  errors: Type.Integer(),
  rate: Type.Number(),
  rateUpper95: Type.Number({ description: 'Wilson score upper bound (95 %) of the mismatch rate' }),
  oldP99Ms: Type.Union([Type.Number(), Type.Null()]),
  newP99Ms: Type.Union([Type.Number(), Type.Null()]),
  dualWrites: Type.Integer(),
  dualWriteFailures: Type.Integer(),
  dropped: Type.Integer(),
});

const ItemSchema = Type.Object({
  key: Type.String(),
  kind: Type.Enum(['mismatch', 'new_error', 'dual_write_failure', 'old_write_failure'] as const),
  firstSeen: Type.String({ format: 'date-time' }),
  lastSeen: Type.String({ format: 'date-time' }),
  count: Type.Integer(),
  diffPaths: Type.Array(Type.String()),
  sampleOld: Type.Unknown(),
  sampleNew: Type.Unknown(),
  error: Type.Union([Type.String(), Type.Null()]),
  redrivenAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

/** Shadow results and dual-write reports in (from the SDK); divergences out. */
export const divergenceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { migrations, divergence, divergenceReadModel } = app.engine;

  app.post(
    '/v1/migrations/:id/shadow-results',
    {
      config: { access: 'operator', idempotency: false },
      schema: {
        summary: 'Record a batch of up to 1,000 shadow-read results',
        tags: ['divergence'],
        params: IdParamsSchema,
        body: ShadowResultBatchSchema,
        response: { 202: Type.Object({ recorded: Type.Integer() }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { migration } = await migrations.describeLite(request.params.id);
      return reply.code(202).send(await divergence.recordShadowResults(migration, request.body));
    },
  );

  app.post(
    '/v1/migrations/:id/dual-write-reports',
    {
      config: { access: 'operator', idempotency: false },
      schema: {
        summary: 'Record dual writes and re-drive the keys whose best-effort write failed (new side: old → new; old side after write cutover: new → old)',
        tags: ['divergence'],
        params: IdParamsSchema,
        body: DualWriteReportSchema,
        response: { 202: Type.Object({ failures: Type.Integer(), redriven: Type.Integer() }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { migration } = await migrations.describeLite(request.params.id);
      return reply.code(202).send(await divergence.recordDualWrites(migration, request.body));
    },
  );

  app.get(
    '/v1/migrations/:id/divergences',
    {
      schema: {
        summary: 'Divergence totals, rate with Wilson upper bound, the last 5 minutes, and the ledger of diverging keys',
        tags: ['divergence'],
        params: IdParamsSchema,
        querystring: Type.Object(
          {
            kind: Type.Optional(Type.Enum(['mismatch', 'new_error', 'dual_write_failure', 'old_write_failure'] as const)),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
            cursor: Type.Optional(CursorSchema),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            totals: Type.Object({ samples: Type.Integer(), mismatches: Type.Integer(), errors: Type.Integer() }),
            rate: Type.Number(),
            rateUpper95: Type.Number(),
            all: WindowSchema,
            window5m: WindowSchema,
            items: Type.Array(ItemSchema),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { migration } = await migrations.describeLite(request.params.id);
      const [all, window5m, page] = await Promise.all([
        divergenceReadModel.window(migration.id, null),
        divergenceReadModel.window(migration.id, WINDOW_SECONDS),
        divergenceReadModel.ledger(migration.id, request.query),
      ]);
      return {
        totals: { samples: all.samples, mismatches: all.mismatches, errors: all.errors },
        rate: all.rate,
        rateUpper95: all.rateUpper95,
        all,
        window5m,
        items: page.items,
        nextCursor: page.nextCursor,
      };
    },
  );
};
