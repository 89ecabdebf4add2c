/**
 * What a sweep says and records about its trials, whether they run in local lanes or on queue
 * workers: progress lines, the trial records, and how a trial's outcome is recorded once.
 */
import { formatBytes } from "../gpu/allocator.ts";
import type { SweepStore, TrialRecord } from "../store/sweeps.ts";
import type { MetricPoint, RunRecord } from "../store/runs.ts";
import type { SweepCommand, Trial } from "./grid.ts";
import type { TrialOutcome } from "./process.ts";
import { ESTIMATE_TOLERANCE } from "./report.ts";
import type { AshaPlan } from "./search.ts";

/** One line per event: text for people, or JSON objects with --json. */
export class Progress {
  constructor(
    private readonly json: boolean,
    private readonly write: (line: string) => void = (line) => console.log(line),
  ) {}

  event(type: string, fields: Record<string, unknown>, text: string): void {
    this.write(
      this.json ? JSON.stringify({ event: type, time: new Date().toISOString(), ...fields }) : text,
    );
  }
}

/** What every step of a sweep needs to know about it. */
export interface SweepContext {
  cmd: SweepCommand;
  id: string;
  name: string;
  budget: number;
  total: number;
  store: SweepStore;
  progress: Progress;
}

/** A trial that passed the plan: it is to run. */
export interface Job {
  trial: Trial;
  index: number;
  /** Training flags, the sweep's included, without --out and --sweep-id (where it runs sets them). */
  argv: string[];
  estimate: number;
  /** ASHA's rungs for this trial; null for a grid or random search. */
  asha: AshaPlan | null;
  /** The trial's record before this command: its status and how often it was started. */
  prior: { status: TrialRecord["status"]; attempt: number };
}

export const tag = (ctx: SweepContext, job: { index: number; trial: Trial }) =>
  `[${job.index + 1}/${ctx.total}] ${job.trial.key || "(single trial)"}`;

export const where = (ctx: SweepContext, job: { index: number; trial: Trial }) => ({
  sweep: ctx.id,
  key: job.trial.key,
  index: job.index + 1,
  of: ctx.total,
});

export function pendingRecord(ctx: SweepContext, t: Trial, attempt: number): TrialRecord {
  return {
    sweepId: ctx.id,
    key: t.key,
    params: t.params,
    status: "pending",
    runId: null,
    estimateBytes: null,
    peakBytes: null,
    error: null,
    startedAt: null,
    finishedAt: null,
    worker: null,
    attempt,
  };
}

/** The run and metrics a queue worker sends back, to be written into the sweep's store. */
export interface ImportedRun {
  run: RunRecord;
  metrics: MetricPoint[];
}

/**
 * Records how an attempt ended (once: a second delivery of the same attempt changes nothing and
 * says so) and reports it. `running` is the trial's record while it ran.
 */
export async function finishTrial(
  ctx: SweepContext,
  job: Job,
  running: TrialRecord,
  outcome: TrialOutcome,
  imported: ImportedRun | null,
): Promise<void> {
  const { runId } = outcome;
  const runPeak = imported?.run.peakBytes ??
    (runId ? (await ctx.store.runs.getRun(runId))?.peakBytes ?? null : null);
  const status = outcome.status === "finished"
    ? "finished"
    : outcome.status === "pruned"
    ? "pruned"
    : "failed";
  const peak = status === "failed" ? runPeak : runPeak ?? outcome.done?.peak_bytes ?? null;
  const record: TrialRecord = {
    ...running,
    status,
    runId,
    peakBytes: peak,
    error: outcome.error,
    finishedAt: new Date().toISOString(),
  };
  const at = { ...where(ctx, job), run: runId, worker: record.worker, attempt: record.attempt };
  if (!(await ctx.store.recordOutcome({ trial: record, imported }))) {
    ctx.progress.event(
      "trial_duplicate",
      at,
      `${tag(ctx, job)}  attempt ${record.attempt} was recorded before: not recorded again`,
    );
    return;
  }
  const by = record.worker ? ` on ${record.worker}` : "";
  if (status === "failed") {
    ctx.progress.event(
      "trial_failed",
      { ...at, error: outcome.error },
      `${tag(ctx, job)}  failed${by}: ${outcome.error}`,
    );
    return;
  }
  if (status === "pruned") {
    ctx.progress.event(
      "trial_pruned",
      { ...at, valid_ndcg10: outcome.bestNdcg, error: outcome.error },
      `${tag(ctx, job)}  ${outcome.error}${by}`,
    );
    return;
  }
  const spe = outcome.done?.seconds_per_epoch ?? null;
  ctx.progress.event(
    "trial_finished",
    {
      ...at,
      valid_ndcg10: outcome.bestNdcg,
      peak_bytes: peak,
      estimate_bytes: job.estimate,
      seconds_per_epoch: spe,
    },
    `${tag(ctx, job)}  finished${by}: valid NDCG@10 ${outcome.bestNdcg?.toFixed(4) ?? "-"}, ` +
      `peak ${formatBytes(peak ?? 0)} (estimate ${formatBytes(job.estimate)}), ` +
      `${spe?.toFixed(2) ?? "-"} s/epoch`,
  );
  const off = peak ? (job.estimate - peak) / peak : 0;
  if (peak && Math.abs(off) > ESTIMATE_TOLERANCE) {
    ctx.progress.event(
      "estimate_off",
      {
        sweep: ctx.id,
        key: job.trial.key,
        estimate_bytes: job.estimate,
        peak_bytes: peak,
        relative_error: off,
      },
      `warning: ${job.trial.key || "trial"}: the estimate ${formatBytes(job.estimate)} is ${
        Math.abs(off * 100).toFixed(0)
      }% ${off < 0 ? "below" : "above"} the measured peak ${formatBytes(peak)} (tolerance ${
        ESTIMATE_TOLERANCE * 100
      }%)`,
    );
  }
}
