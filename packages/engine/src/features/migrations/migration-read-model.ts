import { isUuid, type Phase, type Status } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import { toMigration, toMigrationEvent, type Migration, type MigrationEvent } from './migration.js';

/** One page of a keyset-paginated list; `nextCursor` is `null` on the last page. */
export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

/** Filters and paging of {@link MigrationReadModel.list}. */
export interface MigrationListQuery {
  readonly phase?: Phase;
  readonly status?: Status;
  /** Only the migration with this name (names are unique, so at most one). */
  readonly name?: string;
  /** 1–500. @defaultValue 50 */
  readonly limit?: number;
  /** An opaque `nextCursor` from the previous page. */
  readonly cursor?: string;
}

/** Thrown for a cursor Tideway did not issue; the API answers 400. */
export class InvalidCursorError extends Error {}

function encodeCursor(value: number): string {
  return Buffer.from(`v1:${value}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString();
  const match = /^v1:(\d{1,15})$/.exec(text);
  if (!match?.[1]) throw new InvalidCursorError(`cursor "${cursor}" is not valid`);
  return Number(match[1]);
}

/** Reads migrations and their audit log. Lists are keyset-paginated, never OFFSET. */
export class MigrationReadModel {
  constructor(private readonly db: Kysely<Database>) {}

  async get(id: string): Promise<Migration | undefined> {
    if (!isUuid(id)) return undefined;
    const row = await this.db.selectFrom('migrations').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toMigration(row) : undefined;
  }

  /** Migrations, newest first. @throws InvalidCursorError for a cursor not issued here. */
  async list(query: MigrationListQuery): Promise<Page<Migration>> {
    const limit = query.limit ?? 50;
    let q = this.db.selectFrom('migrations').selectAll().orderBy('seq', 'desc').limit(limit + 1);
    if (query.phase) q = q.where('phase', '=', query.phase);
    if (query.status) q = q.where('status', '=', query.status);
    if (query.name !== undefined) q = q.where('name', '=', query.name);
    if (query.cursor !== undefined) q = q.where('seq', '<', decodeCursor(query.cursor));
    const rows = await q.execute();
    const items = rows.slice(0, limit).map(toMigration);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : null };
  }

  /** A migration's audit log, oldest first. @throws InvalidCursorError for a cursor not issued here. */
  async events(id: string, query: { limit?: number; cursor?: string } = {}): Promise<Page<MigrationEvent>> {
    const limit = query.limit ?? 100;
    let q = this.db.selectFrom('migration_events').selectAll().where('migration_id', '=', id).orderBy('seq', 'asc').limit(limit + 1);
    if (query.cursor !== undefined) q = q.where('seq', '>', decodeCursor(query.cursor));
    const rows = await q.execute();
    const items = rows.slice(0, limit).map(toMigrationEvent);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : null };
  }

  /** Every event of a migration, oldest first (for replay). */
  async allEvents(id: string): Promise<MigrationEvent[]> {
    const rows = await this.db.selectFrom('migration_events').selectAll().where('migration_id', '=', id).orderBy('seq', 'asc').execute();
    return rows.map(toMigrationEvent);
  }

  /** How many migrations are in each phase and status (for metrics). */
  async countByState(): Promise<{ phase: string; status: string; count: number }[]> {
    const rows = await this.db
      .selectFrom('migrations')
      .select(['phase', 'status', (eb) => eb.fn.countAll<number>().as('count')])
      .groupBy(['phase', 'status'])
      .execute();
    return rows.map((r) => ({ phase: r.phase, status: r.status, count: Number(r.count) }));
  }
}
