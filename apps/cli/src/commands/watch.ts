import { setTimeout as sleep } from 'node:timers/promises';
import type { MultiBar, SingleBar } from 'cli-progress';
import { Option, type Command } from 'commander';
import type { Divergences, MigrationResource } from '../api-types.js';
import { contextOf, positiveInt, REF, seg, subcommand, type CliRuntime } from '../context.js';
import { TERMINAL_STATUSES } from '../domain.js';
import { EXIT_CODES } from '../exit-codes.js';
import { count, duration, percent } from '../format.js';
import type { Io } from '../io.js';
import { rampOf, rampText, throttledText } from './render-migration.js';

/** One reading: the migration and its divergence figures. */
interface Reading {
  readonly migration: MigrationResource;
  readonly divergences: Divergences;
}

/** How a reading is shown: bars on a terminal, lines on a pipe, JSON lines under `--json`. */
interface View {
  render(reading: Reading): void;
  /** Ends the display, with a last line when there is one. */
  stop(last?: string): void;
}

function headerText(m: MigrationResource): string {
  return `${m.name} ${m.phase}/${m.status} v${m.version}`;
}

function divergenceText(d: Divergences): string {
  // With no samples the Wilson upper bound is 100 %: say there is nothing to judge yet.
  if (d.totals.samples === 0) return 'divergence: no samples yet';
  return `divergence ${percent(d.rate)} (≤${percent(d.rateUpper95)} at 95%, ${count(d.totals.samples)} samples)`;
}

function backfillText(m: MigrationResource): string {
  const p = m.progress;
  if (p.chunksTotal === undefined) return 'backfill not started';
  const done = p.chunksDone ?? 0;
  const ratio = p.chunksTotal > 0 ? done / p.chunksTotal : p.completedAt ? 1 : 0;
  const eta = p.completedAt ? 'done' : `ETA ${duration(p.etaSeconds)}`;
  return `backfill ${count(done)}/${count(p.chunksTotal)} chunks ${percent(ratio, 0)} ${count(p.rowsPerSecond ?? 0)} rows/s ${eta}${p.throttled ? ` throttled: ${throttledText(p)}` : ''}`;
}

/** One line per reading, for pipes and files. */
class LineView implements View {
  constructor(private readonly io: Io) {}

  render({ migration: m, divergences: d }: Reading): void {
    const parts = [`${new Date().toISOString()} ${headerText(m)}`, backfillText(m), divergenceText(d)];
    const ramp = rampText(m);
    if (ramp) parts.push(`ramp ${ramp}`);
    this.io.out(`${parts.join(' | ')}\n`);
  }

  stop(last?: string): void {
    if (last) this.io.out(`${last}\n`);
  }
}

/** One JSON object per line: `{ migration, divergences }`. */
class JsonLinesView implements View {
  constructor(private readonly io: Io) {}

  render(reading: Reading): void {
    this.io.out(`${JSON.stringify(reading)}\n`);
  }

  stop(): void {}
}

/** cli-progress bars: status line, backfill bar, divergence line, ramp bar when there is a ramp. */
class BarsView implements View {
  readonly #multibar: MultiBar;
  readonly #header: SingleBar;
  readonly #backfill: SingleBar;
  readonly #divergence: SingleBar;
  #ramp: SingleBar | null = null;

  /** cli-progress is loaded only when bars are drawn, so other commands start faster. */
  static async create(io: Io): Promise<BarsView> {
    const progress = await import('cli-progress');
    const multibar = new progress.MultiBar(
      { stream: io.stdout, hideCursor: true, clearOnComplete: false, stopOnComplete: false, barsize: 30, autopadding: true, forceRedraw: true, format: '{text}' },
      progress.Presets.shades_classic,
    );
    return new BarsView(io, multibar);
  }

  private constructor(
    private readonly io: Io,
    multibar: MultiBar,
  ) {
    this.#multibar = multibar;
    this.#header = this.#multibar.create(1, 0, { text: '' });
    this.#backfill = this.#multibar.create(1, 0, { rate: '0', eta_text: '-', note: ' not started' }, {
      format: 'backfill   {bar} {percentage}% | {value}/{total} chunks | {rate} rows/s | ETA {eta_text}{note}',
    });
    this.#divergence = this.#multibar.create(1, 0, { text: '' });
  }

  render({ migration: m, divergences: d }: Reading): void {
    this.#header.update(0, { text: `${headerText(m)}  allowed: ${m.allowedActions.join(', ') || 'none'}` });
    const p = m.progress;
    if (p.chunksTotal !== undefined) {
      const total = Math.max(1, p.chunksTotal);
      this.#backfill.setTotal(total);
      this.#backfill.update(Math.min(total, p.chunksDone ?? 0), {
        rate: count(p.rowsPerSecond ?? 0),
        eta_text: p.completedAt ? 'done' : duration(p.etaSeconds),
        note: p.throttled ? ` | throttled: ${throttledText(p)}` : '',
      });
    }
    this.#divergence.update(0, { text: divergenceText(d) });
    const ramp = rampOf(m);
    if (ramp) {
      this.#ramp ??= this.#multibar.create(100, 0, { text: '' }, { format: 'ramp       {bar} {text}' });
      this.#ramp.update(ramp.percent, { text: rampText(m) ?? '' });
    }
    this.#multibar.update();
  }

  stop(last?: string): void {
    this.#multibar.stop();
    if (last) this.io.out(`${last}\n`);
  }
}

/** `tideway watch <migration>`: live progress until the migration is completed or aborted. */
export function registerWatchCommand(program: Command, cli: CliRuntime): void {
  subcommand(program, 'watch <migration>', `live progress until the migration is completed or aborted; ${REF}`)
    .addOption(new Option('--interval-ms <ms>', 'time between readings, milliseconds').argParser(positiveInt).default(1000))
    .option('--once', 'render one reading and exit')
    .action(async (ref: string, opts: { intervalMs: number; once?: boolean }, command: Command) => {
      const ctx = contextOf(command, cli);
      const id = await ctx.migrationId(ref);
      const view: View = ctx.json ? new JsonLinesView(ctx.io) : ctx.io.isTTY ? await BarsView.create(ctx.io) : new LineView(ctx.io);
      const interrupted = new AbortController();
      const onSignal = () => interrupted.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let last: string | undefined;
      try {
        for (;;) {
          const [migration, divergences] = await Promise.all([
            ctx.client.get<MigrationResource>(`/v1/migrations/${seg(id)}`),
            ctx.client.get<Divergences>(`/v1/migrations/${seg(id)}/divergences`, { limit: 1 }),
          ]);
          view.render({ migration, divergences });
          if (TERMINAL_STATUSES.includes(migration.status)) {
            last = `${migration.name} is ${migration.status}`;
            return;
          }
          if (opts.once) return;
          try {
            await sleep(opts.intervalMs, undefined, { signal: interrupted.signal });
          } catch {
            last = 'interrupted';
            ctx.setExitCode(EXIT_CODES.interrupted);
            return;
          }
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        view.stop(ctx.json ? undefined : last);
      }
    });
}
