import { evaluateAbortCriteria, type Breach } from '@tideway/core';
import type { Database } from '@tideway/db';
import type { Kysely } from 'kysely';
import type { DivergenceReadModel } from '../divergence/divergence-read-model.js';
import type { EvidenceWindows } from '../divergence/evidence-windows.js';
import { toMigration, type Migration } from '../migrations/migration.js';
import type { MigrationService } from '../migrations/migration-service.js';
import type { WebhookNotifier } from '../webhooks/webhook-notifier.js';

/** How far back the periodic evaluation looks inside the current evidence window, seconds (the last 5 minutes of buckets). */
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
 * Judges `spec.abortCriteria` on the last 5 minutes of the current evidence window (see
 * `EvidenceWindows`) and, on a breach, runs `abortCriteria.action` automatically (actor
 * `tideway:abort-criteria`; the breaches, the evidence and the window acted on in the audit event)
 * and notifies the webhooks once (`migration.abort_criteria_breached`). The action is a transition,
 * which opens a new, empty window: the same evidence never judges the phase after it, so one breach
 * is acted on once (issue 12 §2). `rollback` goes back exactly one phase.
 */
export class AbortEvaluator {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly migrations: MigrationService,
    private readonly divergence: DivergenceReadModel,
    private readonly webhooks: WebhookNotifier,
    private readonly windows: EvidenceWindows,
  ) {}

  /** Evaluates every active migration in a watched phase. */
  async evaluateAll(): Promise<EvaluationResult[]> {
    const rows = await this.db.selectFrom('migrations').selectAll().where('status', '=', 'active').where('phase', 'in', [...WATCHED_PHASES]).execute();
    const out: EvaluationResult[] = [];
    for (const row of rows) out.push(await this.evaluate(toMigration(row)));
    return out;
  }

  async evaluate(migration: Migration): Promise<EvaluationResult> {
    const [evidence, window] = await Promise.all([this.divergence.evidence(migration.id, EVALUATION_WINDOW_SECONDS), this.windows.current(this.db, migration.id)]);
    const breaches = evaluateAbortCriteria(evidence, migration.spec.abortCriteria);
    if (breaches.length === 0) return { migrationId: migration.id, breaches, acted: null };
    const action = migration.spec.abortCriteria.action;
    const details = {
      breaches: breaches.map((b) => ({ ...b })),
      evidence: { ...evidence.window, failedChunks: evidence.failedChunks },
      evidenceWindow: window ? { id: window.id, openedAt: window.openedAt.toISOString(), reason: window.reason } : null,
    };
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
