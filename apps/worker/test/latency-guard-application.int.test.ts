/**
 * The latency guard's application signal end to end (ADR 014): an application writes the source
 * through the real SDK (dual writes on) against a real control plane, the SDK reports how long its
 * old-store writes took with its dual-write reports, and the guard in a real worker judges their
 * p99 against the p99 it learned with the backfill held back. When the application's writes slow
 * down tenfold, the guard holds the copy at its floor, audited with the application's numbers; the
 * backfill still ends exact.
 */
import type { AddressInfo } from 'node:net';
import { buildApp, loadConfig } from '@tideway/control-plane';
import { flagNames } from '@tideway/core';
import { createMigrationClient, type MigrationClient } from '@tideway/sdk';
import { waitFor } from '@tideway/testing';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bigDiff, bigSpec, createGuardFixture, driveToBackfill, waitForBackfill, type BackfillFixture } from './fixture.js';

const ADMIN = 'latency-application-admin-token-0123';
const ROWS = 20_000;
const FLOOR = 200;

let f: BackfillFixture;
let app: FastifyInstance;
let db: pg.Client;

beforeAll(async () => {
  f = await createGuardFixture('latency_guard_application', ROWS);
  app = await buildApp(loadConfig({ ...f.env, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent' }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  db = new pg.Client({ connectionString: f.user.url, application_name: 'the-application' });
  await db.connect();
}, 120_000);

afterAll(async () => {
  await db?.end();
  await app?.close();
  await f?.close();
});

describe('latency guard: the application signal', () => {
  it("holds the copy at its floor when the application's own writes slow down", async () => {
    const id = await driveToBackfill(
      f.engine,
      // Slow enough that the copy still runs when the application slows down.
      bigSpec('application-guarded', { latencyGuard: { minRowsPerSecond: FLOOR }, backfill: { maxRowsPerSecond: 1500 } }),
    );
    const installation = await f.engine.installation.id();
    const names = flagNames(installation, 'application-guarded');
    const client: MigrationClient = createMigrationClient({
      baseUrl: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      token: ADMIN,
      migration: { id, name: 'application-guarded', installation },
      // The flags as the dual_write phase sets them (this test is about latency, not the flag server).
      flags: { isEnabled: (flag) => flag === names.dualWrite },
      flushIntervalMs: 250,
    });
    // The application: one write every 5 ms, through the SDK; `extraMs` makes each one slower.
    let extraMs = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        const key = 1 + Math.floor(Math.random() * ROWS);
        await client.write({
          key,
          writeOld: async () => {
            await db.query('update big set n = n + 1 where id = $1', [key]);
            if (extraMs > 0) await db.query('select pg_sleep($1)', [extraMs / 1000]);
          },
          // The sync trigger copies the row to the target: the best-effort new-side write has nothing to do.
          writeNew: async () => undefined,
        });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      const learned = await waitFor('the application signal with a baseline', async () => {
        const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
        return g?.mode === 'guarding' && g.application?.baselineP99Ms != null && g.application.observedP99Ms != null ? g.application : null;
      }, 30_000);
      // A sane baseline (on an idle machine 2–10 ms; the test process's own event loop adds 20–80 ms
      // to it on a loaded one, so the slow-down is sized from it, not fixed).
      expect(learned.baselineP99Ms).toBeLessThan(250);
      // The application's writes now take 25 ms, or twice the baseline p99, more each.
      extraMs = Math.max(25, Math.ceil(2 * (learned.baselineP99Ms ?? 0)));
      const held = await waitFor('the guard held back by the application signal', async () => {
        const g = (await f.engine.backfillReadModel.progress(id, 0.3))?.latencyGuard;
        return g && g.signal === 'application' && (g.paceRowsPerSecond ?? Infinity) <= FLOOR * 1.05 ? g : null;
      }, 30_000);
      expect(held.application?.observedP99Ms).toBeGreaterThan(extraMs);
      expect(held.application?.observedP99Ms).toBeGreaterThan((held.application?.baselineP99Ms ?? Infinity) * 1.3);
      // Holding back is audited (by whichever signal first crossed the budget).
      expect((await f.engine.migrationReadModel.allEvents(id)).some((e) => e.action === 'latency-guard.holding')).toBe(true);
      expect((await f.engine.backfillReadModel.progress(id))?.completedAt).toBeNull();
    } finally {
      running = false;
      await loop;
      await client.close();
    }
    await f.engine.migrations.patch(id, { throttle: { latencyGuard: { enabled: false } }, backfill: { maxRowsPerSecond: null } }, { actor: 'test', role: 'operator' });
    const done = await waitForBackfill(f.engine, id, 120_000);
    expect(done.rowsCopied).toBe(ROWS);
    expect(await bigDiff(f)).toEqual({ missingOrDifferent: 0, extraOrDifferent: 0 });
  }, 240_000);
});
