import closeWithGrace from 'close-with-grace';
import { ConfigError, loadWorkerConfig } from './config.js';
import { startWorker } from './worker.js';

/** `tideway` worker process: SIGTERM/SIGINT → finish the running chunk, then exit. */
let config;
try {
  config = loadWorkerConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`tideway worker: configuration error: ${error.message}`);
    process.exit(2);
  }
  throw error;
}
const verbose = config.logLevel === 'debug' || config.logLevel === 'trace' || config.logLevel === 'info';
const runtime = await startWorker(config, (msg, extra) => {
  if (verbose) console.error(JSON.stringify({ level: 'info', msg, ...(extra as object) }));
});
if (process.send) process.send({ ready: true });
closeWithGrace({ delay: 30_000 }, async ({ err }) => {
  if (err) console.error('tideway worker: closing after error', err);
  await runtime.close();
});
