import type { HealthReading } from '@tideway/core';
import type { DatasourceRegistry } from '../datasources/datasource-registry.js';
import { TIDEWAY_SQL_MARK } from '../pace/statement-latency.js';

/*
 * Reads a datasource's health. Inputs: none (pg_stat_replication, pg_stat_activity, max_connections).
 * Lock waiters and the oldest transaction count only sessions of the datasource's own database
 * (`datname = current_database()`): pg_stat_activity lists every database of the server, and
 * another team's idle-in-transaction session neither blocks this backfill's locks nor holds back
 * its end-of-backfill wait (ADR 005 waits on transactions of this database only). Connections stay
 * server-wide, as `max_connections` is; replication lag is the whole server's by nature.
 * Tideway's own sessions (application_name 'tideway…') are left out of the oldest-transaction age,
 * or a running chunk would throttle the next one.
 */
const HEALTH_SQL = `${TIDEWAY_SQL_MARK}
SELECT
  (SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication)::float8 AS replication_lag_s,
  (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database())::int AS lock_waiters,
  (SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0) FROM pg_stat_activity
     WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_backend_pid()
       AND datname = current_database()
       AND state <> 'idle' AND coalesce(application_name, '') NOT LIKE 'tideway%')::float8 AS oldest_xact_s,
  ((SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::float8
     / current_setting('max_connections')::float8) AS connections_ratio`;

/**
 * Takes {@link HealthReading}s of datasources: lock waiters and the oldest transaction of the
 * datasource's own database, connections and replication lag of the whole server.
 */
export class HealthProbe {
  constructor(private readonly datasources: DatasourceRegistry) {}

  /**
   * One reading of `datasource`, taken now.
   * @throws DependencyUnavailableError when the datasource cannot be reached.
   */
  async read(datasource: string): Promise<HealthReading> {
    return this.datasources.withClient(datasource, async (client) => {
      const r = await client.query<{ replication_lag_s: number; lock_waiters: number; oldest_xact_s: number; connections_ratio: number }>(HEALTH_SQL);
      const row = r.rows[0];
      return {
        replicationLagSeconds: row?.replication_lag_s ?? 0,
        lockWaiters: row?.lock_waiters ?? 0,
        oldestTransactionSeconds: row?.oldest_xact_s ?? 0,
        connectionsUsedRatio: row?.connections_ratio ?? 0,
      };
    });
  }
}
