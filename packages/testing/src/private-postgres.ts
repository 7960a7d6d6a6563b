import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './free-port.js';

const run = promisify(execFile);

/** How a server is stopped (`pg_ctl stop -m`): `fast` rolls back open transactions and checkpoints; `immediate` is a crash (recovery on the next start). */
export type PostgresStopMode = 'smart' | 'fast' | 'immediate';

/** Options of {@link startPrivatePostgres}. */
export interface PrivatePostgresOptions {
  /** `wal_level`. @defaultValue 'replica' (`'logical'` for logical replication) */
  readonly walLevel?: 'minimal' | 'replica' | 'logical';
  /** `shared_preload_libraries`, e.g. `['pg_stat_statements']`. @defaultValue [] */
  readonly sharedPreloadLibraries?: readonly string[];
  /** More server settings, each passed as `-c name=value` (values without single quotes). @defaultValue {} */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** Bound of every wait (initdb, start, stop), milliseconds. @defaultValue 30000 */
  readonly timeoutMs?: number;
  /** Directory of `initdb` and `pg_ctl`. @defaultValue the newest `/usr/lib/postgresql/<version>/bin` */
  readonly binDir?: string;
}

/** A PostgreSQL server of its own, for tests that restart, stop or crash it. */
export interface PrivatePostgres {
  /** The loopback port it listens on (127.0.0.1 only). */
  readonly port: number;
  /** The cluster's directory (data, socket, log); removed by {@link PrivatePostgres.stop}. */
  readonly dir: string;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  /** The URL of database `name` on this server. */
  urlFor(name: string): string;
  /** `CREATE DATABASE "<name>"`; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (`pg_ctl stop -m <mode>`, waiting until it is down), keeping its data. @defaultValue mode 'fast' */
  halt(mode?: PostgresStopMode): Promise<void>;
  /** Starts a halted server again, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Restarts the server: halts it (`-m <mode>`) and starts it again. @defaultValue mode 'fast' */
  restart(mode?: PostgresStopMode): Promise<void>;
  /** Halts the server, keeps it down for `ms` milliseconds, then starts it again. @defaultValue mode 'fast' */
  stopFor(ms: number, mode?: PostgresStopMode): Promise<void>;
  /** Whether the server is up (by its postmaster.pid). */
  running(): boolean;
  /** Stops the server at once (`-m immediate`) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

const PG_ROOT = '/usr/lib/postgresql';

/** The newest installed PostgreSQL's bin directory. @throws Error when none is installed. */
function defaultBinDir(): string {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(PG_ROOT, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error(`no PostgreSQL under ${PG_ROOT} (infra/bootstrap.mjs installs it: apt-get install postgresql)`);
  return join(PG_ROOT, versions[0], 'bin');
}

/** uid and gid of the `postgres` OS user (from /etc/passwd). */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error('running as root needs a "postgres" OS user to run the server (initdb refuses root)');
  return { uid: Number(uid), gid: Number(gid) };
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** `[command, args]` running `bin` as the `postgres` OS user when this process is root (`runuser -u postgres --`). */
function asServerUser(bin: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

/** Name prefix of cluster directories under the temporary directory. */
const DIR_PREFIX = 'tw-pg-';
/** File in a cluster directory naming the pid of the test process that owns it. */
const OWNER_FILE = 'owner.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/**
 * Stops and removes clusters left by test processes that died without cleaning up (a killed vitest
 * worker runs no exit hook): those whose owner pid is gone. Only directories this helper made.
 */
function reapOrphans(bin: string): void {
  const root = tmpdir();
  for (const name of readdirSync(root)) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(root, name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), 'utf8'));
    } catch {
      continue; // not ours, or still being made
    }
    if (!Number.isInteger(owner) || owner <= 0 || alive(owner)) continue;
    const data = join(dir, 'data');
    if (existsSync(join(data, 'postmaster.pid'))) {
      const [command, argv] = asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '10', 'stop']);
      spawnSync(command, argv, { timeout: 15_000, stdio: 'ignore', cwd: '/' });
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Clusters to stop if the test process exits without stopping them. */
const live = new Map<string, () => void>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const cleanup of live.values()) cleanup();
  });
}

/**
 * Starts a PostgreSQL cluster of its own for one test file: `initdb` into a temporary directory
 * (trust authentication, user `postgres`), then `pg_ctl start` on a free loopback port with its
 * socket in that directory. Fault tests restart, stop and crash it without touching the shared
 * server other tests use. Runs the server as the `postgres` OS user when the test runs as root
 * (`runuser -u postgres --`), as PostgreSQL refuses to run as root. Durability settings are off
 * (`fsync`, `full_page_writes`): a crash of the server (`-m immediate`) still recovers from WAL,
 * only an OS crash could lose data, which a test does not survive anyway. If the test process
 * exits without {@link PrivatePostgres.stop}, an exit hook stops the server and removes the directory;
 * should the process be killed before it could run, the next start reaps the cluster (its
 * directory names the owner pid, which is gone).
 *
 * Recipe from /work/shared/STACK.md (logical replication and pg_stat_statements need a private
 * cluster: `walLevel: 'logical'`, `sharedPreloadLibraries: ['pg_stat_statements']`).
 *
 * @throws Error when PostgreSQL is not installed, or initdb or the start fails or takes longer than
 *   `timeoutMs` (with the server log).
 * @example
 * ```ts
 * const server = await startPrivatePostgres({ walLevel: 'logical' });
 * const url = await server.createDatabase('app');
 * await server.restart();          // -m fast
 * await server.stopFor(10_000);    // down for 10 s, then up again
 * await server.stop();             // gone, directory removed
 * ```
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const bin = options.binDir ?? defaultBinDir();
  const timeoutMs = options.timeoutMs ?? 30_000;
  reapOrphans(bin);
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  writeFileSync(join(dir, OWNER_FILE), String(process.pid));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  if (isRoot()) {
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
  }
  const exec = async (tool: string, args: string[]) => {
    const [command, argv] = asServerUser(join(bin, tool), args);
    try {
      await run(command, argv, { timeout: timeoutMs, killSignal: 'SIGKILL', cwd: dir });
    } catch (error) {
      const serverLog = existsSync(log) ? readFileSync(log, 'utf8').slice(-4000) : '';
      const e = error as { stderr?: string; message: string };
      throw new Error(`${tool} ${args.join(' ')} failed: ${e.stderr || e.message}\n${serverLog}`);
    }
  };
  const pgCtlStop = (mode: PostgresStopMode) => exec('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', String(Math.ceil(timeoutMs / 1000)), 'stop']);
  const cleanup = () => {
    if (existsSync(join(data, 'postmaster.pid'))) {
      const [command, argv] = asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '10', 'stop']);
      spawnSync(command, argv, { timeout: 15_000, stdio: 'ignore', cwd: '/' });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  live.set(dir, cleanup);
  installExitHook();

  let port = 0;
  try {
    await exec('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    port = await freePort();
    const settings: Record<string, string | number | boolean> = {
      listen_addresses: '127.0.0.1',
      fsync: 'off',
      full_page_writes: 'off',
      wal_level: options.walLevel ?? 'replica',
      ...(options.sharedPreloadLibraries?.length ? { shared_preload_libraries: options.sharedPreloadLibraries.join(',') } : {}),
      ...options.settings,
    };
    const serverArgs = [`-p ${port}`, `-k ${dir}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}='${String(v)}'`)].join(' ');
    const start = () => exec('pg_ctl', ['-D', data, '-l', log, '-o', serverArgs, '-w', '-t', String(Math.ceil(timeoutMs / 1000)), 'start']);
    await start();
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const urlFor = (name: string) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
    const running = () => existsSync(join(data, 'postmaster.pid'));
    let stopped = false;
    return {
      port,
      dir,
      url,
      urlFor,
      createDatabase: async (name) => {
        const client = new pg.Client({ connectionString: url });
        client.on('error', () => undefined);
        await client.connect();
        try {
          await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
        } finally {
          await client.end();
        }
        return urlFor(name);
      },
      halt: (mode = 'fast') => pgCtlStop(mode),
      start,
      restart: async (mode = 'fast') => {
        await pgCtlStop(mode);
        await start();
      },
      stopFor: async (ms, mode = 'fast') => {
        await pgCtlStop(mode);
        await new Promise((resolve) => setTimeout(resolve, ms));
        await start();
      },
      running,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        if (running()) await pgCtlStop('immediate').catch(() => undefined);
        live.delete(dir);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    live.delete(dir);
    cleanup();
    throw error;
  }
}
