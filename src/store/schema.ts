/**
 * The store's tables, defined once for both databases. Column types are written as `int`, `float`
 * and `text` and spelt per dialect (SQLite: integer/real; PostgreSQL: bigint/double precision).
 * Tables read in write order (metrics, trials, the outcome ledger) use SQLite's implicit rowid;
 * on PostgreSQL they get a `rowid bigserial` column, so the same `order by rowid` reads them.
 */
import type { Dialect, Sql } from "./sql.ts";

type ColumnType = "int" | "float" | "text";

interface TableSpec {
  name: string;
  /** name, type, constraints (not null, default, references). */
  columns: [string, ColumnType, string?][];
  primaryKey: string[];
  /** Read in the order rows were written (`order by rowid`). */
  ordered: boolean;
  indexes?: { name: string; columns: string[] }[];
}

export const RUN_TABLES: TableSpec[] = [
  {
    name: "runs",
    columns: [
      ["id", "text"],
      ["name", "text", "not null"],
      ["status", "text", "not null"],
      ["dataset", "text", "not null"],
      ["config", "text", "not null"],
      ["created_at", "text", "not null"],
      ["finished_at", "text"],
      ["wall_seconds", "float"],
      ["peak_bytes", "int"],
      ["best_valid_ndcg10", "float"],
      ["error", "text"],
      ["checkpoint", "text"],
      ["sweep_id", "text"],
      ["heartbeat_at", "text"],
    ],
    primaryKey: ["id"],
    ordered: false,
  },
  {
    name: "metrics",
    columns: [
      ["run_id", "text", "not null references runs(id)"],
      ["epoch", "int", "not null"],
      ["step", "int", "not null"],
      ["key", "text", "not null"],
      ["value", "float", "not null"],
      ["recorded_at", "float"],
    ],
    primaryKey: [],
    ordered: true,
    indexes: [{ name: "metrics_run", columns: ["run_id", "key", "step"] }],
  },
  {
    name: "run_notes",
    columns: [
      ["run_id", "text", "references runs(id)"],
      ["tags", "text", "not null default '[]'"],
      ["note", "text", "not null default ''"],
      ["archived_at", "text"],
    ],
    primaryKey: ["run_id"],
    ordered: false,
  },
];

export const SWEEP_TABLES: TableSpec[] = [
  {
    name: "sweeps",
    columns: [
      ["id", "text"],
      ["name", "text", "not null"],
      ["args", "text", "not null"],
      ["grid", "text", "not null"],
      ["budget_bytes", "int"],
      ["created_at", "text", "not null"],
      ["status", "text", "not null"],
    ],
    primaryKey: ["id"],
    ordered: false,
  },
  {
    name: "trials",
    columns: [
      ["sweep_id", "text", "not null references sweeps(id)"],
      ["key", "text", "not null"],
      ["params", "text", "not null"],
      ["status", "text", "not null"],
      ["run_id", "text"],
      ["estimate_bytes", "int"],
      ["peak_bytes", "int"],
      ["error", "text"],
      ["started_at", "text"],
      ["finished_at", "text"],
      ["worker", "text"],
      ["attempt", "int", "not null default 0"],
    ],
    primaryKey: ["sweep_id", "key"],
    ordered: true,
  },
  {
    name: "trial_outcomes",
    columns: [
      ["sweep_id", "text", "not null"],
      ["key", "text", "not null"],
      ["attempt", "int", "not null"],
      ["status", "text", "not null"],
      ["worker", "text"],
      ["run_id", "text"],
      ["recorded_at", "text", "not null"],
    ],
    primaryKey: ["sweep_id", "key", "attempt"],
    ordered: true,
  },
  {
    name: "rungs",
    columns: [
      ["sweep_id", "text", "not null"],
      ["rung", "int", "not null"],
      ["key", "text", "not null"],
      ["value", "float", "not null"],
    ],
    primaryKey: ["sweep_id", "rung", "key"],
    ordered: false,
  },
];

/**
 * Pruning evaluations (`deno task prune`): one per task invocation — the model pruned (a run id of
 * this store, or the file read), the backbone, the headline metric and its direction, the dense
 * reference of every metric — and a row per combination (kind, pattern, criterion, mitigation,
 * metrics as JSON, weight storage in bits per element, or why it was refused). Created with the
 * first evaluation, so a store without them reads as "no evaluation".
 */
export const PRUNE_TABLES: TableSpec[] = [
  {
    name: "prune_evaluations",
    columns: [
      ["id", "text"],
      ["model", "text", "not null"],
      ["run_id", "text"],
      ["backbone", "text", "not null"],
      ["label", "text", "not null"],
      ["headline", "text", "not null"],
      ["higher_is_better", "int", "not null"],
      ["dense", "text", "not null"],
      ["created_at", "text", "not null"],
    ],
    primaryKey: ["id"],
    ordered: false,
    indexes: [{ name: "prune_evaluations_run", columns: ["run_id", "created_at"] }],
  },
  {
    name: "prune_results",
    columns: [
      ["evaluation_id", "text", "not null references prune_evaluations(id)"],
      ["seq", "int", "not null"],
      ["kind", "text", "not null"],
      ["pattern", "text", "not null"],
      ["criterion", "text", "not null"],
      ["mitigation", "text", "not null"],
      ["metrics", "text"],
      ["bits", "float"],
      ["refused", "text"],
    ],
    primaryKey: ["evaluation_id", "seq"],
    ordered: false,
  },
];

const TYPE_NAMES: Record<Dialect, Record<ColumnType, string>> = {
  sqlite: { int: "integer", float: "real", text: "text" },
  postgres: { int: "bigint", float: "double precision", text: "text" },
};

function columnSql(dialect: Dialect, [name, type, constraints]: TableSpec["columns"][number]) {
  return [name, TYPE_NAMES[dialect][type], constraints].filter(Boolean).join(" ");
}

/** `create table if not exists` and its indexes, in the dialect's words. */
export function createStatements(dialect: Dialect, t: TableSpec): string[] {
  const cols = t.columns.map((c) => columnSql(dialect, c));
  if (t.ordered && dialect === "postgres") cols.push("rowid bigserial");
  if (t.primaryKey.length) cols.push(`primary key (${t.primaryKey.join(", ")})`);
  return [
    `create table if not exists ${t.name} (${cols.join(", ")})`,
    ...(t.indexes ?? []).map((i) =>
      `create index if not exists ${i.name} on ${t.name}(${i.columns.join(", ")})`
    ),
  ];
}

/**
 * Creates the tables that are missing and adds the columns that a store written by an older
 * version lacks, in one transaction (several processes may open a new store at once).
 */
export async function ensureTables(sql: Sql, tables: TableSpec[]): Promise<void> {
  await sql.transaction(async (tx) => {
    for (const t of tables) {
      for (const statement of createStatements(tx.dialect, t)) await tx.run(statement);
      const present = await tx.columns(t.name);
      for (const c of t.columns) {
        if (!present.has(c[0])) {
          await tx.run(`alter table ${t.name} add column ${columnSql(tx.dialect, c)}`);
        }
      }
    }
  });
}
