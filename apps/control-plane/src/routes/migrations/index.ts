import { MigrationSpecInputSchema, MigrationSpecPatchSchema, OPERATOR_ACTIONS, SlugSchema } from '@tideway/core';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  ActionBodySchema,
  ChunkSchema,
  KeyValuesSchema,
  PageQuerySchema,
  PageSchema,
  IdParamsSchema,
  MigrationEventSchema,
  MigrationResourceSchema,
  PhaseSchema,
  SkippedRowSchema,
  StatusSchema,
  errorResponses,
  toResource,
} from '../schemas.js';

const actor = (name: string | undefined) => name ?? 'anonymous';

/** `/v1/migrations`: create, list, read, act, patch, and the audit log. Handlers call engine services only. */
export const migrationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { migrations, migrationReadModel } = app.engine;

  app.post(
    '/v1/migrations',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Create a migration in draft from a spec',
        tags: ['migrations'],
        body: MigrationSpecInputSchema,
        response: { 201: MigrationResourceSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const created = await migrations.create(request.body, { actor: actor(request.principal?.name) });
      return reply.code(201).send(toResource(await migrations.view(created)));
    },
  );

  app.get(
    '/v1/migrations',
    {
      schema: {
        summary: 'List migrations, newest first (keyset pagination); `name` finds one by its name',
        tags: ['migrations'],
        querystring: PageQuerySchema(500, 50, { phase: Type.Optional(PhaseSchema), status: Type.Optional(StatusSchema), name: Type.Optional(SlugSchema) }),
        response: { 200: PageSchema(MigrationResourceSchema), ...errorResponses },
      },
    },
    async (request) => {
      const page = await migrationReadModel.list(request.query);
      const items = await Promise.all(page.items.map((m) => migrations.view(m)));
      return { items: items.map(toResource), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/v1/migrations/:id',
    {
      schema: {
        summary: 'A migration with its progress and the gates of its current phase',
        tags: ['migrations'],
        params: IdParamsSchema,
        response: { 200: MigrationResourceSchema, ...errorResponses },
      },
    },
    async (request) => toResource(await migrations.describe(request.params.id)),
  );

  app.patch(
    '/v1/migrations/:id',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Change tunable parts of the spec (batch size, rate, thresholds, ramp…)',
        tags: ['migrations'],
        params: IdParamsSchema,
        body: Type.Object(
          {
            spec: MigrationSpecPatchSchema,
            expectedVersion: Type.Optional(Type.Integer({ minimum: 1 })),
            reason: Type.Optional(Type.String({ maxLength: 2000 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: MigrationResourceSchema, ...errorResponses },
      },
    },
    async (request) => {
      const updated = await migrations.patch(request.params.id, request.body.spec, {
        actor: actor(request.principal?.name),
        // The auth hook set the principal (operator or admin); admin-only fields are checked in the engine.
        role: request.principal?.role ?? 'viewer',
        expectedVersion: request.body.expectedVersion,
        reason: request.body.reason,
      });
      return toResource(await migrations.view(updated));
    },
  );

  for (const action of OPERATOR_ACTIONS) {
    app.post(
      `/v1/migrations/:id/${action}`,
      {
        config: { access: 'operator' },
        // The body is optional: a bare POST means "no expected version, no reason".
        preValidation: async (request) => {
          request.body ??= {};
        },
        schema: {
          summary: `${action} the migration`,
          tags: ['migrations'],
          params: IdParamsSchema,
          body: ActionBodySchema,
          response: { 200: MigrationResourceSchema, ...errorResponses },
        },
      },
      async (request) => {
        const updated = await migrations.act(request.params.id, action, {
          actor: actor(request.principal?.name),
          expectedVersion: request.body.expectedVersion,
          reason: request.body.reason,
        });
        return toResource(await migrations.view(updated));
      },
    );
  }

  app.post(
    '/v1/migrations/:id/redrive',
    {
      config: { access: 'operator' },
      schema: {
        summary: 'Re-copy source keys now (keys whose new-side write failed under application sync)',
        tags: ['backfill'],
        params: IdParamsSchema,
        body: Type.Object(
          {
            keys: Type.Array(Type.Array(Type.String({ maxLength: 1000 }), { minItems: 1, maxItems: 16 }), {
              minItems: 1,
              maxItems: 1000,
              description: 'source key values as text, in spec.source.key order',
            }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ upserted: Type.Integer(), deleted: Type.Integer() }), ...errorResponses },
      },
    },
    async (request) => {
      const view = await migrations.describe(request.params.id);
      return app.engine.backfill.redrive(view.migration, request.body.keys);
    },
  );

  app.get(
    '/v1/migrations/:id/skipped-rows',
    {
      schema: {
        summary: 'Source rows the backfill left out because of their data (a cast, a constraint), with the error; the backfill gate waits for each to be re-driven or accepted',
        tags: ['backfill'],
        params: IdParamsSchema,
        querystring: PageQuerySchema(1000, 100, { unresolved: Type.Optional(Type.Boolean({ description: 'only rows not re-driven or accepted yet' })) }),
        response: { 200: PageSchema(SkippedRowSchema), ...errorResponses },
      },
    },
    async (request) => {
      await migrations.describe(request.params.id);
      return app.engine.backfillReadModel.skippedRows(request.params.id, request.query);
    },
  );

  app.post(
    '/v1/migrations/:id/skipped-rows/redrive',
    {
      config: { access: 'operator' },
      preValidation: async (request) => {
        request.body ??= {};
      },
      schema: {
        summary: 'Copy the skipped rows again, after their data or the target was fixed; those that copy are resolved',
        tags: ['backfill'],
        params: IdParamsSchema,
        body: Type.Object({ keys: Type.Optional(Type.Array(KeyValuesSchema, { minItems: 1, maxItems: 1000, description: 'default: every unresolved skipped row' })) }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            redriven: Type.Array(Type.Array(Type.String())),
            stillFailing: Type.Array(Type.Object({ key: Type.Array(Type.String()), error: Type.String() })),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const view = await migrations.describe(request.params.id);
      const r = await app.engine.backfill.redriveSkippedRows(view.migration, actor(request.principal?.name), request.body.keys);
      return { redriven: r.redriven.map((k) => [...k]), stillFailing: r.stillFailing.map((f) => ({ key: [...f.key], error: f.error })) };
    },
  );

  app.post(
    '/v1/migrations/:id/skipped-rows/accept',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Accept skipped rows: they stay out of the target on purpose and the backfill gate stops waiting for them (audited with the reason)',
        tags: ['backfill'],
        params: IdParamsSchema,
        body: Type.Object(
          {
            reason: Type.String({ minLength: 1, maxLength: 2000, description: 'recorded in the audit log' }),
            keys: Type.Optional(Type.Array(KeyValuesSchema, { minItems: 1, maxItems: 1000, description: 'default: every unresolved skipped row' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ accepted: Type.Array(Type.Array(Type.String())) }), ...errorResponses },
      },
    },
    async (request) => {
      const view = await migrations.describe(request.params.id);
      const accepted = await app.engine.backfill.acceptSkippedRows(view.migration, { actor: actor(request.principal?.name), reason: request.body.reason, keys: request.body.keys });
      return { accepted: accepted.map((k) => [...k]) };
    },
  );

  app.get(
    '/v1/migrations/:id/chunks',
    {
      schema: {
        summary: 'Backfill chunks of a migration in key order (keyset pagination)',
        tags: ['backfill'],
        params: IdParamsSchema,
        querystring: PageQuerySchema(1000, 100, { status: Type.Optional(Type.Enum(['pending', 'running', 'done', 'failed', 'split', 'skipped'] as const)) }),
        response: { 200: PageSchema(ChunkSchema), ...errorResponses },
      },
    },
    async (request) => {
      await migrations.describe(request.params.id);
      return app.engine.backfillReadModel.chunks(request.params.id, request.query);
    },
  );

  app.get(
    '/v1/migrations/:id/events',
    {
      schema: {
        summary: 'The audit log of a migration, oldest first',
        tags: ['migrations'],
        params: IdParamsSchema,
        querystring: PageQuerySchema(1000, 100),
        response: { 200: PageSchema(MigrationEventSchema), ...errorResponses },
      },
    },
    async (request) => {
      await migrations.describe(request.params.id);
      const page = await migrationReadModel.events(request.params.id, request.query);
      return { items: page.items.map((e) => ({ ...e, at: e.at.toISOString() })), nextCursor: page.nextCursor };
    },
  );
};
