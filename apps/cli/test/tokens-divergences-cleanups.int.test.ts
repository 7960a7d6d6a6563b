import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, ordersSpec, parseJson, startControlPlane, type CliOptions, type ControlPlane } from './support/harness.js';

let cp: ControlPlane;
const run = (args: string[], options?: CliOptions) => cli(cp.url, args, options);

beforeAll(async () => {
  cp = await startControlPlane('cli_tokens');
});

afterAll(async () => {
  await cp?.close();
});

describe('tideway tokens', () => {
  it('creates (printing the new secret once), lists without secrets, and revokes', async () => {
    const [created, viewerRun] = await Promise.all([
      run(['tokens', 'create', '--name', 'ops-bot', '--role', 'operator']),
      run(['tokens', 'create', '--name', 'viewer-bot', '--role', 'viewer', '--json']),
    ]);
    expect(created.code, created.stderr).toBe(0);
    const [head, secret, note] = created.stdout.trimEnd().split('\n');
    expect(head).toBe('created token ops-bot (operator)');
    expect(secret).toMatch(/^\S{20,}$/);
    expect(note).toBe('store this secret now: it is not shown again');
    const viewer = parseJson(viewerRun);
    expect(viewer).toMatchObject({ name: 'viewer-bot', role: 'viewer', createdBy: 'bootstrap-admin', revokedAt: null, token: expect.any(String) });

    const [asOperator, forbidden, list, listJson] = await Promise.all([
      // The new operator token works for the CLI, and is never echoed by it.
      run(['migrations', 'list'], { token: secret as string }),
      // A viewer may not manage tokens.
      run(['tokens', 'list'], { token: viewer.token as string }),
      run(['tokens', 'list']),
      run(['tokens', 'list', '--json']),
    ]);
    expect(asOperator).toEqual({ code: 0, stdout: 'no migrations\n', stderr: '' });
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/^error FORBIDDEN: this needs role "admin"; token "viewer-bot" has "viewer"\n/);
    expect(list.code).toBe(0);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+ROLE\s+CREATED BY\s+CREATED\s+LAST USED\s+REVOKED$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3).join(' ')).sort()).toEqual(['ops-bot operator bootstrap-admin', 'viewer-bot viewer bootstrap-admin']);
    expect(list.stdout).not.toContain(secret);
    expect(listJson.stdout).not.toContain(secret);
    expect(parseJson(listJson).items.map((t: { name: string }) => t.name).sort()).toEqual(['ops-bot', 'viewer-bot']);

    const [revoked, revokedJson] = await Promise.all([run(['tokens', 'revoke', 'ops-bot']), run(['tokens', 'revoke', 'viewer-bot', '--json'])]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/^revoked token ops-bot \(operator\) at \d{4}-\d\d-\d\dT\S+\n$/);
    expect(parseJson(revokedJson)).toMatchObject({ name: 'viewer-bot', revokedAt: expect.any(String) });

    const [afterRevoke, unknown, badRole, taken] = await Promise.all([
      run(['migrations', 'list'], { token: secret as string }),
      run(['tokens', 'revoke', 'no-such-token']),
      run(['tokens', 'create', '--name', 'x', '--role', 'root']),
      run(['tokens', 'create', '--name', 'ops-bot', '--role', 'admin']),
    ]);
    expect(afterRevoke.code).toBe(1);
    expect(afterRevoke.stderr).toMatch(/^error UNAUTHENTICATED: token is unknown or revoked\n/);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error TOKEN_NOT_FOUND: /);
    expect(badRole.code).toBe(2);
    expect(badRole.stderr).toContain("argument 'root' is invalid. Allowed choices are viewer, operator, admin.");
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/^error NAME_TAKEN: /);
  });
});

describe('tideway divergences', () => {
  it('prints the rate, the windows and the diverging keys', async () => {
    const id = (await cp.api<{ id: string }>('POST', '/v1/migrations', ordersSpec('orders-div'))).body.id;
    const at = new Date().toISOString();
    const results = [
      { key: '1', outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at },
      { key: '2', outcome: 'mismatch', oldLatencyMs: 1, newLatencyMs: 2, diffPaths: ['total'], oldValue: { total: 1 }, newValue: { total: 2 }, at },
      { key: '3', outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at },
      { key: '4', outcome: 'match', oldLatencyMs: 1, newLatencyMs: 1, at },
    ];
    const recorded = await cp.api('POST', `/v1/migrations/${id}/shadow-results`, { results });
    expect(recorded.status, JSON.stringify(recorded.body)).toBe(202);

    const [text, json, filtered, notFound] = await Promise.all([
      run(['divergences', id]),
      run(['divergences', id, '--json', '--limit', '5']),
      run(['divergences', id, '--kind', 'new_error']),
      run(['divergences', randomUUID()]),
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^divergence rate 25\.00% \(≤\d+\.\d\d% at 95%\) over 4 samples\n/);
    expect(text.stdout).toMatch(/^ {2}all {8}4 samples, 1 mismatches, 0 errors, rate 25\.00% /m);
    expect(text.stdout).toMatch(/^KEY\s+KIND\s+COUNT\s+FIRST SEEN\s+LAST SEEN\s+DIFF PATHS\s+ERROR$/m);
    expect(text.stdout).toMatch(/^2\s+mismatch\s+1\s+\S+\s+\S+\s+total\s+-$/m);
    const d = parseJson(json);
    expect(d).toMatchObject({ totals: { samples: 4, mismatches: 1, errors: 0 }, rate: 0.25, items: [{ key: '2', kind: 'mismatch', count: 1 }] });
    expect(d.rateUpper95).toBeGreaterThan(0.25);
    expect(filtered.stdout).toContain('no diverging keys\n');
    expect(notFound.code).toBe(1);
    expect(notFound.stderr).toMatch(/^error MIGRATION_NOT_FOUND: /);
  });
});

describe('tideway cleanups', () => {
  // TODO(cleanups): GET /v1/cleanups is being added to the control plane (routes/cutover) while this
  // CLI is written; some trees have it, some do not. Once it is merged for good, drop the 404 branch
  // and test the table (NAME, MIGRATION, STATE, CLEANUP DEADLINE, OVERDUE; overdue first) against
  // migrations really in cleanup.
  it('prints the cleanup list, or ROUTE_NOT_FOUND (exit 1) where the route does not exist yet', async () => {
    const direct = await cp.api<{ items?: unknown[]; error?: { code: string } }>('GET', '/v1/cleanups');
    const [text, json] = await Promise.all([run(['cleanups']), run(['cleanups', '--json'])]);
    if (direct.status === 404) {
      expect(direct.body.error?.code).toBe('ROUTE_NOT_FOUND');
      for (const r of [text, json]) {
        expect(r.code).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr).toBe('error ROUTE_NOT_FOUND: no route GET /v1/cleanups\n');
      }
    } else {
      expect(direct).toEqual({ status: 200, body: { items: [] } });
      expect(text).toEqual({ code: 0, stdout: 'no migrations waiting for cleanup\n', stderr: '' });
      expect(json.code).toBe(0);
      expect(parseJson(json)).toEqual({ items: [] });
    }
  });
});
