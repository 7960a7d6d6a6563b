/**
 * Polls `check` until it returns a truthy value, which is returned. This awaits a condition in
 * PostgreSQL or Redis (chunks done, status changed), not a fixed time.
 *
 * @param timeoutMs - give up after this long, milliseconds. @defaultValue 30000
 * @param intervalMs - pause between checks, milliseconds. @defaultValue 50
 * @throws Error naming `what` and the last value seen when time runs out.
 */
export async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 30_000, intervalMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    last = await check();
    if (last) return last as T;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
