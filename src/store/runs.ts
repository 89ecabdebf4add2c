/**
 * The run store: one SQLite database (node:sqlite, WAL mode so that several training processes
 * can write while the dashboard reads) under the runs folder.
 */
import { DatabaseSync } from "node:sqlite";

/**
 * "lost" is never written: a run recorded as running whose heartbeat stopped (its process died
 * without a word, SIGKILL or power loss) reads back as lost.
 */
export type RunStatus = "running" | "finished" | "failed" | "stopped" | "lost";

/** How often a training process refreshes its run's heartbeat. */
export const HEARTBEAT_SECONDS = 10;
/** A running run whose heartbeat is older than this is lost (several missed beats). */
export const LOST_AFTER_SECONDS = 6 * HEARTBEAT_SECONDS;

export interface RunRecord {
  id: string;
  name: string;
  status: RunStatus;
  dataset: string;
  config: Record<string, unknown>;
  createdAt: string;
  finishedAt: string | null;
  wallSeconds: number | null;
  peakBytes: number | null;
  bestValidNdcg10: number | null;
  error: string | null;
  checkpoint: string | null;
  sweepId: string | null;
  /** The last sign of life of the process that trains it (ISO time). */
  heartbeatAt: string | null;
}

export interface MetricPoint {
  epoch: number;
  step: number;
  key: string;
  value: number;
}

const SCHEMA = `
create table if not exists runs (
  id text primary key,
  name text not null,
  status text not null,
  dataset text not null,
  config text not null,
  created_at text not null,
  finished_at text,
  wall_seconds real,
  peak_bytes integer,
  best_valid_ndcg10 real,
  error text,
  checkpoint text,
  sweep_id text,
  heartbeat_at text
);
create table if not exists metrics (
  run_id text not null references runs(id),
  epoch integer not null,
  step integer not null,
  key text not null,
  value real not null
);
create index if not exists metrics_run on metrics(run_id, key, step);
`;

export class RunStore {
  readonly db: DatabaseSync;

  constructor(readonly path: string) {
    this.db = new DatabaseSync(path);
    this.db.exec(
      "pragma busy_timeout = 10000; pragma journal_mode = wal; pragma synchronous = normal;",
    );
    this.db.exec(SCHEMA);
    addMissingColumn(this.db, "runs", "heartbeat_at", "text");
  }

  /** Opens `<dir>/runs.sqlite`, creating the folder when needed. */
  static open(dir: string): RunStore {
    Deno.mkdirSync(dir, { recursive: true });
    return new RunStore(`${dir}/runs.sqlite`);
  }

  createRun(
    r: {
      id: string;
      name: string;
      dataset: string;
      config: Record<string, unknown>;
      sweepId?: string;
    },
  ) {
    const now = new Date().toISOString();
    this.db.prepare(
      `insert into runs (id, name, status, dataset, config, created_at, sweep_id, heartbeat_at)
       values (?, ?, 'running', ?, ?, ?, ?, ?)`,
    ).run(r.id, r.name, r.dataset, JSON.stringify(r.config), now, r.sweepId ?? null, now);
  }

  /** Resumes a run: back to running, its error cleared. */
  reopenRun(id: string): void {
    this.db.prepare(
      `update runs set status = 'running', error = null, finished_at = null, heartbeat_at = ?
       where id = ?`,
    ).run(new Date().toISOString(), id);
  }

  /** A resumed run's configuration, with the settings that may change on resume applied. */
  updateConfig(id: string, config: Record<string, unknown>): void {
    this.db.prepare("update runs set config = ? where id = ?").run(JSON.stringify(config), id);
  }

  /** The training process is alive (called every HEARTBEAT_SECONDS). */
  heartbeat(id: string, now = new Date()): void {
    this.db.prepare("update runs set heartbeat_at = ? where id = ?").run(now.toISOString(), id);
  }

  addMetrics(runId: string, points: MetricPoint[]): void {
    const insert = this.db.prepare(
      "insert into metrics (run_id, epoch, step, key, value) values (?, ?, ?, ?, ?)",
    );
    this.transaction(() => {
      for (const p of points) insert.run(runId, p.epoch, p.step, p.key, p.value);
    });
  }

  /** Drops metrics recorded after `step` (a resumed run replays them). */
  truncateMetrics(runId: string, step: number): void {
    this.db.prepare("delete from metrics where run_id = ? and step > ?").run(runId, step);
  }

  update(
    id: string,
    fields: Partial<{
      status: RunStatus;
      wallSeconds: number;
      peakBytes: number;
      bestValidNdcg10: number;
      error: string | null;
      checkpoint: string;
      finished: boolean;
    }>,
  ): void {
    const cols: string[] = [];
    const vals: (string | number | null)[] = [];
    const set = (col: string, v: string | number | null) => {
      cols.push(`${col} = ?`);
      vals.push(v);
    };
    if (fields.status !== undefined) set("status", fields.status);
    if (fields.wallSeconds !== undefined) set("wall_seconds", fields.wallSeconds);
    if (fields.peakBytes !== undefined) set("peak_bytes", fields.peakBytes);
    if (fields.bestValidNdcg10 !== undefined) set("best_valid_ndcg10", fields.bestValidNdcg10);
    if (fields.error !== undefined) set("error", fields.error);
    if (fields.checkpoint !== undefined) set("checkpoint", fields.checkpoint);
    if (fields.finished) set("finished_at", new Date().toISOString());
    if (!cols.length) return;
    this.db.prepare(`update runs set ${cols.join(", ")} where id = ?`).run(...vals, id);
  }

  /**
   * Writes a run recorded by another store (a queue worker's) with its metrics, replacing what
   * this store holds for that id, so importing the same run twice leaves one copy. Call it inside
   * a transaction: the row and its metrics belong together.
   */
  importRun(run: RunRecord, metrics: MetricPoint[]): void {
    this.db.prepare(
      `insert into runs (id, name, status, dataset, config, created_at, finished_at, wall_seconds,
         peak_bytes, best_valid_ndcg10, error, checkpoint, sweep_id, heartbeat_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       on conflict (id) do update set name = excluded.name, status = excluded.status,
         dataset = excluded.dataset, config = excluded.config, created_at = excluded.created_at,
         finished_at = excluded.finished_at, wall_seconds = excluded.wall_seconds,
         peak_bytes = excluded.peak_bytes, best_valid_ndcg10 = excluded.best_valid_ndcg10,
         error = excluded.error, checkpoint = excluded.checkpoint, sweep_id = excluded.sweep_id,
         heartbeat_at = excluded.heartbeat_at`,
    ).run(
      run.id,
      run.name,
      // A lost run is stored as running with its stale heartbeat, which reads back as lost.
      run.status === "lost" ? "running" : run.status,
      run.dataset,
      JSON.stringify(run.config),
      run.createdAt,
      run.finishedAt,
      run.wallSeconds,
      run.peakBytes,
      run.bestValidNdcg10,
      run.error,
      run.checkpoint,
      run.sweepId,
      run.heartbeatAt,
    );
    this.db.prepare("delete from metrics where run_id = ?").run(run.id);
    const insert = this.db.prepare(
      "insert into metrics (run_id, epoch, step, key, value) values (?, ?, ?, ?, ?)",
    );
    for (const p of metrics) insert.run(run.id, p.epoch, p.step, p.key, p.value);
  }

  getRun(id: string): RunRecord | null {
    const row = this.db.prepare("select * from runs where id = ?").get(id);
    return row ? toRecord(row as Record<string, unknown>) : null;
  }

  listRuns(): RunRecord[] {
    return this.db.prepare("select * from runs order by created_at desc, id desc").all()
      .map((r) => toRecord(r as Record<string, unknown>));
  }

  metrics(runId: string, key?: string): MetricPoint[] {
    const rows = key
      ? this.db.prepare(
        "select epoch, step, key, value from metrics where run_id = ? and key = ? order by step, rowid",
      ).all(runId, key)
      : this.db.prepare(
        "select epoch, step, key, value from metrics where run_id = ? order by step, rowid",
      )
        .all(runId);
    return rows.map((r) => ({ ...(r as unknown as MetricPoint) }));
  }

  transaction<T>(fn: () => T): T {
    this.db.exec("begin immediate");
    try {
      const out = fn();
      this.db.exec("commit");
      return out;
    } catch (e) {
      this.db.exec("rollback");
      throw e;
    }
  }

  close(): void {
    this.db.close();
  }
}

function toRecord(r: Record<string, unknown>): RunRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    status: liveStatus(
      r.status as RunStatus,
      (r.heartbeat_at as string | null) ?? null,
      r.created_at as string,
    ),
    dataset: r.dataset as string,
    config: JSON.parse(r.config as string),
    createdAt: r.created_at as string,
    finishedAt: (r.finished_at as string | null) ?? null,
    wallSeconds: (r.wall_seconds as number | null) ?? null,
    peakBytes: r.peak_bytes === null || r.peak_bytes === undefined ? null : Number(r.peak_bytes),
    bestValidNdcg10: (r.best_valid_ndcg10 as number | null) ?? null,
    error: (r.error as string | null) ?? null,
    checkpoint: (r.checkpoint as string | null) ?? null,
    sweepId: (r.sweep_id as string | null) ?? null,
    heartbeatAt: (r.heartbeat_at as string | null) ?? null,
  };
}

/**
 * The status a run reads back with: "running" only while its heartbeat is fresh. Runs recorded
 * before heartbeats existed count from their creation.
 */
export function liveStatus(
  status: RunStatus,
  heartbeatAt: string | null,
  createdAt: string,
  now = Date.now(),
): RunStatus {
  if (status !== "running") return status;
  const last = Date.parse(heartbeatAt ?? createdAt);
  return now - last > LOST_AFTER_SECONDS * 1000 ? "lost" : "running";
}

/** Adds a column that a store written by an older version lacks. */
export function addMissingColumn(
  db: DatabaseSync,
  table: string,
  column: string,
  type: string,
): void {
  const cols = db.prepare(`pragma table_info(${table})`).all() as { name: string }[];
  if (!cols.some((c) => c.name === column)) {
    db.exec(`alter table ${table} add column ${column} ${type}`);
  }
}

/** A sortable, unique run id: UTC time plus a random suffix. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-");
  return `${stamp}-${crypto.randomUUID().slice(0, 6)}`;
}
