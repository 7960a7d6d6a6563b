import { createHash } from 'node:crypto';
import { TidewayError } from '@tideway/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * `Idempotency-Key` on POSTs: the first request with a key acts and its answer is stored; a retry
 * with the same key (same actor, method, path and body) gets the stored answer with
 * `Idempotency-Replayed: true` and acts no more. A key reused for another request → 422
 * `IDEMPOTENCY_KEY_REUSED`; a retry while the first is still running → 409
 * `IDEMPOTENCY_KEY_IN_PROGRESS`. Answers ≥ 500 are not stored, so a retry after a fault runs again.
 * Routes whose answer holds a secret (`config.idempotency: false`) ignore the header.
 */
export const idempotencyPlugin = fp(
  async (app: FastifyInstance) => {
    app.decorateRequest('idempotencyKey', null);
    app.addHook('preHandler', async (request, reply) => {
      const key = request.headers['idempotency-key'];
      if (request.method !== 'POST' || key === undefined || request.routeOptions.config.idempotency === false) return;
      if (typeof key !== 'string' || !KEY.test(key)) {
        throw new TidewayError('VALIDATION_FAILED', 'Idempotency-Key must be 1–255 visible ASCII characters', { field: 'idempotency-key' });
      }
      const actor = request.principal?.name ?? 'anonymous';
      const path = request.url;
      const hash = createHash('sha256').update(JSON.stringify(request.body ?? null)).digest('hex');
      const claim = await app.engine.idempotency.begin(actor, key, request.method, path, hash);
      switch (claim.kind) {
        case 'claimed':
          request.idempotencyKey = key;
          return;
        case 'replay':
          return reply.code(claim.status).header('idempotency-replayed', 'true').send(claim.body);
        case 'in_progress':
          throw new TidewayError('IDEMPOTENCY_KEY_IN_PROGRESS', 'a request with this Idempotency-Key is still running', { field: 'idempotency-key' });
        case 'mismatch':
          throw new TidewayError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different request', { field: 'idempotency-key' });
      }
    });
    app.addHook('onSend', async (request, reply, payload) => {
      const key = request.idempotencyKey;
      if (key === null) return payload;
      request.idempotencyKey = null;
      const actor = request.principal?.name ?? 'anonymous';
      if (reply.statusCode >= 500) await app.engine.idempotency.release(actor, key);
      else await app.engine.idempotency.complete(actor, key, reply.statusCode, typeof payload === 'string' ? JSON.parse(payload) : null);
      return payload;
    });
  },
  { name: 'idempotency', dependencies: ['engine', 'auth'] },
);
