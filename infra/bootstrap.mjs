#!/usr/bin/env node
// Tideway bootstrap, used by `npm test`, `npm start` and `npm run demo`. Plain Node, no dependencies,
// because it runs before node_modules exists. Idempotent; silent when all is well.
//
// Inputs (environment):
//   TIDEWAY_DATABASE_URL  orchestrator database (default postgres://postgres@127.0.0.1:5432/tideway)
//   TIDEWAY_REDIS_URL     Redis (default redis://127.0.0.1:6379)
//   TIDEWAY_BOOTSTRAP_VERBOSE=1  say what is checked
//
// Steps: 1. `npm ci` when node_modules is missing or older than package-lock.json;
// 2. PostgreSQL and Redis answer (start them when installed but down; install them with apt-get when
//    missing and running as root); 3. create the orchestrator database and apply its schema migrations.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureUnleash } from './unleash.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const verbose = process.env.TIDEWAY_BOOTSTRAP_VERBOSE === '1';
const say = (msg) => console.error(`bootstrap: ${msg}`);
const info = (msg) => verbose && say(msg);

function fail(msg) {
  say(`ERROR: ${msg}`);
  process.exit(1);
}

function run(cmd, args, { quiet = true, env } = {}) {
  info(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit', env: env ?? process.env, encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

function which(cmd) {
  return run('sh', ['-c', `command -v ${cmd}`]).ok;
}

// 1. Dependencies -------------------------------------------------------------------------------
function ensureDependencies() {
  const lock = path.join(root, 'package-lock.json');
  const stamp = path.join(root, 'node_modules', '.tideway-lock-sha256');
  const want = createHash('sha256').update(readFileSync(lock)).digest('hex');
  const have = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : null;
  if (have === want) return info('dependencies up to date');
  say(existsSync(path.join(root, 'node_modules')) ? 'package-lock.json changed: npm ci' : 'installing dependencies: npm ci');
  const r = run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { quiet: false });
  if (!r.ok) fail('npm ci failed (see above)');
  writeFileSync(stamp, `${want}\n`);
}

// 2. Services -----------------------------------------------------------------------------------
function tcpAnswers(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitFor(what, check, seconds = 30) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`${what} did not come up within ${seconds} s`);
  return false;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
let aptUpdated = false;
function aptInstall(packages) {
  if (!isRoot) fail(`${packages.join(', ')} missing and not running as root: install them (apt-get install -y ${packages.join(' ')})`);
  say(`installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) {
    if (!run('apt-get', ['update'], { env }).ok) fail('apt-get update failed');
    aptUpdated = true;
  }
  const r = run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env });
  if (!r.ok) fail(`apt-get install ${packages.join(' ')} failed:\n${r.out.slice(-2000)}`);
}

function postgresVersions() {
  return existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql').sort() : [];
}

// A freshly installed cluster asks for passwords on TCP; Tideway's local default is trust on loopback.
function trustLoopback(version) {
  const hba = `/etc/postgresql/${version}/main/pg_hba.conf`;
  if (!existsSync(hba)) return;
  const text = readFileSync(hba, 'utf8');
  if (text.includes('# tideway: trust loopback')) return;
  writeFileSync(hba, `# tideway: trust loopback (local development and CI only)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n${text}`);
}

async function ensurePostgres(url) {
  const host = url.hostname || '127.0.0.1';
  const port = Number(url.port || 5432);
  if (await tcpAnswers(host, port)) return info('PostgreSQL answers');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) fail(`PostgreSQL at ${host}:${port} does not answer (not local, so not started here)`);
  if (postgresVersions().length === 0) aptInstall(['postgresql', 'postgresql-contrib']);
  const version = postgresVersions().at(-1);
  if (!version) fail('PostgreSQL is installed but no cluster was found in /etc/postgresql');
  trustLoopback(version);
  say(`starting PostgreSQL ${version}`);
  const r = run('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start']);
  if (!r.ok && !/already running/.test(r.out)) fail(`could not start PostgreSQL:\n${r.out}`);
  await waitFor('PostgreSQL', () => tcpAnswers(host, port));
}

async function ensureRedis(url) {
  const host = url.hostname || '127.0.0.1';
  const port = Number(url.port || 6379);
  if (await tcpAnswers(host, port)) return info('Redis answers');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) fail(`Redis at ${host}:${port} does not answer (not local, so not started here)`);
  if (!which('redis-server')) aptInstall(['redis-server']);
  say('starting Redis');
  const r = run('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '-::1', '--port', String(port), '--save', '', '--appendonly', 'no']);
  if (!r.ok) fail(`could not start Redis:\n${r.out}`);
  await waitFor('Redis', () => tcpAnswers(host, port));
}

// 3. Orchestrator database and schema -----------------------------------------------------------
function migrate() {
  const r = run(process.execPath, ['--import', 'tsx', path.join(root, 'infra', 'migrate.ts')]);
  if (!r.ok) fail(`schema migration failed:\n${r.out}`);
  info(r.out.trim());
}

const databaseUrl = new URL(process.env.TIDEWAY_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/tideway');
const redisUrl = new URL(process.env.TIDEWAY_REDIS_URL || 'redis://127.0.0.1:6379');
ensureDependencies();
await ensurePostgres(databaseUrl);
await ensureRedis(redisUrl);
if (process.env.TIDEWAY_SKIP_UNLEASH !== '1') await ensureUnleash({ log: say }).catch((error) => fail(`Unleash: ${error.message}`));
migrate();
