import { Option, type Command } from 'commander';
import { ROLES, type Token } from '../api-types.js';
import { contextOf, seg, subcommand, type CliRuntime } from '../context.js';
import { orDash, table } from '../format.js';

/** `tideway tokens …`: create, list and revoke API tokens (admin). */
export function registerTokenCommands(program: Command, cli: CliRuntime): void {
  const tokens = program.command('tokens').description('API tokens (needs an admin token)');

  subcommand(tokens, 'create', 'create a token; its secret is printed once')
    .requiredOption('--name <name>', 'lower-case slug naming the token')
    .addOption(new Option('--role <role>', 'what it may do').choices(ROLES).makeOptionMandatory())
    .action(async (opts: { name: string; role: string }, command: Command) => {
      const ctx = contextOf(command, cli);
      const t = await ctx.client.post<Token & { token: string }>('/v1/tokens', { name: opts.name, role: opts.role });
      ctx.print(t, () => `created token ${t.name} (${t.role})\n${t.token}\nstore this secret now: it is not shown again\n`);
    });

  subcommand(tokens, 'list', 'list tokens (never their secrets)').action(async (_opts: object, command: Command) => {
    const ctx = contextOf(command, cli);
    const answer = await ctx.client.get<{ items: Token[] }>('/v1/tokens');
    ctx.print(answer, () =>
      answer.items.length === 0
        ? 'no tokens\n'
        : table(
            ['NAME', 'ROLE', 'CREATED BY', 'CREATED', 'LAST USED', 'REVOKED'],
            answer.items.map((t) => [t.name, t.role, t.createdBy, t.createdAt, orDash(t.lastUsedAt), orDash(t.revokedAt)]),
          ),
    );
  });

  subcommand(tokens, 'revoke <name>', 'revoke a token; it stops working at once').action(async (name: string, _opts: object, command: Command) => {
    const ctx = contextOf(command, cli);
    const t = await ctx.client.post<Token>(`/v1/tokens/${seg(name)}/revoke`);
    ctx.print(t, () => `revoked token ${t.name} (${t.role}) at ${orDash(t.revokedAt)}\n`);
  });
}
