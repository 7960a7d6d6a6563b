import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { Clock } from '../../clock.js';
import type { Migration } from './migration.js';

/**
 * What gates and phase actions receive. During a transition `db` is the transition's transaction
 * (the migration row is locked); on reads it is the plain database handle.
 */
export interface MigrationContext {
  readonly migration: Migration;
  readonly db: Kysely<Database>;
  readonly clock: Clock;
  /** Who asked: a token name, or `tideway:<component>` for Tideway's own actions. */
  readonly actor: string;
}
