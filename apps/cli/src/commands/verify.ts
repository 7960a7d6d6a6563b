import { setTimeout as sleep } from 'node:timers/promises';
import { Option, type Command } from 'commander';
import type { Page, Verification, VerificationRepair, VerificationRepairResult } from '../api-types.js';
import { collectPages, contextOf, more, pageOptions, positiveInt, REF, seg, subcommand, type CliRuntime, type PageOptions } from '../context.js';
import { EXIT_CODES } from '../exit-codes.js';
import { count, key, orDash, table } from '../format.js';

const VERDICTS: Record<NonNullable<Verification['outcome']> | 'running', string> = {
  running: 'running',
  passed: 'passed: target equals mapping(source)',
  failed: 'differences found',
  repaired: 'differences found, every one repaired and re-checked',
};

/** Whether the verification vouches for the target: it found nothing, or repairs fixed all it found. */
const vouches = (v: Verification) => v.outcome === 'passed' || v.outcome === 'repaired';

/** A verification: what it found (as found, whatever was repaired since), sample keys, its repairs. */
export function renderVerification(v: Verification): string {
  const found = v.missingInTarget + v.extraInTarget + v.different;
  const lines = [
    `verification ${v.id}: ${VERDICTS[v.outcome ?? 'running']}`,
    `  ranges      ${count(v.rangesChecked)}/${count(v.rangesTotal)} checked`,
    `  rows        ${count(v.rowsCompared)} compared`,
    `  missing     ${count(v.missingInTarget)} (in source, not in target)`,
    `  extra       ${count(v.extraInTarget)} (in target, not in source)`,
    `  different   ${count(v.different)}`,
    `  repaired    ${count(v.repaired)}${found ? ` of ${count(found)} (${count(v.unrepaired)} not repaired)` : ''}`,
    `  started     ${v.startedAt} by ${v.createdBy}${v.finishedAt ? `, finished ${v.finishedAt}` : ''}`,
  ];
  let out = `${lines.join('\n')}\n`;
  if (v.sampleKeys.length) {
    const rows = v.sampleKeys.map((s) => (v.repairs.length ? [s.kind, key(s.key, '-'), orDash(s.repairedBy)] : [s.kind, key(s.key, '-')]));
    out += `sample keys\n${table(v.repairs.length ? ['KIND', 'KEY', 'REPAIRED BY'] : ['KIND', 'KEY'], rows).replace(/^(?=.)/gm, '  ')}`;
  }
  if (v.repairs.length) {
    out += `repairs\n${table(
      ['ID', 'STATUS', 'BY', 'ATTEMPTED', 'FIXED', 'STILL DIFFERENT', 'FINISHED'],
      v.repairs.map((r) => [r.id, r.status, r.actor, count(r.keysAttempted), count(r.fixed), count(r.stillDifferent), orDash(r.finishedAt)]),
    ).replace(/^(?=.)/gm, '  ')}`;
  }
  return out;
}

/** A repair record: what it attempted, re-copied and found at the re-check. */
export function renderRepair(r: VerificationRepair): string {
  const lines = [
    `repair ${r.id} of verification ${r.verificationId}: ${r.status} (by ${r.actor})`,
    `  attempted   ${count(r.keysAttempted)} key(s) no earlier repair had fixed`,
    `  re-copied   ${count(r.upserted)} upserted, ${count(r.deleted)} deleted`,
    `  fixed       ${count(r.fixed)}`,
    `  still diff  ${count(r.stillDifferent)}`,
    `  started     ${r.startedAt}${r.finishedAt ? `, finished ${r.finishedAt}` : ''}`,
  ];
  if (r.error) lines.push(`  error       ${r.error}`);
  let out = `${lines.join('\n')}\n`;
  if (r.sampleKeys.length) out += `re-checked keys\n${table(['KIND', 'KEY', 'OUTCOME'], r.sampleKeys.map((k) => [k.kind, key(k.key, '-'), k.outcome])).replace(/^(?=.)/gm, '  ')}`;
  return out;
}

/** `tideway verify <migration>`: compare target with mapping(source) by checksummed key ranges; exit 3 on differences. */
export function registerVerifyCommand(program: Command, cli: CliRuntime): void {
  subcommand(program, 'verify <migration>', `start a verification; with --wait, exit 3 when it finds differences; ${REF}`)
    .option('--wait', 'wait for the verification to finish and print its result')
    .option('--repair', 'after --wait (implied), re-copy the keys found different and print the repair and the verification after it')
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
      if (v.outcome === 'failed' && opts.repair) {
        if (!ctx.json) ctx.io.out(renderVerification(v));
        if (!ctx.json) ctx.io.err(`repairing ${count(v.unrepaired)} key(s)…\n`);
        const r = await ctx.client.post<VerificationRepairResult>(`${base}/${seg(v.id)}/repair`);
        ctx.print(r, () => `${renderRepair(r)}${renderVerification(r.verification)}`);
        if (!vouches(r.verification)) ctx.setExitCode(EXIT_CODES.differences);
        return;
      }
      ctx.print(v, () => renderVerification(v));
      if (!vouches(v)) ctx.setExitCode(EXIT_CODES.differences);
    });
}

/** `tideway verifications <migration> [verification]`: the migration's verifications, newest first, or one with its findings and repairs. */
export function registerVerificationsCommand(program: Command, cli: CliRuntime): void {
  pageOptions(subcommand(program, 'verifications <migration> [verification]', `a migration's verifications, newest first, or one verification (id) with its findings and repairs; ${REF}`), 100).action(
    async (ref: string, vid: string | undefined, opts: PageOptions, command: Command) => {
      const ctx = contextOf(command, cli);
      const id = await ctx.migrationId(ref);
      if (vid !== undefined) {
        const v = await ctx.client.get<Verification>(`/v1/migrations/${seg(id)}/verifications/${seg(vid)}`);
        ctx.print(v, () => renderVerification(v));
        return;
      }
      const page = await collectPages(
        (cursor) => ctx.client.get<Page<Verification>>(`/v1/migrations/${seg(id)}/verifications`, { limit: opts.limit ?? (opts.all ? 100 : undefined), cursor }),
        opts.all === true,
        opts.cursor,
      );
      ctx.print(page, () =>
        page.items.length === 0
          ? 'no verifications\n'
          : table(
              ['ID', 'STATUS', 'OUTCOME', 'RANGES', 'ROWS', 'MISSING', 'EXTRA', 'DIFFERENT', 'REPAIRED', 'REPAIRS', 'STARTED'],
              page.items.map((v) => [
                v.id,
                v.status,
                orDash(v.outcome),
                `${count(v.rangesChecked)}/${count(v.rangesTotal)}`,
                count(v.rowsCompared),
                count(v.missingInTarget),
                count(v.extraInTarget),
                count(v.different),
                count(v.repaired),
                count(v.repairs.length),
                v.startedAt,
              ]),
            ) + more(page.nextCursor),
      );
    },
  );
}
