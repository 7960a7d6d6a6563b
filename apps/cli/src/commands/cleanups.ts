import type { Command } from 'commander';
import type { CleanupItem } from '../api-types.js';
import { contextOf, subcommand, type CliRuntime } from '../context.js';
import { orDash, table } from '../format.js';

const deadlineOf = (c: CleanupItem): string | null => c.cleanupDeadline ?? c.deadline ?? null;

/**
 * `tideway cleanups`: migrations whose old side waits for cleanup, with their cleanup deadline,
 * overdue ones first. Reads `GET /v1/cleanups` (`{ items: [{ migrationId, name, deadline |
 * cleanupDeadline, overdue, … }] }`); a control plane without that route answers ROUTE_NOT_FOUND
 * (exit 1).
 */
export function registerCleanupCommand(program: Command, cli: CliRuntime): void {
  subcommand(program, 'cleanups', 'cleanup deadlines across migrations, overdue first').action(async (_opts: object, command: Command) => {
    const ctx = contextOf(command, cli);
    const answer = await ctx.client.get<{ items: CleanupItem[] }>('/v1/cleanups');
    const items = [...answer.items].sort((a, b) => Number(b.overdue) - Number(a.overdue) || String(deadlineOf(a)).localeCompare(String(deadlineOf(b))));
    ctx.print(answer, () =>
      items.length === 0
        ? 'no migrations waiting for cleanup\n'
        : table(
            ['NAME', 'MIGRATION', 'STATE', 'CLEANUP DEADLINE', 'OVERDUE', 'EXECUTED'],
            items.map((c) => [
              c.name,
              c.migrationId,
              c.phase ? `${c.phase}/${orDash(c.status)}` : '-',
              orDash(deadlineOf(c)),
              c.overdue ? 'OVERDUE' : 'no',
              orDash(c.executedAt),
            ]),
          ),
    );
  });
}
