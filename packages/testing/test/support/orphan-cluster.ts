/** Starts a private cluster, prints its directory and URL, then waits to be killed (for the reaping test). */
import { startPrivatePostgres } from '../../src/index.js';

const server = await startPrivatePostgres();
process.stdout.write(`ORPHAN ${JSON.stringify({ dir: server.dir, url: server.url })}\n`);
process.send?.({ ready: true });
setInterval(() => undefined, 60_000);
