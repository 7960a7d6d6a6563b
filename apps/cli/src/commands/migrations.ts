import { Option, type Command } from 'commander';
import type { Chunk, MigrationEvent, MigrationResource, Page } from '../api-types.js';
import { CHUNK_STATUSES } from '../api-types.js';
import { collectPages, contextOf, more, pageOptions, type CliRuntime, type PageOptions, positiveInt, readJsonInput, REF, seg, subcommand } from '../context.js';
import { OPERATOR_ACTIONS, PHASES, STATUSES } from '../domain.js';
import { count, key, orDash, table } from '../format.js';
import { renderMigration, renderOutcome } from './render-migration.js';

const path = (id: string, rest = '') => `/v1/migrations/${seg(id)}${rest}`;

/** `tideway migrations …`: list, get, create, act, patch, events, chunks. */
export function registerMigrationCommands(program: Command, cli: CliRuntime): void {
  const migrations = program.command('migrations').description('create, inspect and drive migrations');

  pageOptions(
    subcommand(migrations, 'list', 'list migrations, newest first')
      .addOption(new Option('--phase <phase>', 'only this phase').choices(PHASES))
      .addOption(new Option('--status <status>', 'only this status').choices(STATUSES)),
    500,
  ).action(async (opts: PageOptions & { phase?: string; status?: string }, command: Command) => {
    const ctx = contextOf(command, cli);
    const page = await collectPages(
      (cursor) => ctx.client.get<Page<MigrationResource>>('/v1/migrations', { phase: opts.phase, status: opts.status, limit: opts.limit ?? (opts.all ? 500 : undefined), cursor }),
      opts.all === true,
      opts.cursor,
    );
    ctx.print(page, () =>
      page.items.length === 0
        ? 'no migrations\n'
        : table(
            ['ID', 'NAME', 'PHASE', 'STATUS', 'VERSION', 'UPDATED'],
            page.items.map((m) => [m.id, m.name, m.phase, m.status, String(m.version), m.updatedAt]),
          ) + more(page.nextCursor),
    );
  });

  subcommand(migrations, 'get <migration>', `a migration with its gates and progress; ${REF}`).action(async (ref: string, _opts: object, command: Command) => {
    const ctx = contextOf(command, cli);
    const m = await ctx.client.get<MigrationResource>(path(await ctx.migrationId(ref)));
    ctx.print(m, () => renderMigration(m));
  });

  subcommand(migrations, 'create', 'create a migration (in draft) from a spec file')
    .requiredOption('-f, --file <path>', 'the spec as JSON; "-" reads stdin')
    .action(async (opts: { file: string }, command: Command) => {
      const ctx = contextOf(command, cli);
      const spec = await readJsonInput(opts.file, ctx.io);
      const m = await ctx.client.post<MigrationResource>('/v1/migrations', spec);
      ctx.print(m, () => `created migration ${m.name} (${m.id}): ${m.phase}/${m.status}, version ${m.version}\nnext: tideway migrations start ${m.id}\n`);
    });

  for (const action of OPERATOR_ACTIONS) {
    subcommand(migrations, `${action} <migration>`, `${action} the migration; ${REF}`)
      .addOption(new Option('--expected-version <n>', 'fail with VERSION_CONFLICT unless the migration is at this version').argParser(positiveInt))
      .option('--reason <text>', 'why; recorded in the audit log')
      .option('--idempotency-key <key>', 'send Idempotency-Key: a retry with the same key acts only once')
      .action(async (ref: string, opts: { expectedVersion?: number; reason?: string; idempotencyKey?: string }, command: Command) => {
        const ctx = contextOf(command, cli);
        const id = await ctx.migrationId(ref);
        const body = { ...(opts.expectedVersion === undefined ? {} : { expectedVersion: opts.expectedVersion }), ...(opts.reason === undefined ? {} : { reason: opts.reason }) };
        const m = await ctx.client.post<MigrationResource>(path(id, `/${action}`), body, opts.idempotencyKey === undefined ? undefined : { 'idempotency-key': opts.idempotencyKey });
        ctx.print(m, () => renderOutcome(action, m));
      });
  }

  subcommand(migrations, 'patch <migration>', `change tunable parts of the spec (batch size, rate, thresholds, ramp…); ${REF}`)
    .requiredOption('-f, --file <path>', 'the partial spec as JSON; "-" reads stdin')
    .addOption(new Option('--expected-version <n>', 'fail with VERSION_CONFLICT unless the migration is at this version').argParser(positiveInt))
    .option('--reason <text>', 'why; recorded in the audit log')
    .action(async (ref: string, opts: { file: string; expectedVersion?: number; reason?: string }, command: Command) => {
      const ctx = contextOf(command, cli);
      const spec = await readJsonInput(opts.file, ctx.io);
      const id = await ctx.migrationId(ref);
      const body = { spec, ...(opts.expectedVersion === undefined ? {} : { expectedVersion: opts.expectedVersion }), ...(opts.reason === undefined ? {} : { reason: opts.reason }) };
      const m = await ctx.client.patch<MigrationResource>(path(id), body);
      ctx.print(m, () => renderOutcome('patched', m));
    });

  pageOptions(subcommand(migrations, 'events <migration>', `the audit log of a migration, oldest first; ${REF}`), 1000).action(
    async (ref: string, opts: PageOptions, command: Command) => {
      const ctx = contextOf(command, cli);
      const id = await ctx.migrationId(ref);
      const page = await collectPages((cursor) => ctx.client.get<Page<MigrationEvent>>(path(id, '/events'), { limit: opts.limit, cursor }), opts.all === true, opts.cursor);
      const state = (phase: string | null, status: string | null) => (phase === null ? '-' : `${phase}/${orDash(status)}`);
      ctx.print(page, () =>
        page.items.length === 0
          ? 'no events\n'
          : table(
              ['SEQ', 'AT', 'ACTOR', 'ACTION', 'FROM', 'TO', 'REASON'],
              page.items.map((e) => [String(e.seq), e.at, e.actor, e.action, state(e.fromPhase, e.fromStatus), state(e.toPhase, e.toStatus), orDash(e.reason)]),
            ) + more(page.nextCursor),
      );
    },
  );

  pageOptions(
    subcommand(migrations, 'chunks <migration>', `backfill chunks in key order; ${REF}`).addOption(new Option('--status <status>', 'only chunks with this status').choices(CHUNK_STATUSES)),
    1000,
  ).action(async (ref: string, opts: PageOptions & { status?: string }, command: Command) => {
    const ctx = contextOf(command, cli);
    const id = await ctx.migrationId(ref);
    const page = await collectPages(
      (cursor) => ctx.client.get<Page<Chunk>>(path(id, '/chunks'), { status: opts.status, limit: opts.limit, cursor }),
      opts.all === true,
      opts.cursor,
    );
    ctx.print(page, () =>
      page.items.length === 0
        ? 'no chunks\n'
        : table(
            ['ID', 'STATUS', 'AFTER', 'UP TO', 'ROWS', 'MS', 'ATTEMPTS', 'WORKER', 'LAST ERROR'],
            page.items.map((c) => [
              String(c.id),
              c.status,
              key(c.lowerKey, '(start)'),
              key(c.upperKey, '(end)'),
              c.rowsCopied === null ? '-' : count(c.rowsCopied),
              orDash(c.durationMs),
              String(c.attempts),
              orDash(c.worker),
              orDash(c.lastError),
            ]),
          ) + more(page.nextCursor),
    );
  });
}
