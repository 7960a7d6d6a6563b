import { processIo } from './io.js';
import { run } from './program.js';

/** Entry point of `tideway`: run, let stdout and stderr drain, exit with the code. */
const code = await run(process.argv.slice(2), processIo());
await Promise.all([new Promise((resolve) => process.stdout.write('', resolve)), new Promise((resolve) => process.stderr.write('', resolve))]);
process.exit(code);
