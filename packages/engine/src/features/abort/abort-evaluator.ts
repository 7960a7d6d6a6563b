import { evaluateAbortCriteria, type Breach } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { DivergenceReadModel } from '../divergence/divergence-read-model.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { MigrationService } from '../migrations/migration-service.js';
import type { WebhookNotifier } from '../webhooks/webhook-notifier.js';

/** Evidence window of the periodic evaluation, seconds (the last 5 minutes of buckets). */
export const EVALUATION_WINDOW_SECONDS = 300;
/** Phases in which abort criteria are watched. */
export const WATCHED_PHASES = ['dual_write', 'backfill', 'shadow_read', 'cutover'] as const;

/** The outcome of one evaluation of one migration. */
export interface EvaluationResult {
  readonly migrationId: string;
  readonly breaches: Breach[];
  /** The action taken (`pause` or `rollback`), or `null`. */
  readonly acted: 'pause' | 'rollback' | null;
}

/**
 * Judges `spec.abortCriteria` on the evidence of the last 5 minutes and, on a breach, runs
 * `abortCriteria.action` automatically (actor `tideway:abort-criteria`, the breaches and the
 * evidence in the audit event) and notifies the webhooks (`migration.abort_criteria_breached`).
 */
export class AbortEvaluator {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly migrations: MigrationService,
    private readonly divergence: DivergenceReadModel,
    private readonly webhooks: WebhookNotifier,
  ) {}

  /** Evaluates every active migration in a watched phase. */
  async evaluateAll(): Promise<EvaluationResult[]> {
    const rows = await this.db.selectFrom('migrations').selectAll().where('status', '=', 'active').where('phase', 'in', [...WATCHED_PHASES]).execute();
    const out: EvaluationResult[] = [];
    for (const row of rows) out.push(await this.evaluate(toMigration(row)));
    return out;
  }

  async evaluate(migration: Migration): Promise<EvaluationResult> {
    const evidence = await this.divergence.evidence(migration.id, EVALUATION_WINDOW_SECONDS);
    const breaches = evaluateAbortCriteria(evidence, migration.spec.abortCriteria);
    if (breaches.length === 0) return { migrationId: migration.id, breaches, acted: null };
    const action = migration.spec.abortCriteria.action;
    const details = { breaches: breaches.map((b) => ({ ...b })), evidence: { ...evidence.window, failedChunks: evidence.failedChunks } };
    try {
      await this.migrations.act(migration.id, action, {
        actor: 'tideway:abort-criteria',
        expectedVersion: migration.version,
        reason: `abort criteria breached: ${breaches.map((b) => b.message).join('; ')}`,
        details,
      });
    } catch {
      // Someone else changed the migration meanwhile (version conflict, paused already): next round judges again.
      return { migrationId: migration.id, breaches, acted: null };
    }
    await this.webhooks.notify('migration.abort_criteria_breached', { migrationId: migration.id, name: migration.name, action, ...details });
    return { migrationId: migration.id, breaches, acted: action };
  }
}
