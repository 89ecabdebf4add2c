/**
 * The sweep store: sweeps and their trials, in the run store's SQLite file (`<runs>/runs.sqlite`)
 * so that a trial joins its run, and a dashboard reads both with one connection. It shares the
 * RunStore's connection (WAL, busy_timeout): sweep runners and their trial processes write at once.
 * Each recorded outcome is entered in a ledger keyed by sweep, trial and attempt, so an outcome
 * delivered twice (a queue job read again after a restart) is recorded once.
 */
import type { DatabaseSync } from "node:sqlite";
import type { OutcomeView, StoreReader } from "./read.ts";
import { addMissingColumn, type MetricPoint, type RunRecord, RunStore } from "./runs.ts";

export type SweepStatus = "running" | "finished" | "failed" | "interrupted";
/** "pruned": stopped early by the search (ASHA) at a rung; its run has the epochs it trained. */
export type TrialStatus =
  | "pending"
  | "running"
  | "finished"
  | "failed"
  | "exceeds_budget"
  | "pruned";
export type Param = string | number | boolean;

export interface SweepRecord {
  id: string;
  name: string;
  /** Config key → value of the command's single-valued training flags. */
  args: Record<string, Param>;
  /** Config key → values of each grid axis, in command-line order. */
  grid: Record<string, Param[]>;
  budgetBytes: number | null;
  createdAt: string;
  status: SweepStatus;
}

export interface SweepSummary extends SweepRecord {
  /** Trials per status. */
  counts: Record<TrialStatus, number>;
}

export interface TrialRecord {
  sweepId: string;
  key: string;
  params: Record<string, Param>;
  status: TrialStatus;
  runId: string | null;
  estimateBytes: number | null;
  peakBytes: number | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** The queue worker that ran it (`host:pid` or its --name); null for a trial run locally. */
  worker: string | null;
  /** How many times the sweep has started it (the queue job's number); 0: never started. */
  attempt: number;
}

/** What recordOutcome writes: the trial's final record, and the run when it comes from afar. */
export interface OutcomeRecord {
  trial: TrialRecord;
  /** The run and its metrics as a queue worker's store holds them; null: already in this store. */
  imported: { run: RunRecord; metrics: MetricPoint[] } | null;
}

/** A trial with its run and the run's results. */
export interface TrialView extends TrialRecord {
  run: RunRecord | null;
  /** Validation metrics of the epoch with the best validation NDCG@10. */
  validNdcg10: number | null;
  validHr10: number | null;
  validCoverage10: number | null;
  bestEpoch: number | null;
  /** Median seconds per training epoch. */
  secondsPerEpoch: number | null;
}

export interface SweepView {
  sweep: SweepRecord;
  trials: TrialView[];
}

const SCHEMA = `
create table if not exists sweeps (id text primary key, name text not null, args text not null,
  grid text not null, budget_bytes integer, created_at text not null, status text not null);
create table if not exists trials (sweep_id text not null references sweeps(id), key text not null,
  params text not null, status text not null, run_id text, estimate_bytes integer,
  peak_bytes integer, error text, started_at text, finished_at text,
  primary key (sweep_id, key));
create table if not exists trial_outcomes (sweep_id text not null, key text not null,
  attempt integer not null, status text not null, worker text, run_id text,
  recorded_at text not null, primary key (sweep_id, key, attempt));
create table if not exists rungs (sweep_id text not null, rung integer not null, key text not null,
  value real not null, primary key (sweep_id, rung, key));
`;

export class SweepStore {
  readonly runs: RunStore;
  readonly db: DatabaseSync;
  /** The read model over the shared connection: sweep reads are queries of src/store/read.ts. */
  readonly read: StoreReader;

  private constructor(runs: RunStore) {
    this.runs = runs;
    this.db = runs.db;
    this.read = runs.read;
    this.db.exec(SCHEMA);
    addMissingColumn(this.db, "trials", "worker", "text");
    addMissingColumn(this.db, "trials", "attempt", "integer not null default 0");
  }

  /** Opens the store of `<runsDir>/runs.sqlite` (creating the folder, the file and the tables). */
  static open(runsDir: string): SweepStore {
    return new SweepStore(RunStore.open(runsDir));
  }

  /**
   * Creates the sweep, or, when its id exists (the same command again), marks it running and
   * records the current budget and, when given, the new name. Returns the record and whether it
   * was created.
   */
  createOrGetSweep(s: {
    id: string;
    name: string | null;
    defaultName: string;
    args: Record<string, Param>;
    grid: Record<string, Param[]>;
    budgetBytes: number | null;
  }): { sweep: SweepRecord; created: boolean } {
    return this.transaction(() => {
      const existing = this.getSweepRecord(s.id);
      if (existing) {
        this.db.prepare(
          "update sweeps set status = 'running', budget_bytes = ?, name = coalesce(?, name) where id = ?",
        ).run(s.budgetBytes, s.name, s.id);
      } else {
        this.db.prepare(
          `insert into sweeps (id, name, args, grid, budget_bytes, created_at, status)
           values (?, ?, ?, ?, ?, ?, 'running')`,
        ).run(
          s.id,
          s.name ?? s.defaultName,
          JSON.stringify(s.args),
          JSON.stringify(s.grid),
          s.budgetBytes,
          new Date().toISOString(),
        );
      }
      return { sweep: this.getSweepRecord(s.id)!, created: !existing };
    });
  }

  setSweepStatus(id: string, status: SweepStatus): void {
    this.db.prepare("update sweeps set status = ? where id = ?").run(status, id);
  }

  /** Adds the trials that are not in the sweep yet as pending; existing trials stay as they are. */
  ensureTrials(sweepId: string, trials: { key: string; params: Record<string, Param> }[]): void {
    const insert = this.db.prepare(
      `insert into trials (sweep_id, key, params, status) values (?, ?, ?, 'pending')
       on conflict (sweep_id, key) do nothing`,
    );
    this.transaction(() => {
      for (const t of trials) insert.run(sweepId, t.key, JSON.stringify(t.params));
    });
  }

  /** Writes a trial's whole record in one statement, so no reader sees half of an update. */
  upsertTrial(t: TrialRecord): void {
    this.db.prepare(
      `insert into trials (sweep_id, key, params, status, run_id, estimate_bytes, peak_bytes,
         error, started_at, finished_at, worker, attempt)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       on conflict (sweep_id, key) do update set params = excluded.params,
         status = excluded.status, run_id = excluded.run_id,
         estimate_bytes = excluded.estimate_bytes, peak_bytes = excluded.peak_bytes,
         error = excluded.error, started_at = excluded.started_at,
         finished_at = excluded.finished_at, worker = excluded.worker,
         attempt = excluded.attempt`,
    ).run(
      t.sweepId,
      t.key,
      JSON.stringify(t.params),
      t.status,
      t.runId,
      t.estimateBytes,
      t.peakBytes,
      t.error,
      t.startedAt,
      t.finishedAt,
      t.worker,
      t.attempt,
    );
  }

  /**
   * Records how an attempt of a trial ended, once: the ledger entry (sweep, key, attempt), the
   * imported run and the trial's record are written in one transaction, and an attempt already in
   * the ledger changes nothing. Returns whether this call recorded it.
   */
  recordOutcome(o: OutcomeRecord): boolean {
    const t = o.trial;
    return this.transaction(() => {
      const entered = this.db.prepare(
        `insert into trial_outcomes (sweep_id, key, attempt, status, worker, run_id, recorded_at)
         values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing`,
      ).run(t.sweepId, t.key, t.attempt, t.status, t.worker, t.runId, new Date().toISOString());
      if (Number(entered.changes) === 0) return false;
      if (o.imported) this.runs.importRun(o.imported.run, o.imported.metrics);
      this.upsertTrial(t);
      return true;
    });
  }

  /** The ledger: every recorded attempt of a sweep's trials, in the order they were recorded. */
  listOutcomes(sweepId: string): OutcomeView[] {
    return this.read.listOutcomes(sweepId);
  }

  /**
   * ASHA's rung table for trials run here: records the trial's value at the rung (replacing its
   * earlier one) and returns the other trials' values there, read in the same transaction.
   */
  reportRung(sweepId: string, rung: number, key: string, value: number): number[] {
    return this.transaction(() => {
      const others = (this.db.prepare(
        "select value from rungs where sweep_id = ? and rung = ? and key != ?",
      ).all(sweepId, rung, key) as { value: number }[]).map((r) => Number(r.value));
      this.db.prepare(
        `insert into rungs (sweep_id, rung, key, value) values (?, ?, ?, ?)
         on conflict (sweep_id, rung, key) do update set value = excluded.value`,
      ).run(sweepId, rung, key, value);
      return others;
    });
  }

  getTrial(sweepId: string, key: string): TrialRecord | null {
    return this.read.getTrial(sweepId, key);
  }

  listTrials(sweepId: string): TrialRecord[] {
    return this.read.listTrials(sweepId);
  }

  /**
   * After an interruption: the running trials go back to pending (their runs stay in the run store
   * as stopped or failed runs) and the sweep is marked interrupted, in one transaction, so a
   * reader never sees a trial running in a sweep that is not. Returns how many trials it reset.
   */
  markInterrupted(sweepId: string): number {
    return this.transaction(() => {
      const r = this.db.prepare(
        `update trials set status = 'pending', run_id = null, peak_bytes = null, error = null,
           started_at = null, finished_at = null, worker = null
         where sweep_id = ? and status = 'running'`,
      ).run(sweepId);
      this.setSweepStatus(sweepId, "interrupted");
      return Number(r.changes);
    });
  }

  getSweepRecord(id: string): SweepRecord | null {
    return this.read.getSweepRecord(id);
  }

  /** Every sweep, newest first, with its trial counts per status. */
  listSweeps(): SweepSummary[] {
    return this.read.listSweeps();
  }

  /** A sweep with every trial, its run and the run's best validation metrics and s/epoch. */
  getSweep(id: string): SweepView | null {
    return this.read.getSweep(id);
  }

  transaction<T>(fn: () => T): T {
    return this.runs.transaction(fn);
  }

  close(): void {
    this.runs.close();
  }
}
