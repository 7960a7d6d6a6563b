import { isPhase, isStatus, SPEC_DEFAULTS, type MigrationSpec, type Phase, type Status } from '@tideway/core';
import type { MigrationEventRow, MigrationRow } from '@tideway/db';

/** A migration as the engine works with it. */
export interface Migration {
  readonly id: string;
  readonly seq: number;
  readonly name: string;
  readonly spec: MigrationSpec;
  readonly phase: Phase;
  readonly status: Status;
  readonly version: number;
  readonly phaseEnteredAt: Date;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** One audit event of a migration. `toPhase`/`toStatus` equal `from…` for events that change no state. */
export interface MigrationEvent {
  readonly migrationId: string;
  readonly seq: number;
  readonly actor: string;
  readonly action: string;
  readonly fromPhase: Phase | null;
  readonly fromStatus: Status | null;
  readonly toPhase: Phase | null;
  readonly toStatus: Status | null;
  readonly reason: string | null;
  readonly details: Record<string, unknown>;
  readonly at: Date;
}

/** A stored spec with the defaults of fields added since it was stored (`rollbackAfterWriteCutover`, `throttle.latencyGuard`). */
function withSpecDefaults(spec: MigrationSpec): MigrationSpec {
  const stored = spec as Partial<MigrationSpec> & MigrationSpec;
  let out = stored.rollbackAfterWriteCutover === undefined ? { ...spec, rollbackAfterWriteCutover: true } : spec;
  if ((out.throttle as Partial<typeof out.throttle>).latencyGuard === undefined) out = { ...out, throttle: { ...out.throttle, latencyGuard: SPEC_DEFAULTS.throttle.latencyGuard } };
  return out;
}

/** Maps a `migrations` row to a {@link Migration}. @throws Error on a phase or status outside the model. */
export function toMigration(row: MigrationRow): Migration {
  if (!isPhase(row.phase) || !isStatus(row.status)) throw new Error(`migration ${row.id} has unknown state ${row.phase}/${row.status}`);
  return {
    id: row.id,
    seq: row.seq,
    name: row.name,
    // Fields added to the spec after a migration was stored take their defaults.
    spec: withSpecDefaults(row.spec as MigrationSpec),
    phase: row.phase,
    status: row.status,
    version: row.version,
    phaseEnteredAt: row.phase_entered_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function phaseOrNull(value: string | null): Phase | null {
  return value !== null && isPhase(value) ? value : null;
}
function statusOrNull(value: string | null): Status | null {
  return value !== null && isStatus(value) ? value : null;
}

/** Maps a `migration_events` row to a {@link MigrationEvent}. */
export function toMigrationEvent(row: MigrationEventRow): MigrationEvent {
  return {
    migrationId: row.migration_id,
    seq: row.seq,
    actor: row.actor,
    action: row.action,
    fromPhase: phaseOrNull(row.from_phase),
    fromStatus: statusOrNull(row.from_status),
    toPhase: phaseOrNull(row.to_phase),
    toStatus: statusOrNull(row.to_status),
    reason: row.reason,
    details: row.details,
    at: row.at,
  };
}
