import { SLUG_PATTERN } from '@tideway/core';
import { ROLES } from '@tideway/engine';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errorResponses } from '../schemas.js';

const RoleSchema = Type.Enum(ROLES);
const TokenSchema = Type.Object({
  name: Type.String(),
  role: RoleSchema,
  createdBy: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const toBody = (t: { name: string; role: (typeof ROLES)[number]; createdBy: string; createdAt: Date; lastUsedAt: Date | null; revokedAt: Date | null }) => ({
  name: t.name,
  role: t.role,
  createdBy: t.createdBy,
  createdAt: t.createdAt.toISOString(),
  lastUsedAt: iso(t.lastUsedAt),
  revokedAt: iso(t.revokedAt),
});

/** `/v1/tokens`: API tokens (admin only). The secret is shown once, at creation. */
export const tokenRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { tokens } = app.engine;

  app.post(
    '/v1/tokens',
    {
      // The answer holds the secret, which is never stored, so no Idempotency-Key replay; a retry
      // answers NAME_TAKEN instead of creating a second token.
      config: { access: 'admin', idempotency: false },
      schema: {
        summary: 'Create an API token; the secret is in this answer only',
        tags: ['tokens'],
        body: Type.Object({ name: Type.String({ pattern: SLUG_PATTERN }), role: RoleSchema }, { additionalProperties: false }),
        response: { 201: Type.Intersect([TokenSchema, Type.Object({ token: Type.String() })]), ...errorResponses },
      },
    },
    async (request, reply) => {
      const created = await tokens.create(request.body.name, request.body.role, request.principal?.name ?? 'anonymous');
      return reply.code(201).send({ ...toBody(created), token: created.token });
    },
  );

  app.get(
    '/v1/tokens',
    {
      config: { access: 'admin' },
      schema: { summary: 'List API tokens (never their secrets)', tags: ['tokens'], response: { 200: Type.Object({ items: Type.Array(TokenSchema) }), ...errorResponses } },
    },
    async () => ({ items: (await tokens.list()).map(toBody) }),
  );

  app.post(
    '/v1/tokens/:name/revoke',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'Revoke an API token; it stops working at once',
        tags: ['tokens'],
        params: Type.Object({ name: Type.String({ pattern: SLUG_PATTERN }) }, { additionalProperties: false }),
        response: { 200: TokenSchema, ...errorResponses },
      },
    },
    async (request) => toBody(await tokens.revoke(request.params.name, request.principal?.name ?? 'anonymous')),
  );
};
