import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '@tideway/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, cli, ordersSpec, parseJson, startControlPlane, type CliOptions, type CliResult, type ControlPlane } from './support/harness.js';

const BIN = fileURLToPath(new URL('../bin/tideway.mjs', import.meta.url));

let cp: ControlPlane;
const run = (args: string[], options?: CliOptions) => cli(cp.url, args, options);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

beforeAll(async () => {
  cp = await startControlPlane('cli_migr');
});

afterAll(async () => {
  await cp?.close();
});

describe('tideway migrations create / list / get', () => {
  it('creates from a file and from stdin, lists with filters and pages, and reads one', async () => {
    const created = await run(['migrations', 'create', '-f', await cp.file('a.json', ordersSpec('orders-a'))]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toBe('');
    expect(created.stdout).toMatch(new RegExp(`^created migration orders-a \\((${UUID.source})\\): draft/active, version 1\\n`));
    const idA = UUID.exec(created.stdout)?.[0] as string;
    expect(created.stdout).toContain(`next: tideway migrations start ${idA}`);

    const fromStdin = await run(['migrations', 'create', '-f', '-', '--json'], { stdin: JSON.stringify(ordersSpec('orders-b')) });
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    const b = parseJson(fromStdin);
    expect(b).toMatchObject({ name: 'orders-b', phase: 'draft', status: 'active', version: 1, allowedActions: ['start', 'abort'] });

    const [table, json, paged, all, globalFirst] = await Promise.all([
      run(['migrations', 'list']),
      run(['migrations', 'list', '--json', '--phase', 'draft', '--status', 'active']),
      run(['migrations', 'list', '--limit', '1']),
      run(['migrations', 'list', '--limit', '1', '--all', '--json']),
      run(['--json', 'migrations', 'list', '--phase', 'backfill']),
    ]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+PHASE\s+STATUS\s+VERSION\s+UPDATED$/);
    // Newest first.
    expect(lines[1]).toMatch(new RegExp(`^${b.id}\\s+orders-b\\s+draft\\s+active\\s+1\\s+\\d{4}-`));
    expect(lines[2]).toMatch(new RegExp(`^${idA}\\s+orders-a\\s+draft\\s+active\\s+1\\s+`));
    expect(lines).toHaveLength(3);

    expect(parseJson(json).items.map((m: { name: string }) => m.name)).toEqual(['orders-b', 'orders-a']);
    expect(paged.stdout).toMatch(/^more: --cursor [A-Za-z0-9_-]+ \(or --all\)$/m);
    expect(paged.stdout.split('\n').filter((l) => l.includes('orders-'))).toHaveLength(1);
    expect(parseJson(all)).toEqual({ items: [expect.objectContaining({ name: 'orders-b' }), expect.objectContaining({ name: 'orders-a' })], nextCursor: null });
    expect(parseJson(globalFirst)).toEqual({ items: [], nextCursor: null });

    const [get, getJson, empty] = await Promise.all([run(['migrations', 'get', idA]), run(['migrations', 'get', idA, '--json']), run(['migrations', 'list', '--phase', 'done'])]);
    expect(get.code).toBe(0);
    expect(get.stdout).toContain(`migration orders-a (${idA})`);
    expect(get.stdout).toMatch(/^ {2}phase {6}draft \(since /m);
    expect(get.stdout).toMatch(/^ {2}status {5}active$/m);
    expect(get.stdout).toMatch(/^ {2}allowed {4}start, abort$/m);
    expect(parseJson(getJson)).toMatchObject({ id: idA, name: 'orders-a', spec: { name: 'orders-a', syncMode: 'trigger' } });
    expect(empty).toEqual({ code: 0, stdout: 'no migrations\n', stderr: '' });
  });

  it('takes a migration name wherever it takes an id', async () => {
    const id = (await cp.api<{ id: string }>('POST', '/v1/migrations', ordersSpec('orders-by-name'))).body.id;
    const [get, started, events, unknown, notAName] = await Promise.all([
      run(['migrations', 'get', 'orders-by-name', '--json']),
      run(['migrations', 'start', 'orders-by-name', '--reason', 'by name']),
      run(['migrations', 'events', 'orders-by-name', '--json']),
      run(['migrations', 'get', 'no-such-migration']),
      run(['migrations', 'get', 'Not A Name']),
    ]);
    expect(parseJson(get)).toMatchObject({ id, name: 'orders-by-name' });
    expect(started.code, started.stderr).toBe(0);
    expect((await cp.api<{ phase: string }>('GET', `/v1/migrations/${id}`)).body.phase).toBe('prepare');
    expect(parseJson(events).items.map((e: { action: string }) => e.action)).toContain('create');
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/^error MIGRATION_NOT_FOUND: no migration named "no-such-migration"\n/);
    expect(notAName.code).toBe(2);
    expect(notAName.stderr).toContain('"Not A Name" is neither a migration id (UUID) nor a migration name (lower-case slug)');
  });
});

describe('tideway migrations <action> / patch / events / chunks', () => {
  /** Every operator action, in order, on one migration; then its audit log. */
  async function actionChain(): Promise<void> {
    const id = (await cp.api<{ id: string }>('POST', '/v1/migrations', ordersSpec('orders-c'))).body.id;

    const start = await run(['migrations', 'start', id, '--reason', 'go']);
    expect(start).toEqual({ code: 0, stdout: 'start: orders-c is now prepare/active (version 2)\nallowed next: advance, pause, abort, rollback\n', stderr: '' });

    const pause = await run(['migrations', 'pause', id, '--expected-version', '2', '--reason', 'lunch']);
    expect(pause.code, pause.stderr).toBe(0);
    expect(pause.stdout).toContain('pause: orders-c is now prepare/paused (version 3)');

    // The same Idempotency-Key twice: the second answer is the stored first one, nothing acts again.
    const resume = await run(['migrations', 'resume', id, '--idempotency-key', 'resume-once', '--json']);
    const again = await run(['migrations', 'resume', id, '--idempotency-key', 'resume-once', '--json']);
    expect(resume.code).toBe(0);
    expect(again.code, again.stderr).toBe(0);
    expect(parseJson(resume)).toMatchObject({ status: 'active', version: 4 });
    expect(parseJson(again)).toEqual(parseJson(resume));

    const advance = await run(['migrations', 'advance', id]);
    expect(advance.code, advance.stderr).toBe(0);
    expect(advance.stdout).toContain('advance: orders-c is now dual_write/active (version 5)');

    const rollback = await run(['migrations', 'rollback', id, '--json']);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(parseJson(rollback)).toMatchObject({ phase: 'prepare', status: 'active', version: 6 });

    const abort = await run(['migrations', 'abort', id, '--reason', 'done testing']);
    expect(abort).toEqual({ code: 0, stdout: 'abort: orders-c is now prepare/aborted (version 7)\nallowed next: none\n', stderr: '' });

    const [events, eventsJson, chunksJson] = await Promise.all([
      run(['migrations', 'events', id]),
      run(['migrations', 'events', id, '--json', '--limit', '3', '--all']),
      run(['migrations', 'chunks', id, '--status', 'done', '--json']),
    ]);
    expect(events.code).toBe(0);
    const eventLines = events.stdout.trimEnd().split('\n');
    expect(eventLines[0]).toMatch(/^SEQ\s+AT\s+ACTOR\s+ACTION\s+FROM\s+TO\s+REASON$/);
    expect(eventLines[1]).toMatch(/^1\s+\S+\s+bootstrap-admin\s+create\s+-\s+draft\/active\s+-$/);
    expect(eventLines[2]).toMatch(/^2\s+\S+\s+bootstrap-admin\s+start\s+draft\/active\s+prepare\/active\s+go$/);
    expect(eventLines[7]).toMatch(/^7\s+\S+\s+bootstrap-admin\s+abort\s+prepare\/active\s+prepare\/aborted\s+done testing$/);
    expect(eventLines).toHaveLength(8);
    expect(parseJson(eventsJson).items.map((e: { action: string }) => e.action)).toEqual(['create', 'start', 'pause', 'resume', 'advance', 'rollback', 'abort']);
    expect(parseJson(eventsJson).nextCursor).toBeNull();
    expect(parseJson(chunksJson)).toEqual({ items: [], nextCursor: null });
  }

  /** Patches from a file and from stdin, and a patch the phase forbids. */
  async function patchChain(): Promise<void> {
    const id = (await cp.api<{ id: string }>('POST', '/v1/migrations', ordersSpec('orders-e'))).body.id;
    expect((await cp.api('POST', `/v1/migrations/${id}/start`, {})).status).toBe(200);

    const patchFile = await cp.file('patch.json', { backfill: { maxChunkRows: 1234 }, description: 'patched by the CLI' });
    const patch = await run(['migrations', 'patch', id, '-f', patchFile, '--expected-version', '2', '--reason', 'smaller chunks']);
    expect(patch).toEqual({ code: 0, stdout: 'patched: orders-e is now prepare/active (version 3)\nallowed next: advance, pause, abort, rollback\n', stderr: '' });
    const after = (await cp.api<{ spec: unknown }>('GET', `/v1/migrations/${id}`)).body;
    expect(after.spec).toMatchObject({ backfill: { maxChunkRows: 1234 }, description: 'patched by the CLI' });

    const [patchJson, immutable] = await Promise.all([
      run(['migrations', 'patch', id, '-f', '-', '--json', '--expected-version', '3'], { stdin: JSON.stringify({ backfill: { maxChunkRows: 2000 } }) }),
      run(['migrations', 'patch', id, '-f', '-'], { stdin: JSON.stringify({ mapping: { id: 'id', total_cents: 'total' } }) }),
    ]);
    expect(parseJson(patchJson)).toMatchObject({ version: 4, spec: { backfill: { maxChunkRows: 2000 } } });
    expect(immutable.code).toBe(1);
    expect(immutable.stdout).toBe('');
    expect(immutable.stderr).toMatch(/^error IMMUTABLE_FIELD: /);

    const events = await run(['migrations', 'events', id, '--json']);
    const patches = parseJson(events).items.filter((e: { action: string }) => e.action === 'patch');
    expect(patches.map((e: { reason: string | null }) => e.reason)).toEqual(['smaller chunks', null]);
  }

  it('drives a migration through every action, patches another, and shows their audit logs', async () => {
    await Promise.all([actionChain(), patchChain()]);
  });
});

describe('error exits', () => {
  it('API errors exit 1 with `error CODE: message` and the details on stderr', async () => {
    const id = (await cp.api<{ id: string }>('POST', '/v1/migrations', ordersSpec('orders-d'))).body.id;
    expect((await cp.api('POST', `/v1/migrations/${id}/start`, {})).status).toBe(200);
    const missing = randomUUID();
    const badSpec = await cp.file('bad-spec.json', ordersSpec('orders-bad', { source: { datasource: 'nowhere', table: 'orders', key: 'id' } }));
    const invalidSpec = await cp.file('invalid-spec.json', { name: 'orders-invalid', syncMode: 'trigger' });

    const [notFound, transition, conflict, invalid, validation, noToken, badToken, nameTaken] = await Promise.all([
      run(['migrations', 'get', missing]),
      run(['migrations', 'start', id]),
      run(['migrations', 'pause', id, '--expected-version', '99']),
      run(['migrations', 'create', '-f', badSpec]),
      run(['migrations', 'create', '-f', invalidSpec, '--json']),
      run(['migrations', 'list'], { token: null }),
      run(['migrations', 'list'], { token: 'not-a-real-token-0123456789' }),
      run(['migrations', 'create', '-f', await cp.file('d2.json', ordersSpec('orders-d'))]),
    ]);

    expect(notFound.code).toBe(1);
    expect(notFound.stdout).toBe('');
    expect(notFound.stderr).toMatch(/^error MIGRATION_NOT_FOUND: .+\n/);
    expect(notFound.stderr).toContain(missing);

    expect(transition.code).toBe(1);
    expect(transition.stdout).toBe('');
    expect(transition.stderr).toContain('error INVALID_TRANSITION: action "start" is not allowed in phase "prepare" with status "active"');
    expect(transition.stderr).toContain('allowed actions: advance, pause, abort, rollback\n');
    // The details, as indented JSON.
    const details = JSON.parse(transition.stderr.slice(transition.stderr.indexOf('  {'))) as Record<string, unknown>;
    expect(details).toEqual({ phase: 'prepare', status: 'active', action: 'start', allowed: ['advance', 'pause', 'abort', 'rollback'] });

    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/^error VERSION_CONFLICT: /);

    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^error INVALID_SPEC: /);
    expect(invalid.stderr).toContain('nowhere');

    expect(validation.code).toBe(1);
    // Errors go to stderr even under --json; stdout stays empty.
    expect(validation.stdout).toBe('');
    expect(validation.stderr).toMatch(/^error VALIDATION_FAILED: /);
    expect(validation.stderr).toContain('"field": "body');

    for (const r of [noToken, badToken]) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error UNAUTHENTICATED: /);
    }
    expect(noToken.stderr).toContain('send Authorization: Bearer <token>');
    expect(badToken.stderr).toContain('token is unknown or revoked');

    expect(nameTaken.code).toBe(1);
    expect(nameTaken.stderr).toMatch(/^error NAME_TAKEN: /);
  });

  it('usage errors exit 2 without calling the API', async () => {
    const before = (await cp.api<{ items: unknown[] }>('GET', '/v1/migrations?limit=500')).body.items.length;
    const id = randomUUID();
    const notJson = await cp.file('not-json.json', '{ "name": ');
    const [unknownOption, unknownCommand, missingArg, badChoice, badInt, noFile, badFile, missingFile, badUrl, bare] = await Promise.all([
      run(['migrations', 'list', '--bogus']),
      run(['migrations', 'frobnicate']),
      run(['migrations', 'get']),
      run(['migrations', 'list', '--phase', 'nowhere']),
      run(['migrations', 'pause', id, '--expected-version', 'two']),
      run(['migrations', 'create']),
      run(['migrations', 'create', '-f', notJson]),
      run(['migrations', 'create', '-f', `${cp.dir}/missing.json`]),
      run(['migrations', 'list', '--url', 'ftp://example.com']),
      run([]),
    ]);
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("error: unknown option '--bogus'");
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain("error: unknown command 'frobnicate'");
    expect(missingArg.code).toBe(2);
    expect(missingArg.stderr).toContain("error: missing required argument 'migration'");
    expect(badChoice.code).toBe(2);
    expect(badChoice.stderr).toContain("argument 'nowhere' is invalid. Allowed choices are draft, prepare");
    expect(badInt.code).toBe(2);
    expect(badInt.stderr).toContain('expected a positive integer');
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain("error: required option '-f, --file <path>' not specified");
    expect(badFile.code).toBe(2);
    expect(badFile.stderr).toMatch(/^error: .*not-json\.json is not valid JSON: /);
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toMatch(/^error: cannot read .*missing\.json: ENOENT/);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toBe('error: --url must be http or https, not ftp:\n');
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('Usage: tideway [options] [command]');
    for (const r of [unknownOption, unknownCommand, missingArg, badChoice, badInt, noFile, badFile, missingFile, badUrl, bare]) expect(r.stdout).toBe('');
    // Nothing was created by any of them.
    expect((await cp.api<{ items: unknown[] }>('GET', '/v1/migrations?limit=500')).body.items).toHaveLength(before);
  });

  it('help exits 0; --url/--token flags beat the environment anywhere on the line; unreachable exits 1', async () => {
    const closedPort = await freePort();
    const elsewhere = { env: { TIDEWAY_URL: `http://127.0.0.1:${closedPort}` }, token: 'wrong-token-0123456789' };
    const flags = ['--token', ADMIN_TOKEN];
    const [help, version, unreachable, before, after, afterUnknown, viaBin] = await Promise.all([
      run(['migrations', 'start', '--help']),
      run(['--version']),
      run(['migrations', 'list'], { env: elsewhere.env }),
      run(['--url', cp.url, ...flags, 'migrations', 'list', '--phase', 'done'], elsewhere),
      run(['migrations', 'list', '--url', cp.url, ...flags, '--phase', 'done'], elsewhere),
      run(['migrations', 'list', '--phase', 'done', '--url', cp.url, ...flags], elsewhere),
      new Promise<CliResult>((resolve, reject) => {
        const child = spawn(BIN, ['migrations', 'list', '--phase', 'done', '--json'], { env: { ...process.env, TIDEWAY_URL: cp.url, TIDEWAY_TOKEN: ADMIN_TOKEN } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code, stdout, stderr }));
      }),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tideway migrations start [options] <migration>');
    expect(help.stdout).toContain('<migration> is its id or its name');
    expect(help.stdout).toContain('--expected-version <n>');
    expect(help.stdout).toContain('--json');
    expect(version).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(new RegExp(`^error UNREACHABLE: cannot reach http://127\\.0\\.0\\.1:${closedPort}: ECONNREFUSED\n`));
    for (const r of [before, after, afterUnknown]) {
      expect(r).toEqual({ code: 0, stdout: 'no migrations\n', stderr: '' });
    }
    // The bin (bin/tideway.mjs, tsx register) runs the same program.
    expect(viaBin.code, viaBin.stderr).toBe(0);
    expect(JSON.parse(viaBin.stdout)).toEqual({ items: [], nextCursor: null });
  });
});
