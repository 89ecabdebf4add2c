/**
 * The sweep store: sweeps and their trials, in the run store's database (`<runs>/runs.sqlite` or
 * the --store PostgreSQL database) so that a trial joins its run, and a dashboard reads both with
 * one connection. It shares the RunStore's connection: sweep runners and their trial processes
 * write at once. Each recorded outcome is entered in a ledger keyed by sweep, trial and attempt, so
 * an outcome delivered twice (a queue job read again after a restart) is recorded once.
 */
import type { OutcomeView, StoreReader } from "./read.ts";
import { type MetricPoint, type RunRecord, RunStore } from "./runs.ts";
import { ensureTables, SWEEP_TABLES } from "./schema.ts";
import type { Sql } from "./sql.ts";

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

export class SweepStore {
  readonly db: Sql;
  /** The read model over the shared connection: sweep reads are queries of src/store/read.ts. */
  readonly read: StoreReader;

  /** A store over a run store whose sweep tables exist (`open`, or a transaction's). */
  constructor(readonly runs: RunStore) {
    this.db = runs.db;
    this.read = runs.read;
  }

  /**
   * Opens the store of `store` (a postgres:// URL) when given, else of `<runsDir>/runs.sqlite`,
   * creating the folder, the file and the tables.
   */
  static async open(runsDir: string, store: string | null = null): Promise<SweepStore> {
    const runs = await RunStore.open(runsDir, store);
    try {
      await ensureTables(runs.db, SWEEP_TABLES);
    } catch (e) {
      await runs.close();
      throw e;
    }
    return new SweepStore(runs);
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
  }): Promise<{ sweep: SweepRecord; created: boolean }> {
    return this.transaction(async (tx) => {
      const existing = await tx.getSweepRecord(s.id);
      if (existing) {
        await tx.db.run(
          "update sweeps set status = 'running', budget_bytes = ?, name = coalesce(?, name) where id = ?",
          [s.budgetBytes, s.name, s.id],
        );
      } else {
        await tx.db.run(
          `insert into sweeps (id, name, args, grid, budget_bytes, created_at, status)
           values (?, ?, ?, ?, ?, ?, 'running')`,
          [
            s.id,
            s.name ?? s.defaultName,
            JSON.stringify(s.args),
            JSON.stringify(s.grid),
            s.budgetBytes,
            new Date().toISOString(),
          ],
        );
      }
      return { sweep: (await tx.getSweepRecord(s.id))!, created: !existing };
    });
  }

  async setSweepStatus(id: string, status: SweepStatus): Promise<void> {
    await this.db.run("update sweeps set status = ? where id = ?", [status, id]);
  }

  /** Adds the trials that are not in the sweep yet as pending; existing trials stay as they are. */
  async ensureTrials(
    sweepId: string,
    trials: { key: string; params: Record<string, Param> }[],
  ): Promise<void> {
    await this.transaction(async (tx) => {
      for (const t of trials) {
        await tx.db.run(
          `insert into trials (sweep_id, key, params, status) values (?, ?, ?, 'pending')
           on conflict (sweep_id, key) do nothing`,
          [sweepId, t.key, JSON.stringify(t.params)],
        );
      }
    });
  }

  /** Writes a trial's whole record in one statement, so no reader sees half of an update. */
  async upsertTrial(t: TrialRecord): Promise<void> {
    await this.db.run(
      `insert into trials (sweep_id, key, params, status, run_id, estimate_bytes, peak_bytes,
         error, started_at, finished_at, worker, attempt)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       on conflict (sweep_id, key) do update set params = excluded.params,
         status = excluded.status, run_id = excluded.run_id,
         estimate_bytes = excluded.estimate_bytes, peak_bytes = excluded.peak_bytes,
         error = excluded.error, started_at = excluded.started_at,
         finished_at = excluded.finished_at, worker = excluded.worker,
         attempt = excluded.attempt`,
      [
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
      ],
    );
  }

  /**
   * Records how an attempt of a trial ended, once: the ledger entry (sweep, key, attempt), the
   * imported run and the trial's record are written in one transaction, and an attempt already in
   * the ledger changes nothing. Returns whether this call recorded it.
   */
  recordOutcome(o: OutcomeRecord): Promise<boolean> {
    const t = o.trial;
    return this.transaction(async (tx) => {
      const entered = await tx.db.run(
        `insert into trial_outcomes (sweep_id, key, attempt, status, worker, run_id, recorded_at)
         values (?, ?, ?, ?, ?, ?, ?) on conflict do nothing`,
        [t.sweepId, t.key, t.attempt, t.status, t.worker, t.runId, new Date().toISOString()],
      );
      if (entered === 0) return false;
      if (o.imported) await tx.runs.importRun(o.imported.run, o.imported.metrics);
      await tx.upsertTrial(t);
      return true;
    });
  }

  /** The ledger: every recorded attempt of a sweep's trials, in the order they were recorded. */
  listOutcomes(sweepId: string): Promise<OutcomeView[]> {
    return this.read.listOutcomes(sweepId);
  }

  /**
   * ASHA's rung table for trials run here: records the trial's value at the rung (replacing its
   * earlier one) and returns the other trials' values there, read in the same transaction.
   */
  reportRung(sweepId: string, rung: number, key: string, value: number): Promise<number[]> {
    return this.transaction(async (tx) => {
      const others = (await tx.db.all(
        "select value from rungs where sweep_id = ? and rung = ? and key != ?",
        [sweepId, rung, key],
      )).map((r) => Number(r.value));
      await tx.db.run(
        `insert into rungs (sweep_id, rung, key, value) values (?, ?, ?, ?)
         on conflict (sweep_id, rung, key) do update set value = excluded.value`,
        [sweepId, rung, key, value],
      );
      return others;
    });
  }

  getTrial(sweepId: string, key: string): Promise<TrialRecord | null> {
    return this.read.getTrial(sweepId, key);
  }

  listTrials(sweepId: string): Promise<TrialRecord[]> {
    return this.read.listTrials(sweepId);
  }

  /**
   * After an interruption: the running trials go back to pending (their runs stay in the run store
   * as stopped or failed runs) and the sweep is marked interrupted, in one transaction, so a
   * reader never sees a trial running in a sweep that is not. Returns how many trials it reset.
   */
  markInterrupted(sweepId: string): Promise<number> {
    return this.transaction(async (tx) => {
      const reset = await tx.db.run(
        `update trials set status = 'pending', run_id = null, peak_bytes = null, error = null,
           started_at = null, finished_at = null, worker = null
         where sweep_id = ? and status = 'running'`,
        [sweepId],
      );
      await tx.setSweepStatus(sweepId, "interrupted");
      return reset;
    });
  }

  getSweepRecord(id: string): Promise<SweepRecord | null> {
    return this.read.getSweepRecord(id);
  }

  /** Every sweep, newest first, with its trial counts per status. */
  listSweeps(): Promise<SweepSummary[]> {
    return this.read.listSweeps();
  }

  /** A sweep with every trial, its run and the run's best validation metrics and s/epoch. */
  getSweep(id: string): Promise<SweepView | null> {
    return this.read.getSweep(id);
  }

  /** Runs `fn` in one write transaction, over a store bound to it. */
  transaction<T>(fn: (tx: SweepStore) => Promise<T>): Promise<T> {
    return this.runs.transaction((runs) => fn(new SweepStore(runs)));
  }

  close(): Promise<void> {
    return this.runs.close();
  }
}
