/**
 * Read-only access to the run store for the dashboard. It opens `<runs>/runs.sqlite` with a
 * read-only connection (WAL lets it read while training processes write), lazily, because the
 * dashboard may start before the first run creates the file; tables written by other tools
 * (sweeps, trials) may be absent and read as empty.
 */
import { DatabaseSync } from "node:sqlite";
import type { RunStatus } from "../store/runs.ts";

/** A run as the runs list shows it. */
export interface RunSummary {
  id: string;
  name: string;
  status: RunStatus;
  dataset: string;
  loss: string | null;
  /** Negatives per position; null for the full softmax, 1 for BCE. */
  negatives: number | null;
  batchSize: number | null;
  bestValidNdcg10: number | null;
  /** The run's peak GPU bytes; while it trains, the highest per-epoch peak recorded so far. */
  peakBytes: number | null;
  /** Wall seconds once finished; seconds since creation while running. */
  durationSeconds: number | null;
  createdAt: string;
  finishedAt: string | null;
  sweepId: string | null;
  error: string | null;
}

export interface RunDetail extends RunSummary {
  config: Record<string, unknown>;
  wallSeconds: number | null;
  checkpoint: string | null;
}

export interface MetricRow {
  /** SQLite rowid: increases with every write, so it is the live-update cursor. */
  rowid: number;
  epoch: number;
  step: number;
  key: string;
  value: number;
}

export type TrialStatus = "pending" | "running" | "finished" | "failed" | "exceeds_budget";

export interface SweepSummary {
  id: string;
  name: string;
  status: string;
  args: Record<string, unknown>;
  /** Axis name → values, e.g. {"negatives": [32, 128], "batchSize": [64, 256]}. */
  grid: Record<string, unknown[]>;
  budgetBytes: number | null;
  createdAt: string;
  trials: number;
  finishedTrials: number;
}

export interface TrialInfo {
  key: string;
  params: Record<string, unknown>;
  status: TrialStatus;
  runId: string | null;
  runName: string | null;
  estimateBytes: number | null;
  /** The trial's measured peak, or its run's when the trial row has none yet. */
  peakBytes: number | null;
  /** The run's best validation NDCG@10. */
  ndcg10: number | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Metric keys that hold a peak memory figure per epoch. */
export const PEAK_KEYS = ["peak_bytes", "peak_gpu_bytes"];

type Row = Record<string, unknown>;

export class DashboardData {
  #db: DatabaseSync | null = null;
  readonly path: string;

  constructor(readonly runsDir: string) {
    this.path = `${runsDir}/runs.sqlite`;
  }

  #open(): DatabaseSync | null {
    if (this.#db) return this.#db;
    try {
      Deno.statSync(this.path);
    } catch {
      return null;
    }
    const db = new DatabaseSync(this.path, { readOnly: true });
    db.exec("pragma busy_timeout = 5000");
    this.#db = db;
    return db;
  }

  /** The tables present now (sweep tables appear when the first sweep starts). */
  #tables(db: DatabaseSync): Set<string> {
    const rows = db.prepare("select name from sqlite_master where type = 'table'").all();
    return new Set(rows.map((r) => (r as Row).name as string));
  }

  #ready(...tables: string[]): DatabaseSync | null {
    const db = this.#open();
    if (!db) return null;
    const present = this.#tables(db);
    return tables.every((t) => present.has(t)) ? db : null;
  }

  listRuns(): RunSummary[] {
    const db = this.#ready("runs");
    if (!db) return [];
    return db.prepare("select * from runs order by created_at desc, id desc").all()
      .map((r) => this.#summary(db, r as Row));
  }

  getRun(id: string): RunDetail | null {
    const db = this.#ready("runs");
    if (!db) return null;
    const r = db.prepare("select * from runs where id = ?").get(id) as Row | undefined;
    if (!r) return null;
    return {
      ...this.#summary(db, r),
      config: parseObject(r.config),
      wallSeconds: num(r.wall_seconds),
      checkpoint: str(r.checkpoint),
    };
  }

  #summary(db: DatabaseSync, r: Row): RunSummary {
    const config = parseObject(r.config);
    const status = r.status as RunStatus;
    const loss = typeof config.loss === "string" ? config.loss : null;
    const createdAt = r.created_at as string;
    let peakBytes = num(r.peak_bytes);
    if (peakBytes === null && status === "running") peakBytes = this.#livePeak(db, r.id as string);
    const wall = num(r.wall_seconds);
    const since = (Date.now() - Date.parse(createdAt)) / 1000;
    return {
      id: r.id as string,
      name: r.name as string,
      status,
      dataset: r.dataset as string,
      loss,
      negatives: loss === "ce" ? null : loss === "bce" ? 1 : num(config.negatives),
      batchSize: num(config.batchSize),
      bestValidNdcg10: num(r.best_valid_ndcg10),
      peakBytes,
      durationSeconds: wall ?? (status === "running" && Number.isFinite(since) ? since : null),
      createdAt,
      finishedAt: str(r.finished_at),
      sweepId: str(r.sweep_id),
      error: str(r.error),
    };
  }

  #livePeak(db: DatabaseSync, runId: string): number | null {
    if (!this.#tables(db).has("metrics")) return null;
    const marks = PEAK_KEYS.map(() => "?").join(", ");
    const row = db.prepare(
      `select max(value) as v from metrics where run_id = ? and key in (${marks})`,
    ).get(runId, ...PEAK_KEYS) as Row | undefined;
    return num(row?.v);
  }

  /**
   * A run's metrics in write order. `after` returns only rows written after that cursor; `upTo`
   * bounds the rows to a snapshot; `keys` selects keys, `exceptKeys` leaves some out.
   */
  metrics(
    runId: string,
    opts: {
      after?: number;
      upTo?: number;
      keys?: string[];
      exceptKeys?: string[];
      limit?: number;
    } = {},
  ): MetricRow[] {
    const db = this.#ready("metrics");
    if (!db) return [];
    const where = ["run_id = ?", "rowid > ?"];
    const args: (string | number)[] = [runId, opts.after ?? 0];
    if (opts.upTo !== undefined) {
      where.push("rowid <= ?");
      args.push(opts.upTo);
    }
    if (opts.keys) {
      where.push(`key in (${opts.keys.map(() => "?").join(", ")})`);
      args.push(...opts.keys);
    }
    if (opts.exceptKeys) {
      where.push(`key not in (${opts.exceptKeys.map(() => "?").join(", ")})`);
      args.push(...opts.exceptKeys);
    }
    const limit = opts.limit ? ` limit ${Math.floor(opts.limit)}` : "";
    return db.prepare(
      `select rowid, epoch, step, key, value from metrics where ${
        where.join(" and ")
      } order by rowid${limit}`,
    ).all(...args).map((r) => {
      const row = r as Row;
      return {
        rowid: Number(row.rowid),
        epoch: Number(row.epoch),
        step: Number(row.step),
        key: row.key as string,
        value: Number(row.value),
      };
    });
  }

  /** The newest metric rowid of a run (0 when it has none). */
  metricsCursor(runId: string): number {
    const db = this.#ready("metrics");
    if (!db) return 0;
    const row = db.prepare("select max(rowid) as c from metrics where run_id = ?").get(runId);
    return num((row as Row | undefined)?.c) ?? 0;
  }

  listSweeps(): SweepSummary[] {
    const db = this.#ready("sweeps");
    if (!db) return [];
    const counts = new Map<string, { trials: number; finished: number }>();
    if (this.#tables(db).has("trials")) {
      const rows = db.prepare(
        `select sweep_id, count(*) as n, sum(status = 'finished') as f from trials
         group by sweep_id`,
      ).all();
      for (const r of rows as Row[]) {
        counts.set(r.sweep_id as string, { trials: Number(r.n), finished: Number(r.f) });
      }
    }
    return db.prepare("select * from sweeps order by created_at desc, id desc").all()
      .map((r) => toSweep(r as Row, counts.get((r as Row).id as string)));
  }

  getSweep(id: string): { sweep: SweepSummary; trials: TrialInfo[] } | null {
    const db = this.#ready("sweeps");
    if (!db) return null;
    const r = db.prepare("select * from sweeps where id = ?").get(id) as Row | undefined;
    if (!r) return null;
    const tables = this.#tables(db);
    let trials: TrialInfo[] = [];
    if (tables.has("trials")) {
      const joined = tables.has("runs");
      const rows = db.prepare(
        joined
          ? `select t.*, r.name as run_name, r.best_valid_ndcg10 as run_ndcg,
               r.peak_bytes as run_peak
             from trials t left join runs r on r.id = t.run_id
             where t.sweep_id = ? order by t.rowid`
          : "select * from trials where sweep_id = ? order by rowid",
      ).all(id) as Row[];
      trials = rows.map((t) => ({
        key: t.key as string,
        params: parseObject(t.params),
        status: t.status as TrialStatus,
        runId: str(t.run_id),
        runName: str(t.run_name),
        estimateBytes: num(t.estimate_bytes),
        peakBytes: num(t.peak_bytes) ?? num(t.run_peak),
        ndcg10: num(t.run_ndcg),
        error: str(t.error),
        startedAt: str(t.started_at),
        finishedAt: str(t.finished_at),
      }));
    }
    const finished = trials.filter((t) => t.status === "finished").length;
    return { sweep: toSweep(r, { trials: trials.length, finished }), trials };
  }

  close(): void {
    this.#db?.close();
    this.#db = null;
  }
}

function toSweep(r: Row, counts?: { trials: number; finished: number }): SweepSummary {
  const grid: Record<string, unknown[]> = {};
  for (const [axis, values] of Object.entries(parseObject(r.grid))) {
    grid[axis] = Array.isArray(values) ? values : [values];
  }
  return {
    id: r.id as string,
    name: (r.name as string | null) ?? (r.id as string),
    status: (r.status as string | null) ?? "",
    args: parseObject(r.args),
    grid,
    budgetBytes: num(r.budget_bytes),
    createdAt: (r.created_at as string | null) ?? "",
    trials: counts?.trials ?? 0,
    finishedTrials: counts?.finished ?? 0,
  };
}

/** A JSON object column; anything else (null, a damaged value) reads as an empty object. */
function parseObject(text: unknown): Record<string, unknown> {
  if (typeof text !== "string") return {};
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}
