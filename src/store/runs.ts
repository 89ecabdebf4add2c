/**
 * The run store: one SQLite database (node:sqlite, WAL mode so that several training processes
 * can write while the dashboard reads) under the runs folder.
 */
import { DatabaseSync } from "node:sqlite";
import { type MetricPoint, type RunRecord, type RunStatus, StoreReader } from "./read.ts";

export {
  HEARTBEAT_SECONDS,
  liveStatus,
  LOST_AFTER_SECONDS,
  type MetricPoint,
  type RunNotes,
  type RunRecord,
  type RunStatus,
} from "./read.ts";

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
  value real not null,
  recorded_at real
);
create index if not exists metrics_run on metrics(run_id, key, step);
create table if not exists run_notes (
  run_id text primary key references runs(id),
  tags text not null default '[]',
  note text not null default '',
  archived_at text
);
`;

export class RunStore {
  readonly db: DatabaseSync;
  /** The read model over this connection (src/store/read.ts holds every read query). */
  readonly read: StoreReader;

  constructor(readonly path: string) {
    this.db = new DatabaseSync(path);
    this.db.exec(
      "pragma busy_timeout = 10000; pragma journal_mode = wal; pragma synchronous = normal;",
    );
    this.db.exec(SCHEMA);
    addMissingColumn(this.db, "runs", "heartbeat_at", "text");
    addMissingColumn(this.db, "metrics", "recorded_at", "real");
    this.read = StoreReader.over(this.db);
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

  /** Records points; each row keeps the time it was written (charts by wall time read it). */
  addMetrics(runId: string, points: MetricPoint[]): void {
    const insert = this.db.prepare(
      "insert into metrics (run_id, epoch, step, key, value, recorded_at) values (?, ?, ?, ?, ?, ?)",
    );
    const now = Date.now() / 1000;
    this.transaction(() => {
      for (const p of points) insert.run(runId, p.epoch, p.step, p.key, p.value, now);
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
    return this.read.getRun(id);
  }

  listRuns(): RunRecord[] {
    return this.read.listRuns();
  }

  metrics(runId: string, key?: string): MetricPoint[] {
    return this.read.metrics(runId, key);
  }

  /** Replaces a run's tags and note, keeping its archive mark. */
  annotate(id: string, notes: { tags: string[]; note: string }): void {
    this.db.prepare(
      `insert into run_notes (run_id, tags, note) values (?, ?, ?)
       on conflict (run_id) do update set tags = excluded.tags, note = excluded.note`,
    ).run(id, JSON.stringify(notes.tags), notes.note);
  }

  /** Archives a run (hidden from the runs list by default) or brings it back. */
  setArchived(id: string, archived: boolean): void {
    this.db.prepare(
      `insert into run_notes (run_id, archived_at) values (?, ?)
       on conflict (run_id) do update set archived_at = excluded.archived_at`,
    ).run(id, archived ? new Date().toISOString() : null);
  }

  /**
   * Deletes a run's records (metrics, notes, the run) in one transaction. Its files are the
   * caller's to remove; a sweep trial that named it keeps its own record.
   */
  deleteRun(id: string): boolean {
    return this.transaction(() => {
      this.db.prepare("delete from metrics where run_id = ?").run(id);
      this.db.prepare("delete from run_notes where run_id = ?").run(id);
      return Number(this.db.prepare("delete from runs where id = ?").run(id).changes) > 0;
    });
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
