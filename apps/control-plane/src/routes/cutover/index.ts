import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GateSchema, IdParamsSchema, errorResponses } from '../schemas.js';

/** What a ramp waits for (see RampView.waitsFor in @tideway/engine). */
const WaitsForSchema = Type.Union([
  Type.Enum(['hold', 'approval', 'flag-server', 'round-trip', 'samples', 'divergence', 'new-errors', 'latency', 'dual-write-failures', 'failed-chunks'] as const, {
    description: 'hold: the step is held; approval: an operator must approve; flag-server: the hold ended and the step waits for the flag server to answer; round-trip: the write cutover waits for the way back to give old rows back unchanged; the others: what the evidence of the step still lacks',
  }),
  Type.Null(),
]);

const RampSchema = Type.Object({
  step: Type.Integer({ description: 'index into spec.ramp.steps; -1 before the first' }),
  percent: Type.Number(),
  status: Type.Enum(['holding', 'awaiting_approval', 'write_cutover', 'rolled_back'] as const),
  waitsFor: WaitsForSchema,
  waiting: Type.Union([Type.Object({ since: Type.String({ format: 'date-time' }), reason: Type.String() }), Type.Null()], {
    description: 'since when the due step waits for the flag server (and its last error) or for evidence (and what it lacks)',
  }),
  nextAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  writeCutoverAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  reverseSync: Type.Boolean(),
  history: Type.Array(Type.Object({ step: Type.Integer(), percent: Type.Number(), at: Type.String(), event: Type.String() })),
});

const CleanupSchema = Type.Object({
  migrationId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  phase: Type.String(),
  status: Type.String(),
  deadline: Type.String({ format: 'date-time' }),
  overdue: Type.Boolean(),
  overdueSince: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  autoExecute: Type.Boolean(),
  executedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  archivedTable: Type.Union([Type.String(), Type.Null()]),
  remindersSent: Type.Array(Type.Object({ kind: Type.String(), at: Type.String() })),
});

/** The read ramp (approve, dry-run) and cleanup deadlines. */
export const cutoverRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { migrations, ramp, cleanup } = app.engine;

  app.post(
    '/v1/migrations/:id/ramp/approve',
    {
      config: { access: 'operator' },
      schema: { summary: 'Approve the next ramp step (spec.ramp.requireApproval)', tags: ['cutover'], params: IdParamsSchema, response: { 200: RampSchema, ...errorResponses } },
    },
    async (request) => {
      const { migration } = await migrations.describeLite(request.params.id);
      return ramp.approve(migration, request.principal?.name ?? 'anonymous');
    },
  );

  app.post(
    '/v1/migrations/:id/cutover/dry-run',
    {
      schema: {
        summary: 'What the next cutover step would change and which gates pass or fail, with their numbers; changes nothing',
        tags: ['cutover'],
        params: IdParamsSchema,
        response: {
          200: Type.Object({
            current: Type.Union([Type.Object({ step: Type.Integer(), percent: Type.Number(), status: Type.String() }), Type.Null()]),
            next: Type.Object({ kind: Type.String(), step: Type.Optional(Type.Integer()), percent: Type.Optional(Type.Number()), reason: Type.Optional(Type.String()) }),
            waitsFor: WaitsForSchema,
            waiting: Type.Union([Type.Object({ since: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]), reason: Type.String() }), Type.Null()]),
            nextAt: Type.Union([Type.String(), Type.Null()]),
            gates: Type.Array(GateSchema),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const view = await migrations.describe(request.params.id);
      return ramp.dryRun(view.migration, view.gates);
    },
  );

  app.get(
    '/v1/cleanups',
    { schema: { summary: 'Upcoming and overdue cleanup deadlines across migrations', tags: ['cleanup'], response: { 200: Type.Object({ items: Type.Array(CleanupSchema) }), ...errorResponses } } },
    async () => ({ items: await cleanup.list() }),
  );
};
