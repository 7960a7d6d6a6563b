/** DDL of the small `orders` → `orders_v2` pair that {@link ordersSpec} migrates. */
export const ORDERS_TABLES_SQL = 'create table orders (id bigint primary key, total int); create table orders_v2 (id bigint primary key, total_cents bigint)';

/** A valid spec for `orders` → `orders_v2` on datasource `main`, with its way back and without the latency guard ({@link unguarded}); `overrides` replace top-level fields. */
export function ordersSpec(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return unguarded({
    name,
    source: { datasource: 'main', table: 'orders', key: 'id' },
    target: { datasource: 'main', table: 'orders_v2', key: 'id' },
    mapping: { id: 'id', total_cents: 'total * 100' },
    // The way back of this mapping; an override of the mapping brings its own.
    ...('mapping' in overrides ? {} : { reverseMapping: { total: 'total_cents / 100' } }),
    syncMode: 'trigger',
    ...overrides,
  });
}

/**
 * `spec` with the latency guard off unless the spec says otherwise. Tests of other features run
 * next to each other on two cores, where the guard — by design — holds a copy back while the
 * machine is busy, and its baseline window adds seconds to every backfill; the guard has tests of
 * its own (`latency-guard.int.test.ts`) and the demo and the benchmark run it on, as users do.
 */
export function unguarded<T extends object>(spec: T): T {
  const s = spec as Record<string, unknown> & { throttle?: Record<string, unknown> & { latencyGuard?: Record<string, unknown> } };
  if (s.throttle?.latencyGuard?.['enabled'] !== undefined) return spec;
  return { ...spec, throttle: { ...s.throttle, latencyGuard: { ...s.throttle?.latencyGuard, enabled: false } } } as T;
}
