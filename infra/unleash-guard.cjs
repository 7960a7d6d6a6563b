// Preloaded into the local Unleash server by infra/unleash.mjs (node --require). It changes nothing
// in Unleash; it writes to server.log why the process ends, so a server that stops in the middle of
// a test run can be explained: signals received, uncaught exceptions, and the exit code.
'use strict';
const stamp = () => new Date().toISOString();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  const onSignal = () => {
    console.error(`[tideway-guard ${stamp()}] received ${signal} (pid ${process.pid}, parent ${process.ppid})`);
    // Listening takes the signal's default action away: when nobody else (Unleash's graceful
    // shutdown, registered once it has booted) handles it, end the process as the signal would.
    if (process.listenerCount(signal) === 1) {
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    }
  };
  process.prependListener(signal, onSignal);
}
process.prependListener('uncaughtExceptionMonitor', (error, origin) => console.error(`[tideway-guard ${stamp()}] ${origin}:`, error));
process.on('exit', (code) => console.error(`[tideway-guard ${stamp()}] exiting with code ${code}`));
