/**
 * The applications of the model-based test: one writes through trigger sync (it writes the old table,
 * and the new one for keys whose `write-new` flag is on, as an application that follows the cutover
 * does), the other through the SDK (application sync: `client.write` of both sides). Each keeps every
 * acknowledged write — the row as the application last saw it committed — and every error it got.
 */
import { createMigrationClient, type MigrationClient } from '@tideway/sdk';
import type { UnleashFlagReader } from '@tideway/flags';
import pg from 'pg';

/** An old-shape row: `id bigint primary key, v int not null, note text`. */
export interface OldRow {
  readonly v: number;
  readonly note: string;
}

/** The tables of one migration: old `(id, v, note)`, new `(id, v2 = v * 2, note)`. */
export interface TablePair {
  readonly source: string;
  readonly target: string;
}

export const INITIAL_ROWS = 200;

/** SQL creating a pair with {@link INITIAL_ROWS} rows in old. */
export function tablePairSql(t: TablePair): string {
  return `create table ${t.source} (id bigint primary key, v int not null, note text);
    insert into ${t.source} select g, g, 'n' || g from generate_series(1, ${INITIAL_ROWS}) g;
    create table ${t.target} (id bigint primary key, v2 bigint not null, note text);`;
}

/** What every acknowledged write leaves: key → row, or null once deleted. */
export function initialAcked(): Map<number, OldRow | null> {
  const m = new Map<number, OldRow | null>();
  for (let id = 1; id <= INITIAL_ROWS; id++) m.set(id, { v: id, note: `n${id}` });
  return m;
}

/** mulberry32. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Op = { kind: 'insert' | 'update'; id: number; row: OldRow } | { kind: 'delete'; id: number };

/** A writer loop; `stop()` ends it after the write in flight. */
export abstract class Writer {
  readonly acked = initialAcked();
  readonly errors: string[] = [];
  /** Per key, what the application did to it (`<ISO time> <op>(<v>) → <rows>`), for failure messages. */
  readonly history = new Map<number, string[]>();
  writes = 0;
  #stopping = false;
  #done: Promise<void> | undefined;
  readonly #random: () => number;
  #nextId: number;

  protected constructor(seed: number) {
    this.#random = prng(seed);
    this.#nextId = INITIAL_ROWS + 1;
  }

  start(): void {
    this.#done = this.#loop();
  }

  #stopped: Promise<void> | undefined;

  /** Stops the loop, then lets the subclass drain; idempotent. */
  stop(): Promise<void> {
    this.#stopping = true;
    this.#stopped ??= (async () => {
      await this.#done;
      await this.drain();
    })();
    return this.#stopped;
  }

  get stopped(): boolean {
    return this.#stopping;
  }

  protected abstract apply(op: Op): Promise<number>;
  /** What decided where the write went (flags), for the history. */
  protected context(_id: number): string {
    return '';
  }
  protected abstract drain(): Promise<void>;

  /** Inserts a new key, or updates or deletes one that every acknowledged write says exists. */
  #pick(): Op {
    const r = this.#random();
    const row = (): OldRow => ({ v: Math.floor(this.#random() * 1_000_000), note: `w${Math.floor(this.#random() * 1e9).toString(36)}` });
    let existing: number | null = null;
    for (let i = 0; i < 8 && existing === null; i++) {
      const id = 1 + Math.floor(this.#random() * (this.#nextId - 1));
      if (this.acked.get(id)) existing = id;
    }
    if (r < 0.25 || existing === null) return { kind: 'insert', id: this.#nextId++, row: row() };
    if (r < 0.85) return { kind: 'update', id: existing, row: row() };
    return { kind: 'delete', id: existing };
  }

  async #loop(): Promise<void> {
    while (!this.#stopping) {
      const op = this.#pick();
      const at = new Date().toISOString();
      try {
        const n = await this.apply(op);
        this.writes++;
        const h = this.history.get(op.id) ?? [];
        h.push(`${at} ${op.kind}(${op.kind === 'delete' ? '' : op.row.v})${this.context(op.id)} → ${n}`);
        this.history.set(op.id, h);
        // The key exists (inserted anew, or alive by every acknowledged write): a write that touched
        // no row found the application's own data missing.
        if (n === 0) this.errors.push(`${op.kind} ${op.id}: touched no row, but the application's acknowledged writes say it exists`);
        else this.acked.set(op.id, op.kind === 'delete' ? null : op.row);
      } catch (error) {
        this.errors.push(`${op.kind} ${op.id}: ${(error as Error).message}`);
      }
      // Yield to the event loop: a steady trickle, not a benchmark.
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

/** An application of a trigger-sync migration: writes old, or new for keys whose write-new flag is on. */
export class TriggerAppWriter extends Writer {
  readonly #pool: pg.Pool;

  constructor(
    url: string,
    private readonly tables: TablePair,
    private readonly flags: UnleashFlagReader,
    private readonly writeNewFlag: string,
    seed: number,
  ) {
    super(seed);
    this.#pool = new pg.Pool({ connectionString: url, max: 1, application_name: 'model-trigger-app' });
    this.#pool.on('error', () => undefined);
  }

  protected override context(id: number): string {
    return this.flags.isEnabled(this.writeNewFlag, { key: String(id) }) ? ' [write-new]' : '';
  }

  protected async apply(op: Op): Promise<number> {
    const toNew = this.flags.isEnabled(this.writeNewFlag, { key: String(op.id) });
    const { source, target } = this.tables;
    let res: pg.QueryResult;
    if (op.kind === 'delete') res = await this.#pool.query(`delete from ${toNew ? target : source} where id = $1`, [op.id]);
    else if (op.kind === 'insert') {
      res = toNew
        ? await this.#pool.query(`insert into ${target} (id, v2, note) values ($1, $2::bigint * 2, $3)`, [op.id, op.row.v, op.row.note])
        : await this.#pool.query(`insert into ${source} (id, v, note) values ($1, $2, $3)`, [op.id, op.row.v, op.row.note]);
    } else {
      res = toNew
        ? await this.#pool.query(`update ${target} set v2 = $2::bigint * 2, note = $3 where id = $1`, [op.id, op.row.v, op.row.note])
        : await this.#pool.query(`update ${source} set v = $2, note = $3 where id = $1`, [op.id, op.row.v, op.row.note]);
    }
    return res.rowCount ?? 0;
  }

  protected async drain(): Promise<void> {
    await this.#pool.end();
  }
}

/** An application of an application-sync migration: every write through the SDK's `client.write`. */
export class SdkAppWriter extends Writer {
  readonly #pool: pg.Pool;
  readonly client: MigrationClient;

  constructor(
    url: string,
    private readonly tables: TablePair,
    flags: UnleashFlagReader,
    control: { baseUrl: string; token: string; migration: { id: string; name: string; installation: string }; flagNames: { dualWrite: string; writeNew: string } },
    seed: number,
  ) {
    super(seed);
    this.#pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'model-sdk-app' });
    this.#pool.on('error', () => undefined);
    this.client = createMigrationClient({ ...control, flags, flushIntervalMs: 200 });
    this.#flags = flags;
    this.#names = control.flagNames;
  }

  readonly #flags: UnleashFlagReader;
  readonly #names: { dualWrite: string; writeNew: string };

  protected override context(id: number): string {
    const key = { key: String(id) };
    return this.#flags.isEnabled(this.#names.writeNew, key) ? ' [write-new]' : this.#flags.isEnabled(this.#names.dualWrite, key) ? ' [dual-write]' : ' [old only]';
  }

  protected async apply(op: Op): Promise<number> {
    const { source, target } = this.tables;
    const pool = this.#pool;
    // The new side is written absolutely (an upsert of the whole row, or a delete), so a best-effort
    // write and a backfill chunk that copies the key agree, whichever lands first. The old side (the
    // best-effort one after write-new) too, for a key whose old row a re-drive has not brought back yet.
    const old = async () =>
      op.kind === 'delete'
        ? (await pool.query(`delete from ${source} where id = $1`, [op.id])).rowCount ?? 0
        : op.kind === 'insert'
          ? (await pool.query(`insert into ${source} (id, v, note) values ($1, $2, $3)`, [op.id, op.row.v, op.row.note])).rowCount ?? 0
          : (await pool.query(`insert into ${source} (id, v, note) values ($1, $2, $3) on conflict (id) do update set v = excluded.v, note = excluded.note`, [op.id, op.row.v, op.row.note])).rowCount ?? 0;
    const neu = async () =>
      op.kind === 'delete'
        ? (await pool.query(`delete from ${target} where id = $1`, [op.id])).rowCount ?? 0
        : op.kind === 'insert'
          ? (await pool.query(`insert into ${target} (id, v2, note) values ($1, $2::bigint * 2, $3) on conflict (id) do update set v2 = excluded.v2, note = excluded.note`, [op.id, op.row.v, op.row.note])).rowCount ?? 0
          : (await pool.query(`insert into ${target} (id, v2, note) values ($1, $2::bigint * 2, $3) on conflict (id) do update set v2 = excluded.v2, note = excluded.note`, [op.id, op.row.v, op.row.note])).rowCount ?? 0;
    return this.client.write({ key: op.id, writeOld: old, writeNew: neu });
  }

  protected async drain(): Promise<void> {
    await this.client.close();
    await this.#pool.end();
  }
}
