import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TidewayError } from '@tideway/core';
import { Type } from 'typebox';
import { IdParamsSchema, PageQuerySchema, PageSchema, errorResponses } from '../schemas.js';

const VerificationSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  migrationId: Type.String({ format: 'uuid' }),
  status: Type.Enum(['running', 'passed', 'failed'] as const),
  rangesTotal: Type.Integer(),
  rangesChecked: Type.Integer(),
  rowsCompared: Type.Integer(),
  missingInTarget: Type.Integer(),
  extraInTarget: Type.Integer(),
  different: Type.Integer(),
  repaired: Type.Integer(),
  sampleKeys: Type.Array(Type.Object({ key: Type.Array(Type.String()), kind: Type.Enum(['missing', 'extra', 'different'] as const) })),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const VidParams = Type.Object({ id: Type.String({ format: 'uuid' }), vid: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

/** `/v1/migrations/:id/verifications`: diff mapping(source) against target by checksummed key ranges; repair what it finds. */
export const verificationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { migrations, verification } = app.engine;

  const owned = async (id: string, vid: string) => {
    const view = await verification.view(vid);
    if (view.migrationId !== id) throw new TidewayError('MIGRATION_NOT_FOUND', `verification ${vid} does not belong to migration ${id}`, { verificationId: vid });
    return view;
  };

  app.post(
    '/v1/migrations/:id/verifications',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Start a verification (low-priority, throttled range jobs)',
        tags: ['verification'],
        params: IdParamsSchema,
        response: { 202: VerificationSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { migration } = await migrations.describeLite(request.params.id);
      return reply.code(202).send(await verification.start(migration, request.principal?.name ?? 'anonymous'));
    },
  );

  app.get(
    '/v1/migrations/:id/verifications',
    {
      schema: {
        summary: "A migration's verifications, newest first (keyset pagination)",
        tags: ['verification'],
        params: IdParamsSchema,
        querystring: PageQuerySchema(100, 20),
        response: { 200: PageSchema(VerificationSchema), ...errorResponses },
      },
    },
    async (request) => {
      const { migration } = await migrations.describeLite(request.params.id);
      return verification.list(migration.id, request.query);
    },
  );

  app.get(
    '/v1/migrations/:id/verifications/:vid',
    { schema: { summary: 'A verification and what it found', tags: ['verification'], params: VidParams, response: { 200: VerificationSchema, ...errorResponses } } },
    async (request) => owned(request.params.id, request.params.vid),
  );

  app.post(
    '/v1/migrations/:id/verifications/:vid/repair',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Re-copy the keys the verification found and re-check them',
        tags: ['verification'],
        params: VidParams,
        response: { 200: VerificationSchema, ...errorResponses },
      },
    },
    async (request) => {
      await owned(request.params.id, request.params.vid);
      return verification.repair(request.params.vid);
    },
  );
};
