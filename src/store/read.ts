/**
 * The store's read model: every query that reads runs, metrics, sweeps and trials, and the types
 * they answer with. Writers (RunStore, SweepStore) read through it on their own connection; the
 * dashboard opens it read-only on a runs folder with `StoreReader.open`, which never writes (no
 * schema, no `alter table`), so it tolerates what a writer has not created yet: no file, no sweep
 * tables, columns that an older writer's store lacks.
 */
import { DatabaseSync } from "node:sqlite";
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

type Row = Record<string, unknown>;

export class StoreReader {
  #connect: () => DatabaseSync | null;
  #db: DatabaseSync | null = null;
  #owned: boolean;

  private constructor(connect: () => DatabaseSync | null, owned: boolean) {
    this.#connect = connect;
    this.#owned = owned;
  }

  /** Reads through a writer's connection (the tables exist; the writer closes it). */
  static over(db: DatabaseSync): StoreReader {
    return new StoreReader(() => db, false);
  }

  /**
   * Reads `<dir>/runs.sqlite` through its own read-only connection, opened on first use: the
   * file may appear after the reader was made (a dashboard started before the first run).
   */
  static open(dir: string): StoreReader {
    const path = `${dir}/runs.sqlite`;
    return new StoreReader(() => {
      try {
        Deno.statSync(path);
      } catch {
        return null;
      }
      const db = new DatabaseSync(path, { readOnly: true });
      db.exec("pragma busy_timeout = 5000");
      return db;
    }, true);
  }

  #open(): DatabaseSync | null {
    return this.#db ??= this.#connect();
  }

  /** The connection when every table named is present (sweep tables appear with a sweep). */
  #ready(...tables: string[]): DatabaseSync | null {
    const db = this.#open();
    if (!db) return null;
    const present = new Set(
      db.prepare("select name from sqlite_master where type = 'table'").all()
        .map((r) => (r as Row).name as string),
    );
    return tables.every((t) => present.has(t)) ? db : null;
  }

  listRuns(): RunRecord[] {
    const db = this.#ready("runs");
    if (!db) return [];
    return db.prepare("select * from runs order by created_at desc, id desc").all()
      .map((r) => toRecord(r as Row));
  }

  getRun(id: string): RunRecord | null {
    const db = this.#ready("runs");
    const row = db?.prepare("select * from runs where id = ?").get(id);
    return row ? toRecord(row as Row) : null;
  }

  /** Tags, note and archive mark of every run that has any. */
  allNotes(): Map<string, RunNotes> {
    const db = this.#ready("run_notes");
    const out = new Map<string, RunNotes>();
    if (!db) return out;
    for (const r of db.prepare("select * from run_notes").all() as Row[]) {
      out.set(r.run_id as string, toNotes(r));
    }
    return out;
  }

  notes(runId: string): RunNotes {
    const row = this.#ready("run_notes")?.prepare("select * from run_notes where run_id = ?")
      .get(runId);
    return row ? toNotes(row as Row) : NO_NOTES;
  }

  /** A run's metric rows in write order. */
  metricRows(runId: string, q: MetricQuery = {}): MetricRow[] {
    const db = this.#ready("metrics");
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
    return db.prepare(
      `select rowid as rowid_, * from metrics where ${where.join(" and ")} order by rowid${limit}`,
    ).all(...args).map((r) => {
      const row = r as Row;
      return {
        rowid: Number(row.rowid_),
        epoch: Number(row.epoch),
        step: Number(row.step),
        key: row.key as string,
        value: Number(row.value),
        recordedAt: num(row.recorded_at),
      };
    });
  }

  /** A run's metric points, in step order (the writers' view). */
  metrics(runId: string, key?: string): MetricPoint[] {
    const db = this.#ready("metrics");
    if (!db) return [];
    const rows = key
      ? db.prepare(
        "select epoch, step, key, value from metrics where run_id = ? and key = ? order by step, rowid",
      ).all(runId, key)
      : db.prepare(
        "select epoch, step, key, value from metrics where run_id = ? order by step, rowid",
      ).all(runId);
    return rows.map((r) => ({ ...(r as unknown as MetricPoint) }));
  }

  /** The newest metric rowid of a run (0 when it has none). */
  metricsCursor(runId: string): number {
    const row = this.#ready("metrics")
      ?.prepare("select max(rowid) as c from metrics where run_id = ?").get(runId);
    return num((row as Row | undefined)?.c) ?? 0;
  }

  /** The highest per-epoch peak a run recorded so far (its peak before the run records one). */
  recordedPeak(runId: string): number | null {
    const row = this.#ready("metrics")
      ?.prepare("select max(value) as v from metrics where run_id = ? and key = ?")
      .get(runId, PEAK_KEY);
    return num((row as Row | undefined)?.v);
  }

  getSweepRecord(id: string): SweepRecord | null {
    const row = this.#ready("sweeps")?.prepare("select * from sweeps where id = ?").get(id);
    return row ? toSweep(row as Row) : null;
  }

  listTrials(sweepId: string): TrialRecord[] {
    const db = this.#ready("trials");
    if (!db) return [];
    return db.prepare("select * from trials where sweep_id = ? order by rowid").all(sweepId)
      .map((r) => toTrial(r as Row));
  }

  getTrial(sweepId: string, key: string): TrialRecord | null {
    const row = this.#ready("trials")
      ?.prepare("select * from trials where sweep_id = ? and key = ?").get(sweepId, key);
    return row ? toTrial(row as Row) : null;
  }

  /** The outcome ledger of a sweep's trials, in the order the attempts were recorded. */
  listOutcomes(sweepId: string): OutcomeView[] {
    const db = this.#ready("trial_outcomes");
    if (!db) return [];
    return db.prepare("select * from trial_outcomes where sweep_id = ? order by rowid")
      .all(sweepId).map((row) => {
        const r = row as Row;
        return {
          key: r.key as string,
          attempt: num(r.attempt) ?? 0,
          status: r.status as TrialStatus,
          worker: str(r.worker),
          runId: str(r.run_id),
          recordedAt: str(r.recorded_at) ?? "",
        };
      });
  }

  /** Every sweep, newest first, with its trial counts per status. */
  listSweeps(): SweepSummary[] {
    const db = this.#ready("sweeps");
    if (!db) return [];
    const counts = new Map<string, Record<TrialStatus, number>>();
    const rows = this.#ready("trials")?.prepare(
      "select sweep_id, status, count(*) as n from trials group by sweep_id, status",
    ).all() as Row[] | undefined;
    for (const r of rows ?? []) {
      const id = r.sweep_id as string;
      if (!counts.has(id)) counts.set(id, emptyCounts());
      const status = r.status as string;
      // A status this version does not know is not counted rather than added as a new key.
      if (Object.hasOwn(counts.get(id)!, status)) {
        counts.get(id)![status as TrialStatus] = num(r.n)!;
      }
    }
    return db.prepare("select * from sweeps order by created_at desc, id desc").all()
      .map((r) => {
        const s = toSweep(r as Row);
        return { ...s, counts: counts.get(s.id) ?? emptyCounts() };
      });
  }

  /** A sweep with every trial, its run and the run's best validation metrics and s/epoch. */
  getSweep(id: string): SweepView | null {
    const sweep = this.getSweepRecord(id);
    if (!sweep) return null;
    const trials = this.listTrials(id);
    const metrics = new Map<string, { epoch: number; key: string; value: number }[]>();
    const rows = this.#ready("metrics", "trials")?.prepare(
      `select m.run_id, m.epoch, m.key, m.value from metrics m
       join trials t on t.run_id = m.run_id
       where t.sweep_id = ? and m.key in
         ('valid_ndcg@10', 'valid_hr@10', 'valid_coverage@10', 'epoch_seconds')
       order by m.rowid`,
    ).all(id) as Row[] | undefined;
    for (const r of rows ?? []) {
      const run = r.run_id as string;
      if (!metrics.has(run)) metrics.set(run, []);
      metrics.get(run)!.push({
        epoch: Number(r.epoch),
        key: r.key as string,
        value: Number(r.value),
      });
    }
    return {
      sweep,
      trials: trials.map((t): TrialView => {
        const run = t.runId ? this.getRun(t.runId) : null;
        return { ...t, run, ...summarise(metrics.get(t.runId ?? "") ?? []) };
      }),
    };
  }

  /** Closes a connection this reader opened; a writer's stays with the writer. */
  close(): void {
    if (this.#owned) this.#db?.close();
    this.#db = null;
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
