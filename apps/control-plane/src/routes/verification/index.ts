import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TidewayError } from '@tideway/core';
import { Type } from 'typebox';
import { IdParamsSchema, PageQuerySchema, PageSchema, errorResponses } from '../schemas.js';

const FindingKind = Type.Enum(['missing', 'extra', 'different'] as const);

const RepairSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  verificationId: Type.String({ format: 'uuid' }),
  actor: Type.String(),
  status: Type.Enum(['running', 'finished', 'failed'] as const, { description: '`running` until the repair ends (a crash leaves it so); `failed` with `error`' }),
  keysAttempted: Type.Integer({ description: 'findings no earlier repair had fixed when this one started' }),
  upserted: Type.Integer({ description: 'target rows re-copied from the source' }),
  deleted: Type.Integer({ description: 'target rows deleted (their source row is gone)' }),
  fixed: Type.Integer({ description: 'keys equal on both sides at the re-check' }),
  stillDifferent: Type.Integer(),
  error: Type.Union([Type.String(), Type.Null()]),
  sampleKeys: Type.Array(Type.Object({ key: Type.Array(Type.String()), kind: FindingKind, outcome: Type.Enum(['fixed', 'still_different'] as const) }), {
    description: 'up to 20 re-checked keys, the still-different first',
  }),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const VerificationSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  migrationId: Type.String({ format: 'uuid' }),
  status: Type.Enum(['running', 'passed', 'failed'] as const, { description: 'what the check found; a repair never changes it' }),
  outcome: Type.Union([Type.Enum(['passed', 'failed', 'repaired'] as const), Type.Null()], {
    description: '`repaired`: it found differences and repairs fixed and re-checked every one; null while running',
  }),
  createdBy: Type.String(),
  rangesTotal: Type.Integer(),
  rangesChecked: Type.Integer(),
  rowsCompared: Type.Integer(),
  missingInTarget: Type.Integer({ description: 'as found (repairs do not change the findings)' }),
  extraInTarget: Type.Integer({ description: 'as found' }),
  different: Type.Integer({ description: 'as found' }),
  repaired: Type.Integer({ description: 'findings a repair fixed and re-checked' }),
  unrepaired: Type.Integer({ description: 'findings no repair has fixed' }),
  sampleKeys: Type.Array(Type.Object({ key: Type.Array(Type.String()), kind: FindingKind, repairedBy: Type.Union([Type.String({ format: 'uuid' }), Type.Null()]) }), {
    description: 'up to 20 findings, unrepaired first',
  }),
  repairs: Type.Array(RepairSchema, { description: 'oldest first' }),
  startedAt: Type.String({ format: 'date-time' }),
  finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const RepairResultSchema = Type.Object({ ...RepairSchema.properties, verification: VerificationSchema });

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
    { schema: { summary: 'A verification, what it found, and its repairs', tags: ['verification'], params: VidParams, response: { 200: VerificationSchema, ...errorResponses } } },
    async (request) => owned(request.params.id, request.params.vid),
  );

  app.post(
    '/v1/migrations/:id/verifications/:vid/repair',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Re-copy the keys the verification found and no repair has fixed, and re-check them; answers the repair record (the verification keeps its findings)',
        tags: ['verification'],
        params: VidParams,
        response: { 200: RepairResultSchema, ...errorResponses },
      },
    },
    async (request) => {
      await owned(request.params.id, request.params.vid);
      return verification.repair(request.params.vid, request.principal?.name ?? 'anonymous');
    },
  );
};
