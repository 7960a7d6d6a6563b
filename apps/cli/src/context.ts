import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isUuid, SLUG_PATTERN } from '@tideway/core';
import { ApiClient } from './api-client.js';
import { ApiError } from './api-error.js';
import type { ExitCode } from './exit-codes.js';
import { json as toJson } from './format.js';
import type { Io } from './io.js';
import { UsageError } from './usage-error.js';

/** One run of the CLI: its streams, and the exit code a command sets when it is not 0. */
export interface CliRuntime {
  readonly io: Io;
  exitCode: ExitCode;
}

/** Where the control plane is unless `--url` or `TIDEWAY_URL` says otherwise. */
export const DEFAULT_URL = 'http://127.0.0.1:7070';
/** Per-request timeout unless `--timeout-ms` says otherwise, milliseconds. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** What every command gets: the API client, the output mode and the streams. */
export interface CommandContext {
  readonly client: ApiClient;
  /** `--json`: print raw answers instead of tables. */
  readonly json: boolean;
  readonly io: Io;
  /** Prints `value` as JSON under `--json`, else the text `render` returns. */
  print(value: unknown, render: () => string): void;
  /** Sets the exit code of this run (for outcomes that are not errors, like differences found). */
  setExitCode(code: ExitCode): void;
  /**
   * The id of the migration `ref` names: `ref` itself when it is a UUID, else the id of the migration
   * with that name (`GET /v1/migrations?name=`).
   * @throws UsageError when `ref` is neither a UUID nor a name (slug); ApiError `MIGRATION_NOT_FOUND`
   *   when no migration has that name.
   */
  migrationId(ref: string): Promise<string>;
}

interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  timeoutMs?: number;
}

/** Parses a positive integer option value; commander turns the throw into a usage error (exit 2). */
export function positiveInt(value: string): number {
  if (!/^\d{1,15}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

/**
 * Adds `--url`, `--token`, `--json` and `--timeout-ms`. On the program `--url` and `--token` also
 * read the environment; on each command they only take what is typed there, so
 * `tideway --json migrations list` and `tideway migrations list --json` both work.
 */
export function addGlobalOptions(command: Command, root: boolean): Command {
  // On the program commander appends "(env: …)" itself.
  const env = (name: string) => (root ? '' : `, env ${name}`);
  const url = new Option('--url <url>', `control plane base URL (default ${DEFAULT_URL}${env('TIDEWAY_URL')})`);
  const token = new Option('--token <token>', `API token, sent as Authorization: Bearer; never printed${root ? '' : ' (env TIDEWAY_TOKEN)'}`);
  const timeout = new Option('--timeout-ms <ms>', `per-request timeout in milliseconds (default ${DEFAULT_TIMEOUT_MS})`).argParser(positiveInt);
  if (root) {
    url.env('TIDEWAY_URL');
    token.env('TIDEWAY_TOKEN');
  }
  return command
    .addOption(url)
    .addOption(token)
    .addOption(new Option('--json', 'print the raw JSON answer'))
    .addOption(timeout);
}

/** The global options of `command`: the value typed nearest to the command wins, then env, then defaults. */
function globalOptions(command: Command): GlobalOptions {
  const merged: GlobalOptions = {};
  for (let c: Command | null = command; c; c = c.parent) {
    const opts = c.opts<GlobalOptions>();
    merged.url ??= opts.url;
    merged.token ??= opts.token;
    merged.json ??= opts.json;
    merged.timeoutMs ??= opts.timeoutMs;
  }
  return merged;
}

/** Builds the context of a command from its options. @throws UsageError for a URL that is not http(s). */
export function contextOf(command: Command, cli: CliRuntime): CommandContext {
  const io = cli.io;
  const opts = globalOptions(command);
  const baseUrl = opts.url || DEFAULT_URL;
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new UsageError(`--url "${baseUrl}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--url must be http or https, not ${parsed.protocol}`);
  const client = new ApiClient({ baseUrl, token: opts.token || null, timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  const json = opts.json === true;
  return {
    client,
    json,
    io,
    print: (value, render) => io.out(json ? toJson(value) : render()),
    setExitCode: (code) => {
      cli.exitCode = code;
    },
    migrationId: async (ref) => {
      if (isUuid(ref)) return ref;
      if (!SLUG.test(ref)) throw new UsageError(`"${ref}" is neither a migration id (UUID) nor a migration name (lower-case slug)`);
      const page = await client.get<{ items: { id: string }[] }>('/v1/migrations', { name: ref, limit: 1 });
      const found = page.items[0];
      if (!found) throw new ApiError(404, 'MIGRATION_NOT_FOUND', `no migration named "${ref}"`, { name: ref });
      return found.id;
    },
  };
}

/** Migration names, as the spec schema allows them (`SLUG_PATTERN` of @tideway/core). */
const SLUG = new RegExp(SLUG_PATTERN);

/**
 * Reads a JSON document from a file, or from stdin when `path` is `-`.
 * @throws UsageError when the file cannot be read or is not JSON.
 */
export async function readJsonInput(path: string, io: Io): Promise<unknown> {
  let text: string;
  try {
    text = path === '-' ? await io.readStdin() : await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`${path === '-' ? 'stdin' : path} is not valid JSON: ${(error as Error).message}`);
  }
}

/** `--limit`, `--cursor` and `--all` of a command that lists a keyset-paginated resource. */
export interface PageOptions {
  limit?: number;
  cursor?: string;
  all?: boolean;
}

/** Adds {@link PageOptions} to `command`; `max` is the route's largest `limit`. */
export const pageOptions = (command: Command, max: number): Command =>
  command
    .addOption(new Option('--limit <n>', `items per page (1–${max})`).argParser(positiveInt))
    .option('--cursor <cursor>', 'continue after this cursor (from a previous page)')
    .option('--all', 'follow the cursors and print every page');

/** The hint printed under a page that is not the last. */
export const more = (nextCursor: string | null): string => (nextCursor ? `more: --cursor ${nextCursor} (or --all)\n` : '');

/** How every `<migration>` argument is described in help: {@link CommandContext.migrationId} resolves it. */
export const REF = '<migration> is its id or its name';

/** `encodeURIComponent` for path segments. */
export const seg = (value: string): string => encodeURIComponent(value);

/** Adds a subcommand that takes the global options too. */
export function subcommand(parent: Command, nameAndArgs: string, description: string): Command {
  return addGlobalOptions(parent.command(nameAndArgs).description(description), false);
}

/**
 * Fetches one page, or every page from `cursor` on when `all` is set (then `nextCursor` is `null`).
 */
export async function collectPages<T>(
  fetchPage: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>,
  all: boolean,
  cursor: string | undefined,
): Promise<{ items: T[]; nextCursor: string | null }> {
  const first = await fetchPage(cursor);
  if (!all) return first;
  const items = [...first.items];
  let next = first.nextCursor;
  while (next !== null) {
    const page = await fetchPage(next);
    items.push(...page.items);
    next = page.nextCursor;
  }
  return { items, nextCursor: null };
}
