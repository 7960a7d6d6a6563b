import type { Database } from '@tideway/db';
import { sql, type Kysely } from 'kysely';

/** What {@link IdempotencyStore.begin} found for a key. */
export type IdempotencyClaim =
  /** First use: the caller runs the request and then calls `complete` or `release`. */
  | { readonly kind: 'claimed' }
  /** Already answered: send this answer again, do nothing else. */
  | { readonly kind: 'replay'; readonly status: number; readonly body: unknown }
  /** Another request with this key is running now. */
  | { readonly kind: 'in_progress' }
  /** The key was used for a different request (method, path or body differ). */
  | { readonly kind: 'mismatch' };

/** Keys older than this are forgotten and may be used again, hours. */
export const IDEMPOTENCY_TTL_HOURS = 24;

/**
 * `Idempotency-Key` support for POSTs, after Stripe's design and the IETF httpapi draft
 * "The Idempotency-Key HTTP Header Field": the first request with a key claims it (a row insert,
 * so concurrent duplicates cannot both run), its answer is stored, and a retry with the same key
 * and the same request gets that answer back without acting again. Keys are scoped per actor.
 * 5xx answers are not stored (`release`), so a retry after a server fault runs again.
 */
export class IdempotencyStore {
  constructor(private readonly db: Kysely<Database>) {}

  async begin(actor: string, key: string, method: string, path: string, requestSha256: string): Promise<IdempotencyClaim> {
    // Forget an expired use of the key first, so it can be claimed again.
    await this.db
      .deleteFrom('idempotency_keys')
      .where('actor', '=', actor)
      .where('key', '=', key)
      .where('created_at', '<', sql<Date>`now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})`)
      .execute();
    const inserted = await this.db
      .insertInto('idempotency_keys')
      .values({ actor, key, method, path, request_sha256: requestSha256, state: 'in_progress' })
      .onConflict((oc) => oc.columns(['actor', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();
    if (inserted) return { kind: 'claimed' };
    const row = await this.db
      .selectFrom('idempotency_keys')
      .selectAll()
      .where('actor', '=', actor)
      .where('key', '=', key)
      .executeTakeFirst();
    if (!row) return this.begin(actor, key, method, path, requestSha256);
    if (row.method !== method || row.path !== path || row.request_sha256 !== requestSha256) return { kind: 'mismatch' };
    if (row.state === 'in_progress' || row.response_status === null) return { kind: 'in_progress' };
    return { kind: 'replay', status: row.response_status, body: row.response_body };
  }

  /** Stores the answer of a claimed key. */
  async complete(actor: string, key: string, status: number, body: unknown): Promise<void> {
    await this.db
      .updateTable('idempotency_keys')
      .set({ state: 'done', response_status: status, response_body: JSON.stringify(body ?? null), completed_at: sql`now()` })
      .where('actor', '=', actor)
      .where('key', '=', key)
      .execute();
  }

  /** Gives a claimed key up (the request failed on the server side); a retry runs again. */
  async release(actor: string, key: string): Promise<void> {
    await this.db.deleteFrom('idempotency_keys').where('actor', '=', actor).where('key', '=', key).where('state', '=', 'in_progress').execute();
  }
}
