#!/usr/bin/env node
// A local Unleash server for development and tests: installs unleash-server into .tideway/unleash/,
// creates its PostgreSQL database, starts it in the background and waits until it is healthy.
// Plain Node ESM with no dependencies: infra/bootstrap.mjs imports it before node_modules matters.
// Idempotent; silent when all is well.
//
// Usage:  node infra/unleash.mjs start|stop|status
//         import { ensureUnleash } from './unleash.mjs'; await ensureUnleash();
//
// Inputs (environment):
//   TIDEWAY_UNLEASH_PORT           HTTP port on 127.0.0.1 (default 4242). When it is not set and 4242 is
//                                  held by a process this checkout did not start (another checkout's
//                                  server, which may stop at any time), this checkout starts its own
//                                  server on a free port and every caller of ensureUnleash() gets that URL.
//   TIDEWAY_UNLEASH_ADMIN_TOKEN    admin API token created at first boot (default *:*.tideway-admin-dev-token)
//   TIDEWAY_UNLEASH_CLIENT_TOKEN   backend (client) token created at first boot
//                                  (default default:development.tideway-client-dev-token)
//   TIDEWAY_UNLEASH_DATABASE_URL   Unleash's own database (default postgres://postgres@127.0.0.1:5432/unleash_<hash>,
//                                  <hash> = first 10 hex digits of SHA-256 of this checkout's path: every checkout's
//                                  Unleash has a database of its own, so no checkout sees or changes another's flags)
//   TIDEWAY_BOOTSTRAP_VERBOSE=1    say what is checked
//
// Files (all under .tideway/unleash/, gitignored): package.json + node_modules (unleash-server),
// server.log (truncated at each start), server.pid (pid, port and database of the server this script started), .lock
// (held while installing or starting, so concurrent callers such as parallel test files do not race).
//
// Unleash creates INIT_*_API_TOKENS only on its first boot against an empty database (a new database gets them on its
// first boot); changing the token variables later needs dropping that database (or creating the tokens in the admin UI).
// A server this script started against another database (an older checkout used the shared `unleash` one) is stopped
// and started again against the configured one.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The unleash-server version Tideway runs (see /work/shared/STACK.md: runs on Node 20 with a warning). */
export const UNLEASH_SERVER_VERSION = '8.2.0';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const home = path.join(root, '.tideway', 'unleash');
const files = {
  packageJson: path.join(home, 'package.json'),
  installed: path.join(home, 'node_modules', 'unleash-server', 'package.json'),
  serverJs: path.join(home, 'node_modules', 'unleash-server', 'dist', 'server.js'),
  log: path.join(home, 'server.log'),
  pid: path.join(home, 'server.pid'),
  lock: path.join(home, '.lock'),
  guard: path.join(root, 'infra', 'unleash-guard.cjs'),
};
const HOST = '127.0.0.1';
/** This checkout's own Unleash database: `unleash_` + 10 hex digits of SHA-256 of the checkout's path. */
export const CHECKOUT_DATABASE = `unleash_${createHash('sha256').update(root).digest('hex').slice(0, 10)}`;

/**
 * The settings ensureUnleash uses, from the environment (see the header for the variables).
 * @returns {{ host: string, port: number, pinned: boolean, url: string, adminToken: string, clientToken: string, databaseUrl: string }}
 */
export function unleashSettings(env = process.env) {
  const port = Number(env.TIDEWAY_UNLEASH_PORT || 4242);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`TIDEWAY_UNLEASH_PORT must be a port number, got "${env.TIDEWAY_UNLEASH_PORT}"`);
  return {
    host: HOST,
    port,
    /** Whether the port was asked for (TIDEWAY_UNLEASH_PORT): then only that port is used. */
    pinned: Boolean(env.TIDEWAY_UNLEASH_PORT),
    url: `http://${HOST}:${port}`,
    adminToken: env.TIDEWAY_UNLEASH_ADMIN_TOKEN || '*:*.tideway-admin-dev-token',
    clientToken: env.TIDEWAY_UNLEASH_CLIENT_TOKEN || 'default:development.tideway-client-dev-token',
    databaseUrl: env.TIDEWAY_UNLEASH_DATABASE_URL || `postgres://postgres@127.0.0.1:5432/${CHECKOUT_DATABASE}`,
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Child processes get the caller's environment minus npm's per-script variables (`npm test` sets
// npm_config_* such as the workspace prefix, which would redirect the nested install) and NODE_OPTIONS
// (a test runner's loaders have no business in the server).
function cleanEnv(extra = {}) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key === 'NODE_OPTIONS' || key.startsWith('VITEST')) continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

function tcpAnswers(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `GET /health` → true only for 200 with `"health":"GOOD"`. */
function healthy(port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: '/health', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 && /"GOOD"/.test(body)));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function logTail(lines = 40) {
  if (!existsSync(files.log)) return '(no server.log)';
  return readFileSync(files.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') || '(server.log is empty)';
}

// server.pid holds the pid on its first line, the port it serves on the second and its database URL on the third
// (absent in files written before databases were per checkout: such a server used the shared `unleash` database).
function readPidFile() {
  if (!existsSync(files.pid)) return null;
  const [pidLine, portLine, databaseLine] = readFileSync(files.pid, 'utf8').split('\n');
  const pid = Number(pidLine);
  return Number.isInteger(pid) && pid > 0 ? { pid, port: Number(portLine) || null, databaseUrl: databaseLine || null } : null;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** `{ pid, port, databaseUrl }` from server.pid when that process is alive and is our Unleash server (guards against pid reuse). */
function ourServer() {
  const recorded = readPidFile();
  if (recorded === null || !alive(recorded.pid)) return null;
  try {
    const cmdline = readFileSync(`/proc/${recorded.pid}/cmdline`, 'utf8');
    if (!cmdline.includes(files.serverJs)) return null;
  } catch {
    // No /proc (not Linux): trust the pid file.
  }
  return recorded;
}

// A lock file created with O_EXCL; a lock whose holder is gone (or older than 10 minutes) is stale.
async function withLock(fn, waitMs = 180_000) {
  mkdirSync(home, { recursive: true });
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(files.lock, 'wx');
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      let stale = false;
      try {
        const holder = Number(readFileSync(files.lock, 'utf8').trim());
        stale = !alive(holder) || Date.now() - statSync(files.lock).mtimeMs > 600_000;
      } catch {
        continue; // released between our attempts
      }
      if (stale) {
        rmSync(files.lock, { force: true });
        continue;
      }
      if (Date.now() > until) throw new Error(`${files.lock} is held by another process for over ${waitMs / 1000} s`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(files.lock, { force: true });
  }
}

function installed() {
  try {
    return JSON.parse(readFileSync(files.installed, 'utf8')).version === UNLEASH_SERVER_VERSION && existsSync(files.serverJs);
  } catch {
    return false;
  }
}

function install(say) {
  if (installed()) return;
  say(`installing unleash-server@${UNLEASH_SERVER_VERSION} into ${path.relative(root, home)} (about a minute, once)`);
  writeFileSync(
    files.packageJson,
    `${JSON.stringify({ name: 'tideway-unleash', private: true, description: 'Local Unleash server for Tideway (infra/unleash.mjs)', dependencies: { 'unleash-server': UNLEASH_SERVER_VERSION } }, null, 2)}\n`,
  );
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: home, env: cleanEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0 || !installed()) {
    throw new Error(`npm install unleash-server@${UNLEASH_SERVER_VERSION} failed in ${home}:\n${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.slice(-3000)}`);
  }
}

function psql(databaseUrl, sql) {
  const url = new URL(databaseUrl);
  const args = ['-h', url.hostname || HOST, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres'), '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-tAc', sql];
  const env = cleanEnv(url.password ? { PGPASSWORD: decodeURIComponent(url.password) } : {});
  const r = spawnSync('psql', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw new Error(`could not run psql (is the PostgreSQL client installed?): ${r.error.message}`);
  return { ok: r.status === 0, out: (r.stdout ?? '').trim(), err: (r.stderr ?? '').trim() };
}

function ensureDatabase(databaseUrl, info) {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'unleash';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`Unleash database name "${name}" must be a plain identifier`);
  const found = psql(databaseUrl, `SELECT 1 FROM pg_database WHERE datname = '${name}'`);
  if (!found.ok) throw new Error(`could not look up the Unleash database with psql at ${url.hostname}:${url.port || 5432}: ${found.err}`);
  if (found.out === '1') return info(`database ${name} exists`);
  const created = psql(databaseUrl, `CREATE DATABASE "${name}"`);
  if (!created.ok && !/already exists/.test(created.err)) throw new Error(`could not create database ${name}: ${created.err}`);
  info(`created database ${name}`);
}

// The environment of the server and of its migration step.
function serverEnv(settings, extra = {}) {
  return cleanEnv({
    DATABASE_URL: settings.databaseUrl,
    DATABASE_SSL: 'false',
    HTTP_HOST: HOST,
    HTTP_PORT: String(settings.port),
    CHECK_VERSION: 'false',
    SEND_TELEMETRY: 'false',
    INIT_ADMIN_API_TOKENS: settings.adminToken,
    INIT_BACKEND_API_TOKENS: settings.clientToken,
    // Unleash allows 15 flag searches a minute by default; parallel test files share this server.
    SEARCH_FEATURES_RATE_LIMIT_PER_MINUTE: '600',
    NODE_NO_WARNINGS: '1',
    ...extra,
  });
}

// Unleash's schema migration, in a process of its own (under its database lock, as the server would
// take it). Why not let the server migrate: Unleash runs db-migrate at start, and db-migrate installs
// process-wide unhandledRejection/uncaughtException handlers that call process.exit(1). Any stray
// rejection then ends the server, e.g. a feature-lifecycle insert racing a flag deleted from the
// archive (the flag tests do that; CI lost its Unleash twice to it). The server is then started with
// DATABASE_DISABLE_MIGRATION=true and never loads db-migrate.
function migrateServerDb(settings) {
  const dist = path.dirname(files.serverJs);
  const url = (rel) => JSON.stringify(pathToFileURL(path.join(dist, rel)).href);
  const script = [
    `const { createConfig } = await import(${url('lib/create-config.js')});`,
    `const { migrateDb } = await import(${url('migrator.js')});`,
    `const { withDbLock } = await import(${url('lib/util/db-lock.js')});`,
    `const config = createConfig({});`,
    `await withDbLock(config.db, { logger: config.getLogger('tideway-migrate') })(migrateDb)(config);`,
    `process.exit(0);`,
  ].join('\n');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: home, env: serverEnv(settings), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  if (r.status !== 0) throw new Error(`Unleash schema migration failed (exit ${r.status ?? r.signal}):\n${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.slice(-3000)}`);
}

function startServer(settings) {
  migrateServerDb(settings);
  const log = openSync(files.log, 'w');
  try {
    // The guard logs signals, uncaught exceptions and the exit code to server.log; --trace-exit adds
    // the stack of a process.exit() call, so a server that stops mid-run says why.
    const child = spawn(process.execPath, ['--require', files.guard, '--trace-exit', files.serverJs], {
      cwd: home,
      detached: true,
      stdio: ['ignore', log, log],
      env: serverEnv(settings, { DATABASE_DISABLE_MIGRATION: 'true' }),
    });
    child.unref();
    writeFileSync(files.pid, `${child.pid}\n${settings.port}\n${settings.databaseUrl}\n`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

async function waitHealthy(settings, pid, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await healthy(settings.port)) {
      // Healthy, but is it ours? A server another checkout started on the same port at the same
      // moment may have won the bind, and ours exited on EADDRINUSE.
      if (pid !== null && !alive(pid)) throw new Error(`Unleash (pid ${pid}) exited while another process answers on port ${settings.port}. Last lines of ${files.log}:\n${logTail()}`);
      return;
    }
    if (pid !== null && !alive(pid)) throw new Error(`Unleash (pid ${pid}) exited during start. Last lines of ${files.log}:\n${logTail()}`);
    await sleep(250);
  }
  throw new Error(`Unleash did not answer GET ${settings.url}/health within ${timeoutMs / 1000} s. Last lines of ${files.log}:\n${logTail()}`);
}

/** A TCP port nothing listens on at the moment (bound to 127.0.0.1, then released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Makes sure a healthy Unleash answers on 127.0.0.1 and says where: installs unleash-server on first
 * use, creates its database, starts it detached and waits for `GET /health`. Quick when it already
 * answers.
 *
 * Which server: the one this checkout started (server.pid) when it is alive. Otherwise, with
 * TIDEWAY_UNLEASH_PORT set, whatever healthy Unleash serves that port, or a new one started there.
 * Without it, a new one on 4242, or, when 4242 is held by a process this checkout did not start, a
 * new one on a free port: a server some other checkout started can stop in the middle of a test run
 * (a CI run once failed that way), so this checkout never depends on one it does not own. Servers
 * sharing the Unleash database see the same flags.
 *
 * @param {{ timeoutMs?: number, verbose?: boolean, log?: (msg: string) => void }} [options]
 *   timeoutMs: how long to wait for health after starting (default 120000);
 *   log: where progress goes (default stderr, prefixed `unleash:`); verbose: also say what is checked.
 * @returns {Promise<{ url: string, adminToken: string, clientToken: string, pid: number | null, started: boolean }>}
 *   `pid` is the server this script started (null when something else serves a pinned port).
 * @throws Error with a clear message (and the server log tail) when no healthy server can be had.
 */
export async function ensureUnleash(options = {}) {
  const settings = unleashSettings();
  const say = options.log ?? ((msg) => console.error(`unleash: ${msg}`));
  const verbose = options.verbose ?? process.env.TIDEWAY_BOOTSTRAP_VERBOSE === '1';
  const info = (msg) => verbose && say(msg);
  const timeoutMs = options.timeoutMs ?? 120_000;
  const on = (port) => ({ ...settings, port, url: `http://${HOST}:${port}` });
  const result = (port, pid, started) => ({ url: on(port).url, adminToken: settings.adminToken, clientToken: settings.clientToken, pid, started });
  const usable = (server) => server !== null && (!settings.pinned || server.port === settings.port);

  let mine = ourServer();
  if (mine !== null && mine.databaseUrl !== settings.databaseUrl) {
    // Ours, but on another database (the shared one of older checkouts, or a changed setting): restart it on this one.
    say(`the Unleash server this checkout started (pid ${mine.pid}) uses ${mine.databaseUrl ?? 'the shared unleash database'}: restarting it on ${settings.databaseUrl}`);
    await withLock(async () => {
      // Another caller may have restarted it meanwhile.
      const again = ourServer();
      if (again !== null && again.databaseUrl !== settings.databaseUrl) await stopUnleash();
    });
    mine = ourServer();
  }
  if (settings.pinned) {
    // The asked-for port, whoever serves it.
    if (await healthy(settings.port)) {
      const pid = mine !== null && mine.port === settings.port ? mine.pid : null;
      info(`healthy at ${settings.url}${pid ? ` (pid ${pid})` : ' (not started by this checkout)'}`);
      return result(settings.port, pid, false);
    }
  } else if (mine !== null && (await healthy(mine.port))) {
    info(`healthy at ${on(mine.port).url} (pid ${mine.pid})`);
    return result(mine.port, mine.pid, false);
  }
  return withLock(async () => {
    // Another caller may have started it while we waited for the lock, or our server may be booting.
    const server = ourServer();
    if (server !== null && !usable(server)) {
      throw new Error(`the Unleash server started by this script (pid ${server.pid}) serves port ${server.port}, not ${settings.port}: stop it first (node infra/unleash.mjs stop)`);
    }
    if (server !== null) {
      info(`waiting for the Unleash server being started (pid ${server.pid})`);
      await waitHealthy(on(server.port), server.pid, timeoutMs);
      return result(server.port, server.pid, false);
    }
    let port = settings.port;
    if (await tcpAnswers(port)) {
      if (!settings.pinned) {
        port = await freePort();
        say(`port ${settings.port} is held by a process this checkout did not start (it may stop at any time): starting this checkout's own server on port ${port}`);
      } else {
        // Something listens on the asked-for port but is not (yet) a healthy Unleash: give it a moment, never start a second server there.
        try {
          await waitHealthy(settings, null, 15_000);
          return result(port, null, false);
        } catch {
          throw new Error(`port ${port} is taken by something that does not answer GET /health as Unleash; stop it or set another TIDEWAY_UNLEASH_PORT`);
        }
      }
    }
    install(say);
    ensureDatabase(settings.databaseUrl, info);
    const startedAt = Date.now();
    const pid = startServer(on(port));
    info(`started unleash-server@${UNLEASH_SERVER_VERSION} (pid ${pid}) on port ${port}, log in ${path.relative(root, files.log)}`);
    await waitHealthy(on(port), pid, timeoutMs);
    info(`healthy at ${on(port).url} after ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    return result(port, pid, true);
  });
}

/**
 * Stops the Unleash server this script started (the pid in server.pid, and only that process):
 * SIGTERM, then SIGKILL after `timeoutMs`. Does nothing when it is not running.
 * @returns {Promise<boolean>} whether a server was stopped
 */
export async function stopUnleash({ timeoutMs = 15_000 } = {}) {
  const pid = ourServer()?.pid ?? null;
  if (pid === null) {
    rmSync(files.pid, { force: true });
    return false;
  }
  process.kill(pid, 'SIGTERM');
  const until = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < until) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  while (alive(pid)) await sleep(50);
  rmSync(files.pid, { force: true });
  return true;
}

/**
 * What runs: `{ healthy, pid, url }`, for the server this checkout started when it is alive (pid set),
 * else for the configured port (pid null).
 */
export async function unleashStatus() {
  const settings = unleashSettings();
  const server = ourServer();
  const port = server !== null && (!settings.pinned || server.port === settings.port) ? server.port : settings.port;
  return { healthy: await healthy(port), pid: server !== null && server.port === port ? server.pid : null, url: `http://${HOST}:${port}` };
}

async function cli(command) {
  switch (command) {
    case 'start': {
      const r = await ensureUnleash();
      console.log(r.started ? `Unleash started at ${r.url} (pid ${r.pid})` : `Unleash already running at ${r.url}${r.pid ? ` (pid ${r.pid})` : ''}`);
      return 0;
    }
    case 'stop': {
      const stopped = await stopUnleash();
      console.log(stopped ? 'Unleash stopped' : 'Unleash was not running (nothing started by this script)');
      return 0;
    }
    case 'status': {
      const s = await unleashStatus();
      console.log(`${s.healthy ? 'healthy' : 'not answering'} at ${s.url}${s.pid ? ` (pid ${s.pid})` : ''}`);
      return s.healthy ? 0 : 3;
    }
    default:
      console.error('usage: node infra/unleash.mjs start|stop|status');
      return 2;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = await cli(process.argv[2]);
  } catch (error) {
    console.error(`unleash: ERROR: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
