/**
 * `npm run test:model -- --runs N --seed S [--max-commands K] [--no-shrink] [--path P]`: runs the model-based
 * test outside vitest, prints one JSON line per sequence and a JSON summary (with the failing seed,
 * path and shrunk sequence); exits 1 on a failure.
 */
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { emptyStats, runModel } from './model.js';
import { openWorld } from './world.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '100' }, seed: { type: 'string' }, 'max-commands': { type: 'string', default: '10' }, 'no-shrink': { type: 'boolean', default: false }, path: { type: 'string' } },
});
const runs = Number(values.runs);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);
const maxCommands = Number(values['max-commands']);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed) || !Number.isInteger(maxCommands) || maxCommands < 0) {
  console.error('usage: test:model -- --runs N (≥ 1) --seed S (integer) [--max-commands K (≥ 0)] [--no-shrink]');
  process.exit(2);
}
const world = await openWorld('model_cli');
const started = Date.now();
let exit = 0;
try {
  const stats = emptyStats();
  const details = await runModel(world, {
    stats,
    runs,
    seed,
    maxCommands,
    shrink: !values['no-shrink'],
    ...(values.path === undefined ? {} : { path: values.path }),
    onSequence: (n, log, ms, error) => console.log(JSON.stringify({ sequence: n, ms, commands: log, ...(error ? { failed: String((error as Error).message ?? error).slice(0, 2000) } : {}) })),
  });
  const summary = {
    runs: details.numRuns,
    seed: details.seed,
    failed: details.failed,
    seconds: Math.round((Date.now() - started) / 1000),
    covered: stats,
    ...(details.failed ? { error: String((details.errorInstance as Error)?.stack ?? details.errorInstance).slice(0, 4000), path: details.counterexamplePath, shrunk: details.counterexample ? String(details.counterexample[0]) : undefined, report: fc.defaultReportMessage(details) } : {}),
  };
  console.log(JSON.stringify(summary, null, 2));
  exit = details.failed ? 1 : 0;
} finally {
  await world.close();
}
process.exit(exit);
