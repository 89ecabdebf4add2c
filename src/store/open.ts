/**
 * Where a store lives: the embedded SQLite file `<runs folder>/runs.sqlite` by default, or the
 * PostgreSQL database a `--store postgres://…` URL names (many machines writing to one place).
 */
import { PostgresSql, redactUrl } from "./postgres.ts";
import { type Sql, SqliteSql } from "./sql.ts";

/** The store's file in a runs folder. */
export const sqlitePath = (dir: string) => `${dir}/runs.sqlite`;

/** Whether a --store value names a PostgreSQL database. */
export function isPostgresUrl(store: string): boolean {
  return /^postgres(ql)?:\/\//.test(store);
}

/** Refuses a --store value that is not a PostgreSQL URL, naming the flag and the value. */
export function checkStoreUrl(store: string, flag = "--store"): string {
  if (!isPostgresUrl(store)) {
    throw new Error(
      `${flag} must be postgres://USER@HOST:PORT/DB (without it the store is <runs>/runs.sqlite), ` +
        `got "${store}"`,
    );
  }
  return store;
}

/**
 * A read-write connection: to `store` when given (a postgres:// URL), else to the runs folder's
 * SQLite file, creating the folder when needed.
 */
export async function openSql(dir: string, store: string | null = null): Promise<Sql> {
  if (store !== null) return await PostgresSql.connect(checkStoreUrl(store));
  Deno.mkdirSync(dir, { recursive: true });
  return SqliteSql.open(sqlitePath(dir));
}

/** How a store is named in messages: its URL (password hidden) or its file. */
export function storeLabel(dir: string, store: string | null = null): string {
  return store === null ? sqlitePath(dir) : redactUrl(store);
}
