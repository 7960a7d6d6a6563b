import { InvalidSpecError, type SpecProblem } from '@tideway/core';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { MigrationService } from '../migrations/migration-service.js';
import { checkProbeSqlLive, PROBE_SQL_FIELD } from './probe-sql.js';
import { checkPrometheusLive, PROMETHEUS_FIELD } from './prometheus-signal.js';

/**
 * A PATCH of `throttle.latencyGuard.probeSql` or `throttle.latencyGuard.prometheus` after start is
 * checked live like at start (the parser's and the schema's checks already ran with the rest of the
 * spec): a probe that does not bind, or a Prometheus query that gives no number, is a 422 and the
 * PATCH changes nothing. (The guard reads the rest of its options on its next tick; nothing else
 * needs checking.)
 */
export function registerLatencyGuard(deps: { readonly migrations: MigrationService; readonly datasources: DatasourceRegistry }): void {
  deps.migrations.onPatch(async ({ after, changed }) => {
    if (after.phase === 'draft') return;
    const guard = after.spec.throttle.latencyGuard;
    const problems: SpecProblem[] = [];
    const probeSql = guard.probeSql;
    if (probeSql !== null && changed.includes(PROBE_SQL_FIELD)) {
      problems.push(...(await deps.datasources.withClient(after.spec.source.datasource, (client) => checkProbeSqlLive(client, probeSql))));
    }
    if (guard.prometheus !== null && changed.some((c) => c === PROMETHEUS_FIELD || c.startsWith(`${PROMETHEUS_FIELD}.`))) {
      problems.push(...(await checkPrometheusLive(guard.prometheus)));
    }
    if (problems.length > 0) throw new InvalidSpecError(problems);
  });
}
