/**
 * PostgreSQL behind the store's connection interface (sql.ts), for runs and sweeps that many
 * machines write to: `--store postgres://USER[:PASSWORD]@HOST:PORT/DB`. Statements keep the
 * store's `?` placeholders (numbered here); bigint columns read back as numbers, as SQLite's do.
 * Write transactions take one advisory lock, so they run one at a time across every process, as
 * SQLite's `begin immediate` makes them: the ledger and the rung table rely on it.
 */
// @deno-types="@types/pg"
import pg from "pg";
import type { Row, Sql, SqlValue } from "./sql.ts";

/** The advisory lock every store transaction holds (any constant; this one spells "cutrec"). */
const WRITE_LOCK = 0x637574726563;
const INT8_OID = 20;

/** bigint (counts, byte sizes, rowids) as a number: every value the store keeps fits in 2^53. */
const TYPES = {
  getTypeParser:
    ((oid: number, format?: string) =>
      oid === INT8_OID
        ? (v: string) => Number(v)
        : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/** `?` placeholders as PostgreSQL's `$1, $2, …` (the store's statements hold no `?` literal). */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** The URL with its password hidden, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.href;
  } catch {
    return url;
  }
}

type Queryable = pg.Pool | pg.PoolClient;

export class PostgresSql implements Sql {
  readonly dialect = "postgres";

  private constructor(private readonly pool: pg.Pool, readonly url: string) {}

  /**
   * Connects, refusing an unreachable or misnamed server with a message naming the URL (without
   * its password) and the flag that gave it.
   */
  static async connect(url: string, flag = "--store"): Promise<PostgresSql> {
    const pool = new pg.Pool({
      connectionString: url,
      types: TYPES,
      max: 4,
      connectionTimeoutMillis: 5000,
    });
    // An idle client's error (the server restarted) is the next query's to report.
    pool.on("error", () => {});
    try {
      await pool.query("select 1");
    } catch (e) {
      await pool.end().catch(() => {});
      throw new Error(`${flag} ${redactUrl(url)}: cannot connect: ${(e as Error).message}`);
    }
    return new PostgresSql(pool, url);
  }

  all(sql: string, params: SqlValue[] = []): Promise<Row[]> {
    return queryAll(this.pool, sql, params);
  }

  async get(sql: string, params: SqlValue[] = []): Promise<Row | null> {
    return (await this.all(sql, params))[0] ?? null;
  }

  async run(sql: string, params: SqlValue[] = []): Promise<number> {
    return (await this.pool.query(numberPlaceholders(sql), params)).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("begin");
      try {
        await client.query("select pg_advisory_xact_lock($1)", [WRITE_LOCK]);
        const out = await fn(new PostgresTransaction(client));
        await client.query("commit");
        return out;
      } catch (e) {
        await client.query("rollback").catch(() => {});
        throw e;
      }
    } finally {
      client.release();
    }
  }

  tables(): Promise<Set<string>> {
    return tablesOf(this.pool);
  }

  columns(table: string): Promise<Set<string>> {
    return columnsOf(this.pool, table);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The connection a transaction body gets: every statement on the transaction's client. */
class PostgresTransaction implements Sql {
  readonly dialect = "postgres";

  constructor(private readonly client: pg.PoolClient) {}

  all(sql: string, params: SqlValue[] = []): Promise<Row[]> {
    return queryAll(this.client, sql, params);
  }

  async get(sql: string, params: SqlValue[] = []): Promise<Row | null> {
    return (await this.all(sql, params))[0] ?? null;
  }

  async run(sql: string, params: SqlValue[] = []): Promise<number> {
    return (await this.client.query(numberPlaceholders(sql), params)).rowCount ?? 0;
  }

  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    return fn(this);
  }

  tables(): Promise<Set<string>> {
    return tablesOf(this.client);
  }

  columns(table: string): Promise<Set<string>> {
    return columnsOf(this.client, table);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function queryAll(q: Queryable, sql: string, params: SqlValue[]): Promise<Row[]> {
  return (await q.query(numberPlaceholders(sql), params)).rows as Row[];
}

async function tablesOf(q: Queryable): Promise<Set<string>> {
  const rows = await queryAll(
    q,
    "select table_name from information_schema.tables where table_schema = current_schema()",
    [],
  );
  return new Set(rows.map((r) => r.table_name as string));
}

async function columnsOf(q: Queryable, table: string): Promise<Set<string>> {
  const rows = await queryAll(
    q,
    `select column_name from information_schema.columns
     where table_schema = current_schema() and table_name = ?`,
    [table],
  );
  return new Set(rows.map((r) => r.column_name as string));
}
