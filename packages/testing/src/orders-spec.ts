/** DDL of the small `orders` → `orders_v2` pair that {@link ordersSpec} migrates. */
export const ORDERS_TABLES_SQL = 'create table orders (id bigint primary key, total int); create table orders_v2 (id bigint primary key, total_cents bigint)';

/** A valid spec for `orders` → `orders_v2` on datasource `main`, with its way back; `overrides` replace top-level fields. */
export function ordersSpec(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    source: { datasource: 'main', table: 'orders', key: 'id' },
    target: { datasource: 'main', table: 'orders_v2', key: 'id' },
    mapping: { id: 'id', total_cents: 'total * 100' },
    // The way back of this mapping; an override of the mapping brings its own.
    ...('mapping' in overrides ? {} : { reverseMapping: { total: 'total_cents / 100' } }),
    syncMode: 'trigger',
    ...overrides,
  };
}
