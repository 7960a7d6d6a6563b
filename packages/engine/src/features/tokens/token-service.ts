import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NameTakenError, TidewayError } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import type { Clock } from '../../clock.js';
import type { Role } from './roles.js';

/** Who a bearer token says the caller is. */
export interface Principal {
  readonly name: string;
  readonly role: Role;
}

/** A token as listed: never the secret. */
export interface TokenInfo {
  readonly name: string;
  readonly role: Role;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
}

/** The name the `TIDEWAY_ADMIN_TOKEN` bootstrap token acts under in the audit log. */
export const BOOTSTRAP_ADMIN_NAME = 'bootstrap-admin';

/** How often at most `last_used_at` is written per token, milliseconds. */
const LAST_USED_WRITE_INTERVAL_MS = 60_000;

/**
 * How long a successful token lookup is reused without asking PostgreSQL again, milliseconds. A
 * revocation takes effect at once in the process that revoked, and within this time in every other
 * control-plane process. Unknown secrets are never cached.
 */
export const TOKEN_CACHE_TTL_MS = 5_000;
const TOKEN_CACHE_MAX_ENTRIES = 10_000;

function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/**
 * Bearer tokens: created with a random 256-bit secret shown once (`tw_…`), stored as its SHA-256
 * only, compared in constant time, revocable. The bootstrap admin token comes from configuration
 * and is never stored.
 */
export class TokenService {
  readonly #bootstrapHash: Buffer | null;
  readonly #lastUsedWrites = new Map<string, number>();
  readonly #cache = new Map<string, { principal: Principal; expiresAt: number }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditLog,
    private readonly clock: Clock,
    bootstrapAdminToken: string | null,
  ) {
    this.#bootstrapHash = bootstrapAdminToken ? sha256(bootstrapAdminToken) : null;
  }

  /**
   * Creates a token and returns its secret; the secret cannot be read again.
   * @throws NameTakenError when a token of that name exists (revoked ones included).
   */
  async create(name: string, role: Role, actor: string): Promise<TokenInfo & { token: string }> {
    if (name === BOOTSTRAP_ADMIN_NAME) throw new NameTakenError(name, 'token');
    const token = `tw_${randomBytes(32).toString('base64url')}`;
    return this.db.transaction().execute(async (trx) => {
      try {
        const row = await trx
          .insertInto('api_tokens')
          .values({ name, role, secret_sha256: sha256(token), created_by: actor })
          .returningAll()
          .executeTakeFirstOrThrow();
        await this.audit.record(trx, { actor, action: 'token.create', resourceType: 'token', resourceId: name, details: { role } });
        return { ...toInfo(row), token };
      } catch (error) {
        if ((error as { code?: string }).code === '23505') throw new NameTakenError(name, 'token');
        throw error;
      }
    });
  }

  /** Every token, newest first, without secrets. */
  async list(): Promise<TokenInfo[]> {
    const rows = await this.db.selectFrom('api_tokens').selectAll().orderBy('created_at', 'desc').execute();
    return rows.map(toInfo);
  }

  /**
   * Revokes a token: it stops authenticating at once.
   * @throws TidewayError `TOKEN_NOT_FOUND`.
   */
  async revoke(name: string, actor: string): Promise<TokenInfo> {
    const info = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .updateTable('api_tokens')
        .set({ revoked_at: this.clock.now() })
        .where('name', '=', name)
        .where('revoked_at', 'is', null)
        .returningAll()
        .executeTakeFirst();
      if (!row) {
        const exists = await trx.selectFrom('api_tokens').select('revoked_at').where('name', '=', name).executeTakeFirst();
        if (!exists) throw new TidewayError('TOKEN_NOT_FOUND', `token "${name}" does not exist`, { name });
        return toInfo({ ...(await trx.selectFrom('api_tokens').selectAll().where('name', '=', name).executeTakeFirstOrThrow()) });
      }
      await this.audit.record(trx, { actor, action: 'token.revoke', resourceType: 'token', resourceId: name });
      return toInfo(row);
    });
    // After the commit: a lookup racing the revoke cannot re-cache the token from before it.
    this.#forget(name);
    return info;
  }

  /**
   * The principal of a bearer secret, or `null` for an unknown or revoked one. Successful lookups
   * are cached for {@link TOKEN_CACHE_TTL_MS}.
   */
  async authenticate(secret: string): Promise<Principal | null> {
    const hash = sha256(secret);
    if (this.#bootstrapHash && timingSafeEqual(hash, this.#bootstrapHash)) return { name: BOOTSTRAP_ADMIN_NAME, role: 'admin' };
    // The key is the SHA-256 of the secret: an attacker cannot steer lookups without the secret.
    const key = hash.toString('hex');
    const now = Date.now();
    const cached = this.#cache.get(key);
    if (cached && cached.expiresAt > now) {
      this.#touch(cached.principal.name);
      return cached.principal;
    }
    this.#cache.delete(key);
    const row = await this.db
      .selectFrom('api_tokens')
      .select(['name', 'role', 'secret_sha256'])
      .where('secret_sha256', '=', hash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (!row || row.secret_sha256.length !== hash.length || !timingSafeEqual(row.secret_sha256, hash)) return null;
    this.#touch(row.name);
    const principal: Principal = { name: row.name, role: row.role as Role };
    if (this.#cache.size >= TOKEN_CACHE_MAX_ENTRIES) this.#cache.clear();
    this.#cache.set(key, { principal, expiresAt: now + TOKEN_CACHE_TTL_MS });
    return principal;
  }

  #forget(name: string): void {
    for (const [key, entry] of this.#cache) if (entry.principal.name === name) this.#cache.delete(key);
  }

  /** Writes `last_used_at` at most once a minute per token, off the request path. */
  #touch(name: string): void {
    const now = this.clock.now();
    const last = this.#lastUsedWrites.get(name) ?? 0;
    if (now.getTime() - last < LAST_USED_WRITE_INTERVAL_MS) return;
    this.#lastUsedWrites.set(name, now.getTime());
    this.db.updateTable('api_tokens').set({ last_used_at: now }).where('name', '=', name).execute().catch(() => {
      this.#lastUsedWrites.delete(name);
    });
  }
}

function toInfo(row: { name: string; role: string; created_by: string; created_at: Date; last_used_at: Date | null; revoked_at: Date | null }): TokenInfo {
  return {
    name: row.name,
    role: row.role as Role,
    createdBy: row.created_by,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}
