import { setTimeout as sleep } from 'node:timers/promises';
import { Option, type Command } from 'commander';
import type { Page, Verification } from '../api-types.js';
import { collectPages, contextOf, more, pageOptions, positiveInt, REF, seg, subcommand, type CliRuntime, type PageOptions } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { count, key, table } from '../format.js';

function renderVerification(v: Verification): string {
  const verdict = v.status === 'running' ? 'running' : v.status === 'passed' ? 'passed: target equals mapping(source)' : 'differences found';
  const lines = [
    `verification ${v.id}: ${verdict}`,
    `  ranges      ${count(v.rangesChecked)}/${count(v.rangesTotal)} checked`,
    `  rows        ${count(v.rowsCompared)} compared`,
    `  missing     ${count(v.missingInTarget)} (in source, not in target)`,
    `  extra       ${count(v.extraInTarget)} (in target, not in source)`,
    `  different   ${count(v.different)}`,
    `  repaired    ${count(v.repaired)}`,
    `  started     ${v.startedAt}${v.finishedAt ? `, finished ${v.finishedAt}` : ''}`,
  ];
  let out = `${lines.join('\n')}\n`;
  if (v.sampleKeys.length) out += `sample keys\n${table(['KIND', 'KEY'], v.sampleKeys.map((s) => [s.kind, key(s.key, '-')])).replace(/^/gm, '  ')}`;
  return out;
}

/** `tideway verify <migration>`: compare target with mapping(source) by checksummed key ranges; exit 3 on differences. */
export function registerVerifyCommand(program: Command, cli: CliRuntime): void {
  subcommand(program, 'verify <migration>', `start a verification; with --wait, exit 3 when it finds differences; ${REF}`)
    .option('--wait', 'wait for the verification to finish and print its result')
    .option('--repair', 'after --wait (implied), re-copy the keys found different and print the re-check')
    .addOption(new Option('--interval-ms <ms>', 'time between polls while waiting, milliseconds').argParser(positiveInt).default(1000))
    .action(async (ref: string, opts: { wait?: boolean; repair?: boolean; intervalMs: number }, command: Command) => {
      const ctx = contextOf(command, cli);
      const id = await ctx.migrationId(ref);
      const base = `/v1/migrations/${seg(id)}/verifications`;
      let v = await ctx.client.post<Verification>(base);
      if (!opts.wait && !opts.repair) {
        ctx.print(v, () => `${renderVerification(v)}wait for it: tideway verify ${ref} --wait (or GET ${base}/${v.id})\n`);
        return;
      }
      if (!ctx.json) ctx.io.err(`verification ${v.id} started: ${count(v.rangesTotal)} ranges\n`);
      while (v.status === 'running') {
        await sleep(opts.intervalMs);
        v = await ctx.client.get<Verification>(`${base}/${seg(v.id)}`);
      }
      if (v.status === 'failed' && opts.repair) {
        if (!ctx.json) ctx.io.out(renderVerification(v));
        const found = v.missingInTarget + v.extraInTarget + v.different;
        if (!ctx.json) ctx.io.err(`repairing ${count(found)} key(s)…\n`);
        v = await ctx.client.post<Verification>(`${base}/${seg(v.id)}/repair`);
      }
      ctx.print(v, () => renderVerification(v));
      if (v.status !== 'passed') ctx.setExitCode(EXIT_CODES.differences);
    });
}

/** `tideway verifications <migration>`: the migration's verifications, newest first. */
export function registerVerificationsCommand(program: Command, cli: CliRuntime): void {
  pageOptions(subcommand(program, 'verifications <migration>', `a migration's verifications, newest first; ${REF}`), 100).action(
    async (ref: string, opts: PageOptions, command: Command) => {
      const ctx = contextOf(command, cli);
      const id = await ctx.migrationId(ref);
      const page = await collectPages(
        (cursor) => ctx.client.get<Page<Verification>>(`/v1/migrations/${seg(id)}/verifications`, { limit: opts.limit ?? (opts.all ? 100 : undefined), cursor }),
        opts.all === true,
        opts.cursor,
      );
      ctx.print(page, () =>
        page.items.length === 0
          ? 'no verifications\n'
          : table(
              ['ID', 'STATUS', 'RANGES', 'ROWS', 'MISSING', 'EXTRA', 'DIFFERENT', 'REPAIRED', 'STARTED'],
              page.items.map((v) => [
                v.id,
                v.status,
                `${count(v.rangesChecked)}/${count(v.rangesTotal)}`,
                count(v.rowsCompared),
                count(v.missingInTarget),
                count(v.extraInTarget),
                count(v.different),
                count(v.repaired),
                v.startedAt,
              ]),
            ) + more(page.nextCursor),
      );
    },
  );
}
