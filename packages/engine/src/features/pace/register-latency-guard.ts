import { InvalidSpecError } from '@tideway/core';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import type { MigrationService } from '../migrations/migration-service.js';
import { checkProbeSqlLive, PROBE_SQL_FIELD } from './probe-sql.js';

/**
 * A PATCH of `throttle.latencyGuard.probeSql` after start is bound against the live catalog like
 * at start (the parser's check already ran with the rest of the spec): a probe that does not bind
 * is a 422 and the PATCH changes nothing. (The guard reads the rest of its options on its next
 * tick; nothing else needs checking.)
 */
export function registerLatencyGuard(deps: { readonly migrations: MigrationService; readonly datasources: DatasourceRegistry }): void {
  deps.migrations.onPatch(async ({ after, changed }) => {
    if (after.phase === 'draft' || !changed.includes(PROBE_SQL_FIELD)) return;
    const probeSql = after.spec.throttle.latencyGuard.probeSql;
    if (probeSql === null) return;
    const problems = await deps.datasources.withClient(after.spec.source.datasource, (client) => checkProbeSqlLive(client, probeSql));
    if (problems.length > 0) throw new InvalidSpecError(problems);
  });
}
