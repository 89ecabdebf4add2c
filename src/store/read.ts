/**
 * The store's read model: every query that reads runs, metrics, sweeps and trials, and the types
 * they answer with. Writers (RunStore, SweepStore) read through it on their own connection; the
 * dashboard opens it on a runs folder (or a --store PostgreSQL URL) with `StoreReader.open`, which
 * never writes (no schema, no `alter table`), so it tolerates what a writer has not created yet: no
 * file, no sweep tables, columns that an older writer's store lacks.
 */
import { isPostgresUrl, sqlitePath } from "./open.ts";
import { PostgresSql } from "./postgres.ts";
import {
  type PruneEvaluation,
  pruneEvaluation,
  pruneEvaluationsOfRun,
  type PruneResult,
} from "./prune.ts";
import { type Row, type Sql, SqliteSql } from "./sql.ts";
import type {
  SweepRecord,
  SweepStatus,
  SweepSummary,
  SweepView,
  TrialRecord,
  TrialStatus,
  TrialView,
} from "./sweeps.ts";

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

/** What people add to a run after the fact: tags, a note, and whether it is archived. */
export interface RunNotes {
  tags: string[];
  note: string;
  /** When it was archived (hidden from the runs list by default); null when it is not. */
  archivedAt: string | null;
}

export const NO_NOTES: RunNotes = Object.freeze({ tags: [], note: "", archivedAt: null });

/** One recorded attempt of a trial (a queue delivers an outcome at least once). */
export interface OutcomeView {
  key: string;
  attempt: number;
  status: TrialStatus;
  worker: string | null;
  runId: string | null;
  recordedAt: string;
}

export interface MetricPoint {
  epoch: number;
  step: number;
  key: string;
  value: number;
}

export interface MetricRow extends MetricPoint {
  /** SQLite rowid: it grows with every write, so it is the live-update cursor. */
  rowid: number;
  /** Unix time in seconds when the row was written; null in stores written before it was kept. */
  recordedAt: number | null;
}

export interface MetricQuery {
  /** Only rows written after this cursor. */
  after?: number;
  /** Only rows up to this cursor (a snapshot). */
  upTo?: number;
  keys?: readonly string[];
  exceptKeys?: readonly string[];
  limit?: number;
}

/** The metric the trainer writes once per epoch: its peak reserved GPU bytes so far. */
export const PEAK_KEY = "peak_bytes";

export class StoreReader {
  #connect: () => Promise<Sql | null>;
  #db: Promise<Sql | null> | null = null;
  #owned: boolean;

  private constructor(connect: () => Promise<Sql | null>, owned: boolean) {
    this.#connect = connect;
    this.#owned = owned;
  }

  /** Reads through a writer's connection (the tables exist; the writer closes it). */
  static over(db: Sql): StoreReader {
    return new StoreReader(() => Promise.resolve(db), false);
  }

  /**
   * Reads `store` (a postgres:// URL) when given, else `<dir>/runs.sqlite` through its own
   * read-only connection, opened on first use: the file may appear after the reader was made (a
   * dashboard started before the first run).
   */
  static open(dir: string, store: string | null = null): StoreReader {
    if (store !== null && isPostgresUrl(store)) {
      return new StoreReader(() => PostgresSql.connect(store), true);
    }
    const path = sqlitePath(dir);
    return new StoreReader(() => {
      try {
        Deno.statSync(path);
      } catch {
        return Promise.resolve(null);
      }
      return Promise.resolve(SqliteSql.openReadOnly(path));
    }, true);
  }

  async #open(): Promise<Sql | null> {
    const pending = this.#db ??= this.#connect();
    let db: Sql | null;
    try {
      db = await pending;
    } catch (e) {
      // A server that refused us now may answer the next request: connect again then.
      if (this.#db === pending) this.#db = null;
      throw e;
    }
    // No file yet: look again next time.
    if (!db && this.#db === pending) this.#db = null;
    return db;
  }

  /** The connection when every table named is present (sweep tables appear with a sweep). */
  async #ready(...tables: string[]): Promise<Sql | null> {
    const db = await this.#open();
    if (!db) return null;
    const present = await db.tables();
    return tables.every((t) => present.has(t)) ? db : null;
  }

  /** A run's pruning evaluations, newest first (none before the first `deno task prune`). */
  async pruneEvaluationsOfRun(runId: string): Promise<PruneEvaluation[]> {
    const db = await this.#ready("prune_evaluations");
    return db ? await pruneEvaluationsOfRun(db, runId) : [];
  }

  async pruneEvaluation(
    id: string,
  ): Promise<{ evaluation: PruneEvaluation; results: PruneResult[] } | null> {
    const db = await this.#ready("prune_evaluations", "prune_results");
    return db ? await pruneEvaluation(db, id) : null;
  }

  async listRuns(): Promise<RunRecord[]> {
    const db = await this.#ready("runs");
    if (!db) return [];
    return (await db.all("select * from runs order by created_at desc, id desc")).map(toRecord);
  }

  async getRun(id: string): Promise<RunRecord | null> {
    const db = await this.#ready("runs");
    const row = await db?.get("select * from runs where id = ?", [id]);
    return row ? toRecord(row) : null;
  }

  /** Tags, note and archive mark of every run that has any. */
  async allNotes(): Promise<Map<string, RunNotes>> {
    const db = await this.#ready("run_notes");
    const out = new Map<string, RunNotes>();
    if (!db) return out;
    for (const r of await db.all("select * from run_notes")) {
      out.set(r.run_id as string, toNotes(r));
    }
    return out;
  }

  async notes(runId: string): Promise<RunNotes> {
    const db = await this.#ready("run_notes");
    const row = await db?.get("select * from run_notes where run_id = ?", [runId]);
    return row ? toNotes(row) : NO_NOTES;
  }

  /** A run's metric rows in write order. */
  async metricRows(runId: string, q: MetricQuery = {}): Promise<MetricRow[]> {
    const db = await this.#ready("metrics");
    if (!db) return [];
    const where = ["run_id = ?", "rowid > ?"];
    const args: (string | number)[] = [runId, q.after ?? 0];
    if (q.upTo !== undefined) {
      where.push("rowid <= ?");
      args.push(q.upTo);
    }
    if (q.keys) {
      where.push(`key in (${q.keys.map(() => "?").join(", ")})`);
      args.push(...q.keys);
    }
    if (q.exceptKeys) {
      where.push(`key not in (${q.exceptKeys.map(() => "?").join(", ")})`);
      args.push(...q.exceptKeys);
    }
    const limit = q.limit ? ` limit ${Math.max(1, Math.floor(q.limit))}` : "";
    // `*` rather than named columns: recorded_at is missing from stores an older writer made.
    const rows = await db.all(
      `select rowid as rowid_, * from metrics where ${where.join(" and ")} order by rowid${limit}`,
      args,
    );
    return rows.map((row) => ({
      rowid: Number(row.rowid_),
      epoch: Number(row.epoch),
      step: Number(row.step),
      key: row.key as string,
      value: Number(row.value),
      recordedAt: num(row.recorded_at),
    }));
  }

  /** A run's metric points, in step order (the writers' view). */
  async metrics(runId: string, key?: string): Promise<MetricPoint[]> {
    const db = await this.#ready("metrics");
    if (!db) return [];
    const rows = key
      ? await db.all(
        "select epoch, step, key, value from metrics where run_id = ? and key = ? order by step, rowid",
        [runId, key],
      )
      : await db.all(
        "select epoch, step, key, value from metrics where run_id = ? order by step, rowid",
        [runId],
      );
    return rows.map((r) => ({
      epoch: Number(r.epoch),
      step: Number(r.step),
      key: r.key as string,
      value: Number(r.value),
    }));
  }

  /** The newest metric rowid of a run (0 when it has none). */
  async metricsCursor(runId: string): Promise<number> {
    const db = await this.#ready("metrics");
    const row = await db?.get("select max(rowid) as c from metrics where run_id = ?", [runId]);
    return num(row?.c) ?? 0;
  }

  /** The highest per-epoch peak a run recorded so far (its peak before the run records one). */
  async recordedPeak(runId: string): Promise<number | null> {
    const db = await this.#ready("metrics");
    const row = await db?.get(
      "select max(value) as v from metrics where run_id = ? and key = ?",
      [runId, PEAK_KEY],
    );
    return num(row?.v);
  }

  async getSweepRecord(id: string): Promise<SweepRecord | null> {
    const db = await this.#ready("sweeps");
    const row = await db?.get("select * from sweeps where id = ?", [id]);
    return row ? toSweep(row) : null;
  }

  async listTrials(sweepId: string): Promise<TrialRecord[]> {
    const db = await this.#ready("trials");
    if (!db) return [];
    return (await db.all("select * from trials where sweep_id = ? order by rowid", [sweepId]))
      .map(toTrial);
  }

  async getTrial(sweepId: string, key: string): Promise<TrialRecord | null> {
    const db = await this.#ready("trials");
    const row = await db?.get("select * from trials where sweep_id = ? and key = ?", [
      sweepId,
      key,
    ]);
    return row ? toTrial(row) : null;
  }

  /** The outcome ledger of a sweep's trials, in the order the attempts were recorded. */
  async listOutcomes(sweepId: string): Promise<OutcomeView[]> {
    const db = await this.#ready("trial_outcomes");
    if (!db) return [];
    const rows = await db.all(
      "select * from trial_outcomes where sweep_id = ? order by rowid",
      [sweepId],
    );
    return rows.map((r) => ({
      key: r.key as string,
      attempt: num(r.attempt) ?? 0,
      status: r.status as TrialStatus,
      worker: str(r.worker),
      runId: str(r.run_id),
      recordedAt: str(r.recorded_at) ?? "",
    }));
  }

  /** Every sweep, newest first, with its trial counts per status. */
  async listSweeps(): Promise<SweepSummary[]> {
    const db = await this.#ready("sweeps");
    if (!db) return [];
    const counts = new Map<string, Record<TrialStatus, number>>();
    const rows = await (await this.#ready("trials"))?.all(
      "select sweep_id, status, count(*) as n from trials group by sweep_id, status",
    );
    for (const r of rows ?? []) {
      const id = r.sweep_id as string;
      if (!counts.has(id)) counts.set(id, emptyCounts());
      const status = r.status as string;
      // A status this version does not know is not counted rather than added as a new key.
      if (Object.hasOwn(counts.get(id)!, status)) {
        counts.get(id)![status as TrialStatus] = num(r.n)!;
      }
    }
    return (await db.all("select * from sweeps order by created_at desc, id desc")).map((r) => {
      const s = toSweep(r);
      return { ...s, counts: counts.get(s.id) ?? emptyCounts() };
    });
  }

  /** A sweep with every trial, its run and the run's best validation metrics and s/epoch. */
  async getSweep(id: string): Promise<SweepView | null> {
    const sweep = await this.getSweepRecord(id);
    if (!sweep) return null;
    const trials = await this.listTrials(id);
    const metrics = new Map<string, { epoch: number; key: string; value: number }[]>();
    const rows = await (await this.#ready("metrics", "trials"))?.all(
      `select m.run_id, m.epoch, m.key, m.value from metrics m
       join trials t on t.run_id = m.run_id
       where t.sweep_id = ? and m.key in
         ('valid_ndcg@10', 'valid_hr@10', 'valid_coverage@10', 'epoch_seconds')
       order by m.rowid`,
      [id],
    );
    for (const r of rows ?? []) {
      const run = r.run_id as string;
      if (!metrics.has(run)) metrics.set(run, []);
      metrics.get(run)!.push({
        epoch: Number(r.epoch),
        key: r.key as string,
        value: Number(r.value),
      });
    }
    const views: TrialView[] = [];
    for (const t of trials) {
      const run = t.runId ? await this.getRun(t.runId) : null;
      views.push({ ...t, run, ...summarise(metrics.get(t.runId ?? "") ?? []) });
    }
    return { sweep, trials: views };
  }

  /** Closes a connection this reader opened; a writer's stays with the writer. */
  async close(): Promise<void> {
    const db = this.#db;
    this.#db = null;
    if (this.#owned) await (await db?.catch(() => null))?.close();
  }
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

function toRecord(r: Row): RunRecord {
  const createdAt = r.created_at as string;
  const heartbeatAt = str(r.heartbeat_at);
  return {
    id: r.id as string,
    name: r.name as string,
    status: liveStatus(r.status as RunStatus, heartbeatAt, createdAt),
    dataset: r.dataset as string,
    config: parseObject(r.config),
    createdAt,
    finishedAt: str(r.finished_at),
    wallSeconds: num(r.wall_seconds),
    peakBytes: num(r.peak_bytes),
    bestValidNdcg10: num(r.best_valid_ndcg10),
    error: str(r.error),
    checkpoint: str(r.checkpoint),
    sweepId: str(r.sweep_id),
    heartbeatAt,
  };
}

function toNotes(r: Row): RunNotes {
  const tags = parseJson(r.tags);
  return {
    tags: Array.isArray(tags) ? tags.filter((t): t is string => typeof t === "string") : [],
    note: str(r.note) ?? "",
    archivedAt: str(r.archived_at),
  };
}

function summarise(points: { epoch: number; key: string; value: number }[]) {
  let best: { epoch: number; value: number } | null = null;
  for (const p of points) {
    // The first epoch reaching the best NDCG@10 is the one training kept (it saves on ">").
    if (p.key === "valid_ndcg@10" && (best === null || p.value > best.value)) best = p;
  }
  const at = (key: string) =>
    best === null
      ? null
      : points.find((p) => p.key === key && p.epoch === best!.epoch)?.value ?? null;
  const seconds = points.filter((p) => p.key === "epoch_seconds").map((p) => p.value)
    .sort((a, b) => a - b);
  return {
    validNdcg10: best?.value ?? null,
    validHr10: at("valid_hr@10"),
    validCoverage10: at("valid_coverage@10"),
    bestEpoch: best?.epoch ?? null,
    secondsPerEpoch: seconds.length ? seconds[Math.floor(seconds.length / 2)] : null,
  };
}

function emptyCounts(): Record<TrialStatus, number> {
  return { pending: 0, running: 0, finished: 0, failed: 0, exceeds_budget: 0, pruned: 0 };
}

function toSweep(r: Row): SweepRecord {
  const grid: Record<string, SweepRecord["grid"][string]> = {};
  for (const [axis, values] of Object.entries(parseObject(r.grid))) {
    grid[axis] = (Array.isArray(values) ? values : [values]) as SweepRecord["grid"][string];
  }
  return {
    id: r.id as string,
    name: str(r.name) ?? (r.id as string),
    args: parseObject(r.args) as SweepRecord["args"],
    grid,
    budgetBytes: num(r.budget_bytes),
    createdAt: str(r.created_at) ?? "",
    status: (str(r.status) ?? "running") as SweepStatus,
  };
}

function toTrial(r: Row): TrialRecord {
  return {
    sweepId: r.sweep_id as string,
    key: r.key as string,
    params: parseObject(r.params) as TrialRecord["params"],
    status: r.status as TrialStatus,
    runId: str(r.run_id),
    estimateBytes: num(r.estimate_bytes),
    peakBytes: num(r.peak_bytes),
    error: str(r.error),
    startedAt: str(r.started_at),
    finishedAt: str(r.finished_at),
    // Stores written before queue workers have neither column.
    worker: str(r.worker),
    attempt: num(r.attempt) ?? 0,
  };
}

function parseJson(text: unknown): unknown {
  if (typeof text !== "string") return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A JSON object column; anything else (null, a damaged value) reads as an empty object. */
function parseObject(text: unknown): Record<string, unknown> {
  const v = parseJson(text);
  return v && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : {};
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}
