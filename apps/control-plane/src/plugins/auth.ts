import { TidewayError } from '@tideway/core';
import { roleAllows } from '@tideway/engine';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

// The scheme name is case-insensitive (RFC 7235 §2.1); the token68 already allows both cases.
const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/i;

/**
 * Bearer-token authentication and role checks. A route declares `config: { access }`: `public`
 * needs nothing, otherwise the token's role must be at least that role (`viewer` by default).
 * No or unknown or revoked token → 401 `UNAUTHENTICATED`; too weak a role → 403 `FORBIDDEN`.
 */
export const authPlugin = fp(
  async (app: FastifyInstance) => {
    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (request) => {
      const access = request.routeOptions.config.access ?? 'viewer';
      if (access === 'public') return;
      const header = request.headers.authorization;
      const match = header ? BEARER.exec(header) : null;
      if (!match?.[1]) throw new TidewayError('UNAUTHENTICATED', 'send Authorization: Bearer <token>', { field: 'authorization' });
      const principal = await app.engine.tokens.authenticate(match[1]);
      if (!principal) throw new TidewayError('UNAUTHENTICATED', 'token is unknown or revoked', { field: 'authorization' });
      if (!roleAllows(principal.role, access)) {
        throw new TidewayError('FORBIDDEN', `this needs role "${access}"; token "${principal.name}" has "${principal.role}"`, {
          required: access,
          role: principal.role,
        });
      }
      request.principal = principal;
    });
  },
  { name: 'auth', dependencies: ['engine'] },
);
