import { Option, type Command } from 'commander';
import { DIVERGENCE_KINDS, type Divergences, type DivergenceWindow } from '../api-types.js';
import { contextOf, positiveInt, REF, seg, subcommand, type CliRuntime } from '../context.js';
import { count, orDash, percent, table } from '../format.js';

function windowLine(label: string, w: DivergenceWindow): string {
  const p99 = w.oldP99Ms === null && w.newP99Ms === null ? '' : `, p99 old ${orDash(w.oldP99Ms)} ms / new ${orDash(w.newP99Ms)} ms`;
  return (
    `  ${label.padEnd(10)} ${count(w.samples)} samples, ${count(w.mismatches)} mismatches, ${count(w.errors)} errors, ` +
    `rate ${percent(w.rate)} (≤${percent(w.rateUpper95)} at 95%), dual writes ${count(w.dualWrites)} (${count(w.dualWriteFailures)} failed)${p99}\n`
  );
}

function render(d: Divergences): string {
  let out = `divergence rate ${percent(d.rate)} (≤${percent(d.rateUpper95)} at 95%) over ${count(d.totals.samples)} samples\n`;
  out += windowLine('all', d.all) + windowLine('last 5m', d.window5m);
  out += d.items.length
    ? table(
        ['KEY', 'KIND', 'COUNT', 'FIRST SEEN', 'LAST SEEN', 'DIFF PATHS', 'ERROR'],
        d.items.map((i) => [i.key, i.kind, count(i.count), i.firstSeen, i.lastSeen, i.diffPaths.join(',') || '-', orDash(i.error)]),
      )
    : 'no diverging keys\n';
  if (d.nextCursor) out += `more: GET …/divergences?cursor=${d.nextCursor}\n`;
  return out;
}

/** `tideway divergences <migration>`: the divergence rate and the ledger of diverging keys. */
export function registerDivergenceCommand(program: Command, cli: CliRuntime): void {
  subcommand(program, 'divergences <migration>', `divergence rate (Wilson upper bound) and the diverging keys; ${REF}`)
    .addOption(new Option('--kind <kind>', 'only this kind').choices(DIVERGENCE_KINDS))
    .addOption(new Option('--limit <n>', 'keys to list (1–1000)').argParser(positiveInt))
    .option('--cursor <cursor>', 'continue the key list after this cursor')
    .action(async (ref: string, opts: { kind?: string; limit?: number; cursor?: string }, command: Command) => {
      const ctx = contextOf(command, cli);
      const id = await ctx.migrationId(ref);
      const d = await ctx.client.get<Divergences>(`/v1/migrations/${seg(id)}/divergences`, { kind: opts.kind, limit: opts.limit, cursor: opts.cursor });
      ctx.print(d, () => render(d));
    });
}
