import type { Engine, Principal, Role } from '@tideway/engine';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';

/** Who may call a route: a role, or `public` for health, metrics and docs. */
export type RouteAccess = Role | 'public';

declare module 'fastify' {
  interface FastifyInstance {
    engine: Engine;
    redis: Redis;
    metrics: Registry;
  }
  interface FastifyRequest {
    /** The authenticated caller; set by the auth plugin on every non-public route. */
    principal: Principal | null;
    /** Set when this request claimed an Idempotency-Key. */
    idempotencyKey: string | null;
  }
  interface FastifyContextConfig {
    /** Required role; routes that omit it need `viewer`. */
    access?: RouteAccess;
    /**
     * `false` makes the route ignore `Idempotency-Key`: its answer holds a secret, which must never
     * be stored for replay. @defaultValue true
     */
    idempotency?: boolean;
  }
}
