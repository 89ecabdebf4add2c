/**
 * The store's connection, whichever database holds it: statements written once with `?`
 * placeholders, answered asynchronously (a PostgreSQL client is; node:sqlite answers at once and
 * is wrapped). `transaction` hands its body a connection bound to the transaction, so a store
 * method composes others inside one by running them over that connection.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";

export type SqlValue = string | number | null;
export type Row = Record<string, unknown>;
export type Dialect = "sqlite" | "postgres";

export interface Sql {
  readonly dialect: Dialect;
  /** Every row the statement answers. */
  all(sql: string, params?: SqlValue[]): Promise<Row[]>;
  /** The first row, or null. */
  get(sql: string, params?: SqlValue[]): Promise<Row | null>;
  /** Runs a statement; resolves to the number of rows it changed. */
  run(sql: string, params?: SqlValue[]): Promise<number>;
  /**
   * Runs `fn` in one write transaction over a connection bound to it, committing when it resolves
   * and rolling back when it throws. One writer at a time, as SQLite's `begin immediate` has it.
   * Inside a transaction, `transaction` runs `fn` in the same one.
   */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  /** The tables that exist. */
  tables(): Promise<Set<string>>;
  /** A table's columns (empty when it does not exist). */
  columns(table: string): Promise<Set<string>>;
  close(): Promise<void>;
}

/**
 * node:sqlite behind the asynchronous interface. One connection: while a transaction is open,
 * statements from outside it (a heartbeat timer, another lane) wait until it ends rather than
 * slipping into it.
 */
export class SqliteSql implements Sql {
  readonly dialect = "sqlite";
  #busy: Promise<void> | null = null;
  readonly #direct: SqliteStatements;

  constructor(readonly db: DatabaseSync) {
    this.#direct = new SqliteStatements(db);
  }

  /** A read-write connection to the file, in WAL mode so that readers and writers overlap. */
  static open(path: string): SqliteSql {
    const db = new DatabaseSync(path);
    db.exec("pragma busy_timeout = 10000; pragma journal_mode = wal; pragma synchronous = normal;");
    return new SqliteSql(db);
  }

  /** A read-only connection (the dashboard's): it never writes, so it never creates anything. */
  static openReadOnly(path: string): SqliteSql {
    const db = new DatabaseSync(path, { readOnly: true });
    db.exec("pragma busy_timeout = 5000");
    return new SqliteSql(db);
  }

  async all(sql: string, params: SqlValue[] = []): Promise<Row[]> {
    // The check and the statement in one synchronous stretch: nothing can begin in between.
    while (this.#busy) await this.#busy;
    return this.#direct.all(sql, params);
  }

  async get(sql: string, params: SqlValue[] = []): Promise<Row | null> {
    return (await this.all(sql, params))[0] ?? null;
  }

  async run(sql: string, params: SqlValue[] = []): Promise<number> {
    while (this.#busy) await this.#busy;
    return this.#direct.run(sql, params);
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    // Checked and taken in one synchronous stretch, so two waiters woken together cannot both
    // begin.
    while (this.#busy) await this.#busy;
    const done = Promise.withResolvers<void>();
    this.#busy = done.promise;
    try {
      this.db.exec("begin immediate");
      try {
        const out = await fn(this.#direct);
        this.db.exec("commit");
        return out;
      } catch (e) {
        this.db.exec("rollback");
        throw e;
      }
    } finally {
      this.#busy = null;
      done.resolve();
    }
  }

  tables(): Promise<Set<string>> {
    return this.#direct.tables();
  }

  columns(table: string): Promise<Set<string>> {
    return this.#direct.columns(table);
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}

/** The statements themselves, run at once: the connection a SQLite transaction body gets. */
class SqliteStatements implements Sql {
  readonly dialect = "sqlite";
  /** Prepared once per statement text: a metric batch inserts the same statement many times. */
  readonly #prepared = new Map<string, StatementSync>();

  constructor(private readonly db: DatabaseSync) {}

  #prepare(sql: string): StatementSync {
    let statement = this.#prepared.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      // Statements built per call (an `in (…)` list) would grow the cache without bound.
      if (this.#prepared.size < 256) this.#prepared.set(sql, statement);
    }
    return statement;
  }

  all(sql: string, params: SqlValue[] = []): Promise<Row[]> {
    try {
      return Promise.resolve(this.#prepare(sql).all(...params) as Row[]);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async get(sql: string, params: SqlValue[] = []): Promise<Row | null> {
    return (await this.all(sql, params))[0] ?? null;
  }

  run(sql: string, params: SqlValue[] = []): Promise<number> {
    try {
      return Promise.resolve(Number(this.#prepare(sql).run(...params).changes));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    return fn(this);
  }

  async tables(): Promise<Set<string>> {
    const rows = await this.all("select name from sqlite_master where type = 'table'");
    return new Set(rows.map((r) => r.name as string));
  }

  async columns(table: string): Promise<Set<string>> {
    const rows = await this.all(`pragma table_info(${table})`);
    return new Set(rows.map((r) => r.name as string));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
