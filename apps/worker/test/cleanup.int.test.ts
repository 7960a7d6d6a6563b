import { createHmac } from 'node:crypto';
import { buildApp, loadConfig } from '@tideway/control-plane';
import { BullmqControlQueue, createEngine, type CleanupView, type Engine } from '@tideway/engine';
import { QUEUE_NAMES, openQueue } from '@tideway/queue';
import { TEST_REDIS_URL, waitFor } from '@tideway/testing';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createCutoverFixture, driveToCutover, flagsOf, ramp, type CutoverFixture } from './cutover-fixture.js';
import { ManualClock } from './support/manual-clock.js';
import { WebhookReceiver, type ReceivedWebhook } from './support/webhook-receiver.js';

const SECRET = 'cleanup-webhook-secret';
const DAY_MS = 86_400_000;
const DEADLINE_DAYS = 30;
const ROWS = 500;

let f: CutoverFixture;
let hooks: WebhookReceiver;
/** The injected clock: a second engine on it enters cleanup and fires timers days ahead. */
let clock: ManualClock;
let engine: Engine;
let control: Queue;
/** A control plane on the same clock, for `GET /v1/cleanups` and an operator's advance. */
let clockApp: FastifyInstance;
/** Migrations whose next entry into `done` fails once, after the cleanup's own entry action ran. */
const crashAfterCleanup = new Set<string>();

beforeAll(async () => {
  hooks = await WebhookReceiver.start();
  // The worker delivers the webhooks the second engine queues, signed with SECRET.
  f = await createCutoverFixture('cleanup', { TIDEWAY_WEBHOOK_URLS: hooks.url, TIDEWAY_WEBHOOK_SECRET: SECRET });
  clock = new ManualClock();
  control = openQueue(QUEUE_NAMES.control, { redisUrl: TEST_REDIS_URL, prefix: f.prefix }, f.redis);
  engine = createEngine({
    db: f.orch.db,
    datasources: { main: f.user.url },
    clock,
    controlQueue: new BullmqControlQueue(control),
    webhookUrls: [hooks.url],
    flags: f.flags,
    // Registered after the cleanup's action: a failure here rolls back the orchestrator's
    // transaction while the rename on the datasource has committed, as a crash there would.
    configureHooks: (phaseHooks) =>
      phaseHooks.addEntryAction('done', {
        name: 'test:crash-after-cleanup',
        stage: 'after-converge',
        run: (ctx) => {
          if (crashAfterCleanup.delete(ctx.migration.id)) throw new Error('injected crash after the cleanup ran');
        },
      }),
  });
  clockApp = await buildApp(
    loadConfig({ ...f.env, TIDEWAY_UNLEASH_URL: f.unleash.url, TIDEWAY_UNLEASH_ADMIN_TOKEN: f.unleash.adminToken, TIDEWAY_ADMIN_TOKEN: ADMIN, TIDEWAY_LOG_LEVEL: 'silent' }),
    { clock },
  );
});

afterAll(async () => {
  await clockApp?.close();
  await engine?.close();
  await control?.close();
  await f?.close();
  await hooks?.close();
});

async function clockApi(method: 'GET' | 'POST', url: string, payload?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await clockApp.inject({ method, url, headers: { authorization: `Bearer ${ADMIN}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

async function cleanupOf(id: string): Promise<CleanupView> {
  const res = await clockApi('GET', '/v1/cleanups');
  expect(res.status).toBe(200);
  const item = (res.body['items'] as CleanupView[]).find((c) => c.migrationId === id);
  expect(item, `cleanup of ${id}`).toBeDefined();
  return item as CleanupView;
}

/** Moves the injected clock to `at` and fires what is due then; returns how many timers fired. */
async function fireAt(at: number): Promise<number> {
  return engine.timers.fireDue(clock.set(at));
}

function expectSigned(hook: ReceivedWebhook): void {
  expect(hook.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(hook.body).digest('hex')}`);
}

async function cleanupEvents(id: string) {
  return (await engine.migrationReadModel.allEvents(id)).filter((e) => e.action.startsWith('cleanup.'));
}

async function userTriggers(tables: string[]): Promise<string[]> {
  const r = await f.user.query<{ tgname: string }>(`select tgname from pg_trigger t join pg_class c on c.oid = t.tgrelid where not t.tgisinternal and c.relname = any($1) order by tgname`, [tables]);
  return r.rows.map((row) => row.tgname);
}

async function tableExists(table: string): Promise<boolean> {
  const r = await f.user.query(`select 1 from pg_class where relname = $1 and relkind = 'r'`, [table]);
  return (r.rowCount ?? 0) > 0;
}

/** `yyyymmdd` (UTC) of `at`, as the archived table's name carries it. */
function stamp(at: Date): string {
  return at.toISOString().slice(0, 10).replace(/-/g, '');
}

/** A migration of its own source table to write cutover (through the API, real clock), then into cleanup on the injected clock. */
async function migrationInCleanup(label: string, cleanup: Record<string, unknown>): Promise<{ id: string; name: string; source: string; target: string; deadline: number }> {
  const source = `src_${label}`;
  const target = `dst_${label}`;
  await f.user.query(`
    create table ${source} (id bigint primary key, total bigint, note text);
    insert into ${source} select g, g % 1000, 'n' || g from generate_series(1, ${ROWS}) g;
    create table ${target} (id bigint primary key, total_cents bigint, note text);`);
  const name = `cleanup-${label}-${f.suffix}`;
  const id = await driveToCutover(f, {
    name,
    syncMode: 'trigger',
    source: { datasource: 'main', table: source, key: 'id' },
    target: { datasource: 'main', table: target, key: 'id' },
    mapping: { id: 'id', total_cents: 'total * 100', note: 'note' },
    reverseMapping: { id: 'id', total: 'total_cents / 100', note: 'note' },
    ramp: { steps: [100], holdSeconds: 1 },
    cleanup: { deadlineDays: DEADLINE_DAYS, ...cleanup },
  });
  await waitFor('write cutover', async () => (await ramp(f, id)).status === 'write_cutover', 15_000, 50);
  const entered = clock.now().getTime();
  const m = await engine.migrations.act(id, 'advance', { actor: 'test:operator' });
  expect({ phase: m.phase, status: m.status }).toEqual({ phase: 'cleanup', status: 'active' });
  const deadline = entered + DEADLINE_DAYS * DAY_MS;
  expect(await cleanupOf(id)).toMatchObject({ deadline: new Date(deadline).toISOString(), overdue: false, overdueSince: null, executedAt: null, remindersSent: [] });
  const timers = await engine.timers.pending(id);
  expect(timers.map((t) => ({ kind: t.kind, dueAt: new Date(t.due_at).getTime(), payload: t.payload }))).toEqual([
    { kind: 'cleanup_reminder', dueAt: deadline - 7 * DAY_MS, payload: { daysLeft: 7 } },
    { kind: 'cleanup_reminder', dueAt: deadline - DAY_MS, payload: { daysLeft: 1 } },
    { kind: 'cleanup_deadline', dueAt: deadline, payload: { repeat: 0 } },
  ]);
  // Both syncs are in place (forward on the source, reverse on the target), three statement triggers each.
  expect(await userTriggers([source, target])).toHaveLength(6);
  return { id, name, source, target, deadline };
}

/** Fires the reminders 7 days and 1 day before the deadline (never earlier) and checks their webhooks and audit events. */
async function expectReminders(id: string, deadline: number): Promise<void> {
  for (const days of [7, 1]) {
    const due = deadline - days * DAY_MS;
    expect(await fireAt(due - 1000)).toBe(0);
    expect(await fireAt(due)).toBe(1);
    const [hook] = (await hooks.waitFor('migration.cleanup_reminder', id, days === 7 ? 1 : 2)).filter((h) => h.json['daysLeft'] === days);
    expect(hook).toBeDefined();
    expectSigned(hook as ReceivedWebhook);
    // `at` is the injected clock's time of the reminder, not the wall clock's.
    expect(hook?.json).toMatchObject({ event: 'migration.cleanup_reminder', migrationId: id, deadline: new Date(deadline).toISOString(), daysLeft: days, at: new Date(due).toISOString() });
  }
  const events = await cleanupEvents(id);
  expect(events.map((e) => [e.action, e.actor, e.details['daysLeft']])).toEqual([
    ['cleanup.reminder', 'tideway:cleanup', 7],
    ['cleanup.reminder', 'tideway:cleanup', 1],
  ]);
  expect((await cleanupOf(id)).remindersSent).toEqual([
    { kind: 'reminder', at: new Date(deadline - 7 * DAY_MS).toISOString() },
    { kind: 'reminder', at: new Date(deadline - DAY_MS).toISOString() },
  ]);
}

async function archivedInUnleash(flag: string): Promise<boolean> {
  const res = await fetch(`${f.unleash.url}/api/admin/search/features?query=${encodeURIComponent(flag)}&archived=IS:true`, { headers: { authorization: f.unleash.adminToken } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { features: { name: string; archivedAt: string | null }[] };
  return body.features.some((x) => x.name === flag && x.archivedAt !== null);
}

describe('cleanup deadlines on an injected clock', () => {
  it('with autoExecute: reminders at −7 d and −1 d, then the deadline archives the flags, drops the triggers, renames the old table and ends the migration', async () => {
    const { id, name, source, target, deadline } = await migrationInCleanup('auto', { autoExecute: true });
    await expectReminders(id, deadline);
    const flags = Object.values((await flagsOf(f, name)));
    expect(flags).toHaveLength(4);
    for (const flag of flags) expect((await f.flags.getState(flag)).name).toBe(flag);

    expect(await fireAt(deadline - 1000)).toBe(0);
    expect(await fireAt(deadline)).toBe(1);
    const [executed] = await hooks.waitFor('migration.cleanup_executed', id);
    expectSigned(executed as ReceivedWebhook);
    expect(executed?.json).toMatchObject({ event: 'migration.cleanup_executed', migrationId: id, name, deadline: new Date(deadline).toISOString() });

    const m = await engine.migrationReadModel.get(id);
    expect({ phase: m?.phase, status: m?.status }).toEqual({ phase: 'done', status: 'completed' });
    const last = (await engine.migrationReadModel.allEvents(id)).at(-1);
    expect(last).toMatchObject({ action: 'advance', actor: 'tideway:cleanup', fromPhase: 'cleanup', toPhase: 'done', toStatus: 'completed' });
    expect((await cleanupEvents(id)).map((e) => e.action)).toEqual(['cleanup.reminder', 'cleanup.reminder']);

    for (const flag of flags) {
      await expect(f.flags.getState(flag)).rejects.toMatchObject({ code: 'INTERNAL', details: { status: 404 } });
      expect(await archivedInUnleash(flag), `${flag} archived`).toBe(true);
    }
    const archived = `${source}_tideway_archived_${stamp(new Date(deadline))}`;
    expect(stamp(new Date(deadline))).not.toBe(stamp(new Date())); // the date is the injected clock's
    expect(await tableExists(source)).toBe(false);
    expect(await tableExists(archived)).toBe(true);
    expect((await f.user.query<{ n: number }>(`select count(*)::int as n from ${archived}`)).rows[0]?.n).toBe(ROWS);
    expect(await userTriggers([archived, target])).toEqual([]);
    expect(await cleanupOf(id)).toMatchObject({ phase: 'done', status: 'completed', overdue: false, executedAt: new Date(deadline).toISOString(), archivedTable: archived });
    expect(await engine.timers.pending(id)).toEqual([]);
    expect(hooks.of('migration.cleanup_overdue', id)).toEqual([]);
    expect(hooks.of('migration.cleanup_reminder', id)).toHaveLength(2);
  });

  it('without autoExecute: at the deadline the migration is overdue, and the reminder repeats a day later until an operator acts', async () => {
    const { id, name, source, target, deadline } = await migrationInCleanup('manual', {});
    await expectReminders(id, deadline);

    expect(await fireAt(deadline)).toBe(1);
    const [overdue] = await hooks.waitFor('migration.cleanup_overdue', id);
    expectSigned(overdue as ReceivedWebhook);
    expect(overdue?.json).toMatchObject({ event: 'migration.cleanup_overdue', migrationId: id, name, deadline: new Date(deadline).toISOString() });
    let m = await engine.migrationReadModel.get(id);
    expect({ phase: m?.phase, status: m?.status }).toEqual({ phase: 'cleanup', status: 'active' });
    expect(await cleanupOf(id)).toMatchObject({
      overdue: true,
      overdueSince: new Date(deadline).toISOString(),
      executedAt: null,
      archivedTable: null,
      remindersSent: [
        { kind: 'reminder', at: new Date(deadline - 7 * DAY_MS).toISOString() },
        { kind: 'reminder', at: new Date(deadline - DAY_MS).toISOString() },
        { kind: 'overdue', at: new Date(deadline).toISOString() },
      ],
    });
    // Nothing was cleaned up.
    expect(await tableExists(source)).toBe(true);
    expect(await userTriggers([source, target])).toHaveLength(6);
    expect((await f.flags.getState((await flagsOf(f, name)).readNew)).rollout).toBe(100);

    // One more day: another reminder (overdue, repeat 1), not earlier.
    expect(await fireAt(deadline + DAY_MS - 1000)).toBe(0);
    expect(await fireAt(deadline + DAY_MS)).toBe(1);
    const repeats = await hooks.waitFor('migration.cleanup_overdue', id, 2);
    expectSigned(repeats[1] as ReceivedWebhook);
    expect(repeats[1]?.json).toMatchObject({ migrationId: id, deadline: new Date(deadline).toISOString() });
    expect((await cleanupEvents(id)).map((e) => [e.action, e.details['repeat'] ?? e.details['daysLeft']])).toEqual([
      ['cleanup.reminder', 7],
      ['cleanup.reminder', 1],
      ['cleanup.overdue', 0],
      ['cleanup.overdue', 1],
    ]);
    const view = await cleanupOf(id);
    expect(view).toMatchObject({ overdue: true, overdueSince: new Date(deadline).toISOString() });
    expect(view.remindersSent.map((r) => r.kind)).toEqual(['reminder', 'reminder', 'overdue', 'overdue']);
    expect((await engine.timers.pending(id)).map((t) => ({ kind: t.kind, dueAt: new Date(t.due_at).getTime(), payload: t.payload }))).toEqual([
      { kind: 'cleanup_deadline', dueAt: deadline + 2 * DAY_MS, payload: { repeat: 2 } },
    ]);

    // The operator acts: the cleanup runs on the control plane's (injected) clock and the repeats stop.
    const done = await clockApi('POST', `/v1/migrations/${id}/advance`, {});
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body).toMatchObject({ phase: 'done', status: 'completed' });
    m = await engine.migrationReadModel.get(id);
    expect(m?.phase).toBe('done');
    const archived = `${source}_tideway_archived_${stamp(clock.now())}`;
    expect(await tableExists(archived)).toBe(true);
    expect(await userTriggers([archived, target])).toEqual([]);
    expect(await engine.timers.pending(id)).toEqual([]);
    expect(await fireAt(deadline + 2 * DAY_MS)).toBe(0);
  });

  it('a crash after the rename and before the commit: the retry a day later keeps the archive name the rename gave, and the table\'s own comment', async () => {
    const { id, source, deadline } = await migrationInCleanup('crash', { autoExecute: true });
    await f.user.query(`comment on table ${source} is 'orders of the old shop'`);
    crashAfterCleanup.add(id);
    const archived = `${source}_tideway_archived_${stamp(new Date(deadline))}`;

    expect(await fireAt(deadline)).toBe(2); // the two reminders; the deadline timer failed and stays due
    expect(crashAfterCleanup.has(id)).toBe(false);
    expect(await tableExists(archived)).toBe(true);
    expect((await engine.migrationReadModel.get(id))?.phase).toBe('cleanup');
    expect(await cleanupOf(id)).toMatchObject({ executedAt: null, archivedTable: null });

    const nextDay = deadline + DAY_MS;
    expect(stamp(new Date(nextDay))).not.toBe(stamp(new Date(deadline)));
    expect(await fireAt(nextDay)).toBe(1);
    const m = await engine.migrationReadModel.get(id);
    expect({ phase: m?.phase, status: m?.status }).toEqual({ phase: 'done', status: 'completed' });
    expect(await cleanupOf(id)).toMatchObject({ executedAt: new Date(nextDay).toISOString(), archivedTable: archived });
    expect(await tableExists(`${source}_tideway_archived_${stamp(new Date(nextDay))}`)).toBe(false);
    const comment = await f.user.query<{ c: string }>(`select obj_description($1::regclass, 'pg_class') as c`, [archived]);
    expect(comment.rows[0]?.c).toBe(`tideway:archived-by:${id}\norders of the old shop`);
  });
});
