import { evaluateAbortCriteria, type PhaseHooks } from '@tideway/core';
import type { MigrationContext } from '../migrations/migration-context.js';
import type { DivergenceReadModel } from './divergence-read-model.js';

/**
 * The shadow_read gate `divergence-within-criteria`: the migration has been in shadow_read for at
 * least `shadowRead.minWindowSeconds`, and over that window at least `abortCriteria.minSamples`
 * comparisons were made and no abort criterion is breached (divergence judged on the Wilson upper
 * bound).
 */
export function registerDivergenceGate(hooks: PhaseHooks<MigrationContext>, readModel: DivergenceReadModel): void {
  hooks.addGate('shadow_read', {
    name: 'divergence-within-criteria',
    evaluate: async (ctx) => {
      const { spec } = ctx.migration;
      const now = ctx.clock.now().getTime();
      const inPhaseSeconds = Math.floor((now - ctx.migration.phaseEnteredAt.getTime()) / 1000);
      const windowSeconds = Math.max(60, spec.shadowRead.minWindowSeconds);
      const evidence = await readModel.evidence(ctx.migration.id, windowSeconds);
      const breaches = evaluateAbortCriteria(evidence, spec.abortCriteria, 'gate');
      const enoughTime = inPhaseSeconds >= spec.shadowRead.minWindowSeconds;
      const enoughSamples = evidence.samples >= spec.abortCriteria.minSamples;
      const passed = enoughTime && enoughSamples && breaches.length === 0;
      return {
        name: 'divergence-within-criteria',
        passed,
        message: passed
          ? `${evidence.samples} samples, divergence upper bound ${evidence.window.rateUpper95.toFixed(5)} ≤ ${spec.abortCriteria.maxDivergenceRate}`
          : !enoughTime
            ? `in shadow_read for ${inPhaseSeconds} s of ${spec.shadowRead.minWindowSeconds} s`
            : !enoughSamples
              ? `${evidence.samples} of ${spec.abortCriteria.minSamples} samples`
              : breaches.map((b) => b.message).join('; '),
        observed: {
          samples: evidence.samples,
          mismatches: evidence.mismatches,
          newErrors: evidence.newErrors,
          rateUpper95: Number(evidence.window.rateUpper95.toFixed(6)),
          maxDivergenceRate: spec.abortCriteria.maxDivergenceRate,
          inPhaseSeconds,
          minWindowSeconds: spec.shadowRead.minWindowSeconds,
          breaches: breaches.length,
        },
      };
    },
  });
}
