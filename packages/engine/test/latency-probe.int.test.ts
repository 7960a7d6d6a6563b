/**
 * The canary probe on a real PostgreSQL (ADR 014): a probe stuck behind a lock until its statement
 * timeout is a sample of the time it waited (an overloaded database must not look quiet), and a
 * probe that fails every time says so (`failing`), so the guard paces at its floor instead of
 * keeping the last pace blind.
 */
import { createTestDatabase, waitFor, type TestDatabase } from '@tideway/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasourceRegistry, LatencyProbe } from '../src/index.js';

let db: TestDatabase;
let registry: DatasourceRegistry;
const probes: LatencyProbe[] = [];

beforeAll(async () => {
  db = await createTestDatabase('latency_probe');
  await db.query('create table t (id bigint primary key, v int); insert into t select g, g from generate_series(1, 100) g');
  registry = new DatasourceRegistry({ main: db.url });
});

afterAll(async () => {
  for (const p of probes) p.stop();
  await registry?.close();
  await db?.drop();
});

function probeOf(table: string): LatencyProbe {
  const probe = new LatencyProbe(registry.probePool('main'), { schema: 'public', table, keyColumns: ['id'], keyTypes: ['bigint'], probeSql: null }, registry.commitProbePool('main'));
  probes.push(probe);
  return probe;
}

describe('latency probe', () => {
  it('counts a probe cancelled by its statement timeout as a sample of the time it waited', async () => {
    const probe = probeOf('t');
    probe.start();
    await waitFor('read samples', async () => (probe.samplesWithin(5000, 'read').length >= 5 ? true : null), 10_000);
    expect(Math.max(...probe.samplesWithin(5000, 'read'))).toBeLessThan(1000);
    const holder = new pg.Client({ connectionString: db.url });
    holder.on('error', () => undefined);
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      const slow = await waitFor('a timed-out probe sample', async () => {
        const s = probe.samplesWithin(10_000, 'read').filter((ms) => ms >= 1900);
        return s.length > 0 ? s : null;
      }, 10_000);
      expect(slow[0]).toBeGreaterThanOrEqual(1900);
      expect(probe.failing).toBe(false);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
      probe.stop();
    }
  }, 30_000);

  it('says it is failing when every read probe fails, and recovers with the next sample', async () => {
    await db.query('create table gone (id bigint primary key); insert into gone select generate_series(1, 100)');
    const probe = probeOf('gone');
    probe.start();
    await waitFor('read samples', async () => (probe.samplesWithin(5000, 'read').length >= 3 ? true : null), 10_000);
    expect(probe.failing).toBe(false);
    await db.query('alter table gone rename to gone_away');
    await waitFor('the probe failing', async () => (probe.failing ? true : null), 10_000);
    await db.query('alter table gone_away rename to gone');
    await waitFor('the probe measuring again', async () => (!probe.failing ? true : null), 10_000);
    probe.stop();
  }, 30_000);
});
