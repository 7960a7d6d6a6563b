import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';

/** An audited mutation not tied to one migration. */
export interface AuditEntry {
  readonly actor: string;
  readonly action: string;
  readonly resourceType: string;
  readonly resourceId: string;
  readonly details?: Record<string, unknown>;
}

/** Appends to `audit_events` (append-only; the database refuses UPDATE and DELETE). */
export class AuditLog {
  /** Records `entry` inside the caller's transaction. */
  async record(trx: Kysely<Database>, entry: AuditEntry): Promise<void> {
    await trx
      .insertInto('audit_events')
      .values({
        actor: entry.actor,
        action: entry.action,
        resource_type: entry.resourceType,
        resource_id: entry.resourceId,
        details: JSON.stringify(entry.details ?? {}),
      })
      .execute();
  }
}
