/**
 * The run store: runs, their metrics and notes, in one database: the runs folder's SQLite file
 * (node:sqlite, WAL mode so that several training processes can write while the dashboard reads)
 * or, with `--store postgres://…`, a PostgreSQL database shared by many machines. Every method is
 * asynchronous, as a PostgreSQL client is; the tables are defined once in schema.ts.
 */
import { type MetricPoint, type RunRecord, type RunStatus, StoreReader } from "./read.ts";
import { openSql } from "./open.ts";
import { ensureTables, RUN_TABLES } from "./schema.ts";
import type { Sql } from "./sql.ts";

export {
  HEARTBEAT_SECONDS,
  liveStatus,
  LOST_AFTER_SECONDS,
  type MetricPoint,
  type RunNotes,
  type RunRecord,
  type RunStatus,
} from "./read.ts";

export class RunStore {
  /** The read model over this connection (src/store/read.ts holds every read query). */
  readonly read: StoreReader;

  /** A store over a connection whose tables exist (`open`, or a transaction's connection). */
  constructor(readonly db: Sql) {
    this.read = StoreReader.over(db);
  }

  /**
   * Opens the store: `store` (a postgres:// URL) when given, else `<dir>/runs.sqlite`, creating
   * the folder and the tables when needed.
   */
  static async open(dir: string, store: string | null = null): Promise<RunStore> {
    const db = await openSql(dir, store);
    try {
      await ensureTables(db, RUN_TABLES);
    } catch (e) {
      await db.close();
      throw e;
    }
    return new RunStore(db);
  }

  async createRun(
    r: {
      id: string;
      name: string;
      dataset: string;
      config: Record<string, unknown>;
      sweepId?: string;
    },
  ): Promise<void> {
    const now = new Date().toISOString();
    await this.db.run(
      `insert into runs (id, name, status, dataset, config, created_at, sweep_id, heartbeat_at)
       values (?, ?, 'running', ?, ?, ?, ?, ?)`,
      [r.id, r.name, r.dataset, JSON.stringify(r.config), now, r.sweepId ?? null, now],
    );
  }

  /** Resumes a run: back to running, its error cleared. */
  async reopenRun(id: string): Promise<void> {
    await this.db.run(
      `update runs set status = 'running', error = null, finished_at = null, heartbeat_at = ?
       where id = ?`,
      [new Date().toISOString(), id],
    );
  }

  /** A resumed run's configuration, with the settings that may change on resume applied. */
  async updateConfig(id: string, config: Record<string, unknown>): Promise<void> {
    await this.db.run("update runs set config = ? where id = ?", [JSON.stringify(config), id]);
  }

  /** The training process is alive (called every HEARTBEAT_SECONDS). */
  async heartbeat(id: string, now = new Date()): Promise<void> {
    await this.db.run("update runs set heartbeat_at = ? where id = ?", [now.toISOString(), id]);
  }

  /** Records points; each row keeps the time it was written (charts by wall time read it). */
  async addMetrics(runId: string, points: MetricPoint[]): Promise<void> {
    const now = Date.now() / 1000;
    await this.transaction(async (tx) => {
      for (const p of points) {
        await tx.db.run(
          `insert into metrics (run_id, epoch, step, key, value, recorded_at)
           values (?, ?, ?, ?, ?, ?)`,
          [runId, p.epoch, p.step, p.key, p.value, now],
        );
      }
    });
  }

  /** Drops metrics recorded after `step` (a resumed run replays them). */
  async truncateMetrics(runId: string, step: number): Promise<void> {
    await this.db.run("delete from metrics where run_id = ? and step > ?", [runId, step]);
  }

  async update(
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
  ): Promise<void> {
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
    await this.db.run(`update runs set ${cols.join(", ")} where id = ?`, [...vals, id]);
  }

  /**
   * Writes a run recorded by another store (a queue worker's) with its metrics, replacing what
   * this store holds for that id, so importing the same run twice leaves one copy. Call it on a
   * transaction's store: the row and its metrics belong together.
   */
  async importRun(run: RunRecord, metrics: MetricPoint[]): Promise<void> {
    await this.db.run(
      `insert into runs (id, name, status, dataset, config, created_at, finished_at, wall_seconds,
         peak_bytes, best_valid_ndcg10, error, checkpoint, sweep_id, heartbeat_at)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       on conflict (id) do update set name = excluded.name, status = excluded.status,
         dataset = excluded.dataset, config = excluded.config, created_at = excluded.created_at,
         finished_at = excluded.finished_at, wall_seconds = excluded.wall_seconds,
         peak_bytes = excluded.peak_bytes, best_valid_ndcg10 = excluded.best_valid_ndcg10,
         error = excluded.error, checkpoint = excluded.checkpoint, sweep_id = excluded.sweep_id,
         heartbeat_at = excluded.heartbeat_at`,
      [
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
      ],
    );
    await this.db.run("delete from metrics where run_id = ?", [run.id]);
    for (const p of metrics) {
      await this.db.run(
        "insert into metrics (run_id, epoch, step, key, value) values (?, ?, ?, ?, ?)",
        [run.id, p.epoch, p.step, p.key, p.value],
      );
    }
  }

  getRun(id: string): Promise<RunRecord | null> {
    return this.read.getRun(id);
  }

  listRuns(): Promise<RunRecord[]> {
    return this.read.listRuns();
  }

  metrics(runId: string, key?: string): Promise<MetricPoint[]> {
    return this.read.metrics(runId, key);
  }

  /** Replaces a run's tags and note, keeping its archive mark. */
  async annotate(id: string, notes: { tags: string[]; note: string }): Promise<void> {
    await this.db.run(
      `insert into run_notes (run_id, tags, note) values (?, ?, ?)
       on conflict (run_id) do update set tags = excluded.tags, note = excluded.note`,
      [id, JSON.stringify(notes.tags), notes.note],
    );
  }

  /** Archives a run (hidden from the runs list by default) or brings it back. */
  async setArchived(id: string, archived: boolean): Promise<void> {
    await this.db.run(
      `insert into run_notes (run_id, archived_at) values (?, ?)
       on conflict (run_id) do update set archived_at = excluded.archived_at`,
      [id, archived ? new Date().toISOString() : null],
    );
  }

  /**
   * Deletes a run's records (metrics, notes, the run) in one transaction. Its files are the
   * caller's to remove; a sweep trial that named it keeps its own record.
   */
  deleteRun(id: string): Promise<boolean> {
    return this.transaction(async (tx) => {
      await tx.db.run("delete from metrics where run_id = ?", [id]);
      await tx.db.run("delete from run_notes where run_id = ?", [id]);
      return await tx.db.run("delete from runs where id = ?", [id]) > 0;
    });
  }

  /** Runs `fn` in one write transaction, over a store bound to it. */
  transaction<T>(fn: (tx: RunStore) => Promise<T>): Promise<T> {
    return this.db.transaction((db) => fn(new RunStore(db)));
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/** A sortable, unique run id: UTC time plus a random suffix. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-");
  return `${stamp}-${crypto.randomUUID().slice(0, 6)}`;
}
