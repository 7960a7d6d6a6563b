import { evaluateAbortCriteria, type PhaseHooks } from '@tideway/core';
import type { MigrationContext } from '../migrations/migration-context.js';
import type { DivergenceReadModel } from './divergence-read-model.js';
import type { EvidenceWindows } from './evidence-windows.js';

/**
 * The shadow_read gate `divergence-within-criteria`, judged on the current evidence window only
 * (opened by the last transition, see `EvidenceWindows`): the window is at least
 * `shadowRead.minWindowSeconds` old, holds at least `abortCriteria.minSamples` comparisons, and no
 * abort criterion is breached on its evidence (divergence judged on the Wilson upper bound).
 */
export function registerDivergenceGate(hooks: PhaseHooks<MigrationContext>, readModel: DivergenceReadModel, windows: EvidenceWindows): void {
  hooks.addGate('shadow_read', {
    name: 'divergence-within-criteria',
    evaluate: async (ctx) => {
      const { spec } = ctx.migration;
      const now = ctx.clock.now().getTime();
      const [window, evidence] = await Promise.all([windows.current(ctx.db, ctx.migration.id), readModel.evidence(ctx.migration.id, null)]);
      const opened = window?.openedAt ?? ctx.migration.phaseEnteredAt;
      const inWindowSeconds = Math.max(0, Math.floor((now - opened.getTime()) / 1000));
      const breaches = evaluateAbortCriteria(evidence, spec.abortCriteria, 'gate');
      const enoughTime = inWindowSeconds >= spec.shadowRead.minWindowSeconds;
      const enoughSamples = evidence.samples >= spec.abortCriteria.minSamples;
      const passed = enoughTime && enoughSamples && breaches.length === 0;
      return {
        name: 'divergence-within-criteria',
        passed,
        message: passed
          ? `${evidence.samples} samples in this evidence window, divergence upper bound ${evidence.window.rateUpper95.toFixed(5)} ≤ ${spec.abortCriteria.maxDivergenceRate}`
          : !enoughTime
            ? `evidence window open for ${inWindowSeconds} s of ${spec.shadowRead.minWindowSeconds} s`
            : !enoughSamples
              ? `${evidence.samples} of ${spec.abortCriteria.minSamples} samples in this evidence window`
              : breaches.map((b) => b.message).join('; '),
        observed: {
          samples: evidence.samples,
          mismatches: evidence.mismatches,
          newErrors: evidence.newErrors,
          rateUpper95: Number(evidence.window.rateUpper95.toFixed(6)),
          maxDivergenceRate: spec.abortCriteria.maxDivergenceRate,
          evidenceWindow: window?.id ?? 0,
          windowOpenedAt: opened.toISOString(),
          inWindowSeconds,
          minWindowSeconds: spec.shadowRead.minWindowSeconds,
          breaches: breaches.length,
        },
      };
    },
  });
}
