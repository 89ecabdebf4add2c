/**
 * Runs a sweep: every trial (the grid's, or random points) is validated and its peak memory
 * estimated here, trials over the budget are recorded and never started, the others run in their
 * own processes (`trial.ts`): here, at most `parallel` at once, or with --queue on the workers of a
 * BullMQ queue (coordinator.ts). State lives in the sweep store, so rerunning the same command
 * skips finished trials and retries the rest, and an interrupted sweep leaves every trial either
 * complete or pending.
 */
import { ConfigError, parseTrainArgs, type TrainConfig } from "../train/config.ts";
import { estimateFor, prepareData, type PreparedData } from "../train/recommender.ts";
import { formatBytes } from "../gpu/allocator.ts";
import { acquireDevice } from "../gpu/device.ts";
import { defaultMemoryLimit } from "../gpu/gpu.ts";
import { SweepStore, type SweepView, type TrialRecord } from "../store/sweeps.ts";
import {
  argsOf,
  defaultSweepName,
  gridOf,
  planTrials,
  type SweepCommand,
  sweepId,
  type Trial,
} from "./grid.ts";
import { runTrialProcess, whereTrialsWrite } from "./process.ts";
import {
  finishTrial,
  type Job,
  pendingRecord,
  Progress,
  type SweepContext,
  tag,
  where,
} from "./record.ts";
import { ashaPlan, type RungBoard, rungCutoff } from "./search.ts";
import { connectQueue } from "./queue.ts";
import { runOnQueue } from "./coordinator.ts";

export interface RunSweepOptions {
  /** Where progress lines go; stdout by default. */
  write?: (line: string) => void;
  /** Stops the sweep: no trial starts any more, running ones are stopped and become pending. */
  signal?: AbortSignal;
  /** How long a stopped trial may take to record its run before it is killed. */
  killGraceMs?: number;
  /** With --queue: how often the coordinator looks at its jobs. */
  pollMs?: number;
}

export interface SweepResult {
  sweepId: string;
  /** True when the signal stopped the sweep before every trial had run. */
  interrupted: boolean;
  view: SweepView;
}

/** The budget when none is given: what `deno task train` uses by default on this adapter. */
export async function deviceMemoryLimit(): Promise<number> {
  const acquired = await acquireDevice({ timestamps: false });
  acquired.device.destroy();
  return defaultMemoryLimit(acquired.isSoftware);
}

/** The config fields `prepareData` reads: trials that agree on them share one prepared data set. */
function dataKey(c: TrainConfig): string {
  return JSON.stringify([
    c.data,
    c.format,
    c.catalog,
    c.userCol,
    c.itemCol,
    c.timeCol,
    c.ratingCol,
    c.minRating,
    c.kCore,
    c.split,
    c.evalUsers,
    c.seed,
    c.out,
  ]);
}

export async function runSweep(
  cmd: SweepCommand,
  opts: RunSweepOptions = {},
): Promise<SweepResult> {
  const progress = new Progress(cmd.json, opts.write);
  const { signal } = opts;
  const trials = planTrials(cmd);
  const id = await sweepId(cmd);
  // An unreachable queue is refused before anything is written.
  const queue = cmd.queue ? await connectQueue(cmd.queue, "--queue") : null;
  try {
    const budget = cmd.budget ?? await deviceMemoryLimit();
    // Held open until every trial has ended: with a connection open, trial processes opening the
    // store never find the WAL being set up (RunStore sets journal_mode before busy_timeout).
    const store = await SweepStore.open(cmd.out, cmd.store);
    try {
      const { sweep, created } = await store.createOrGetSweep({
        id,
        name: cmd.name,
        defaultName: defaultSweepName(cmd),
        args: argsOf(cmd),
        grid: gridOf(cmd, trials),
        budgetBytes: budget,
      });
      await store.ensureTrials(id, trials);
      const total = trials.length;
      const placement = queue ? `on the queue ${cmd.queue}` : `${cmd.parallel} at once`;
      progress.event(
        "sweep",
        {
          sweep: id,
          name: sweep.name,
          trials: total,
          resumed: !created,
          budget_bytes: budget,
          search: cmd.search,
          ...(queue ? { queue: cmd.queue } : { parallel: cmd.parallel }),
        },
        `sweep ${id} "${sweep.name}": ${total} trial${total === 1 ? "" : "s"} (${cmd.search}), ` +
          `budget ${formatBytes(budget)}, ${placement}${created ? "" : " (resumed)"}`,
      );
      const ctx: SweepContext = { cmd, id, name: sweep.name, budget, total, store, progress };
      const jobs = await planJobs(ctx, trials, signal);
      if (queue) await runOnQueue(ctx, jobs, queue, opts);
      else await runJobs(ctx, jobs, opts);
      const interrupted = signal?.aborted ?? false;
      if (interrupted) {
        const reset = await store.markInterrupted(id);
        progress.event(
          "interrupted",
          { sweep: id, reset },
          `interrupted: ${reset} running trial${reset === 1 ? "" : "s"} back to pending; ` +
            (queue ? "queued trials go on on the workers; " : "") +
            "rerun the same command to resume",
        );
      } else {
        const failed = (await store.listTrials(id)).some((t) => t.status === "failed");
        await store.setSweepStatus(id, failed ? "failed" : "finished");
      }
      return { sweepId: id, interrupted, view: (await store.getSweep(id))! };
    } finally {
      await store.close();
    }
  } finally {
    await queue?.close();
  }
}

async function failBeforeStart(
  ctx: SweepContext,
  job: { index: number; trial: Trial; attempt: number },
  error: string,
) {
  const now = new Date().toISOString();
  await ctx.store.upsertTrial({
    ...pendingRecord(ctx, job.trial, job.attempt),
    status: "failed",
    error,
    startedAt: now,
    finishedAt: now,
  });
  ctx.progress.event(
    "trial_failed",
    { ...where(ctx, job), error },
    `${tag(ctx, job)}  failed: ${error}`,
  );
}

/** Every trial gets these: the sweep's budget, JSON logging, a named run. */
function sweepArgv(ctx: SweepContext, t: Trial): string[] {
  return [
    "--memory-limit",
    String(ctx.budget),
    "--json",
    "--name",
    t.key ? `${ctx.name} ${t.key}` : ctx.name,
  ];
}

/**
 * Validates each trial and estimates its peak: finished and pruned trials are skipped, bad
 * configurations fail, trials over the budget are recorded and never started; the rest become
 * jobs.
 */
async function planJobs(
  ctx: SweepContext,
  trials: Trial[],
  signal: AbortSignal | undefined,
): Promise<Job[]> {
  const { store, progress, id } = ctx;
  const jobs: Job[] = [];
  // One read per distinct data flags; a read that fails fails its trials without rereading.
  const prepared = new Map<string, PreparedData | Error>();
  for (const [index, trial] of trials.entries()) {
    if (signal?.aborted) break;
    const record = (await store.getTrial(id, trial.key))!;
    const at = { index, trial, attempt: record.attempt };
    if (record.status === "finished" || record.status === "pruned") {
      progress.event(
        "trial_skipped",
        { ...where(ctx, at), run: record.runId },
        `${tag(ctx, at)}  skipped: ${record.status} earlier (run ${record.runId})`,
      );
      continue;
    }
    const argv = [...trial.argv, ...sweepArgv(ctx, trial)];
    let config: TrainConfig;
    try {
      config = parseTrainArgs([...argv, "--out", ctx.cmd.out]).config;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      await failBeforeStart(ctx, at, e.message);
      continue;
    }
    const key = dataKey(config);
    if (!prepared.has(key)) prepared.set(key, await prepareData(config).catch((e) => e as Error));
    const data = prepared.get(key)!;
    if (data instanceof Error) {
      await failBeforeStart(ctx, at, data.message);
      continue;
    }
    const estimate = estimateFor(config, data).total;
    if (estimate > ctx.budget) {
      await store.upsertTrial({
        ...pendingRecord(ctx, trial, record.attempt),
        status: "exceeds_budget",
        estimateBytes: estimate,
      });
      progress.event(
        "trial_exceeds_budget",
        { ...where(ctx, at), estimate_bytes: estimate },
        `${tag(ctx, at)}  exceeds budget: estimate ${formatBytes(estimate)} > ${
          formatBytes(ctx.budget)
        }, not started`,
      );
      continue;
    }
    await store.upsertTrial({
      ...pendingRecord(ctx, trial, record.attempt),
      estimateBytes: estimate,
    });
    jobs.push({
      trial,
      index,
      argv,
      estimate,
      asha: ctx.cmd.search === "asha"
        ? ashaPlan(config.epochs, ctx.cmd.minEpochs, ctx.cmd.eta)
        : null,
      prior: { status: record.status, attempt: record.attempt },
    });
  }
  return jobs;
}

/**
 * Runs the jobs here, at most `parallel` at once. A lane that throws (the store, a failed spawn)
 * stops the others from starting trials, and the sweep waits for the running ones before it closes
 * the store they write to. The signal stops every running trial (SIGTERM, then SIGKILL after grace).
 */
async function runJobs(ctx: SweepContext, jobs: Job[], opts: RunSweepOptions): Promise<void> {
  const { signal } = opts;
  let next = 0;
  let broken: { error: unknown } | null = null;
  const lanes = Array.from({ length: Math.min(ctx.cmd.parallel, jobs.length) }, async () => {
    try {
      while (next < jobs.length && !signal?.aborted && !broken) {
        await runJob(ctx, jobs[next++], opts);
      }
    } catch (error) {
      broken ??= { error };
    }
  });
  await Promise.all(lanes);
  if (broken) throw (broken as { error: unknown }).error;
}

/** ASHA's rung table for trials run here: the sweep store. */
function storeBoard(ctx: SweepContext, eta: number): RungBoard {
  return {
    report: async (rung, key, value) => ({
      cutoff: rungCutoff(await ctx.store.reportRung(ctx.id, rung, key, value), eta),
    }),
  };
}

/** Starts one trial's process here, follows it and records how it ended. */
async function runJob(ctx: SweepContext, job: Job, opts: RunSweepOptions): Promise<void> {
  const running: TrialRecord = {
    ...pendingRecord(ctx, job.trial, job.prior.attempt + 1),
    status: "running",
    estimateBytes: job.estimate,
    startedAt: new Date().toISOString(),
  };
  await ctx.store.upsertTrial(running);
  ctx.progress.event(
    "trial_started",
    { ...where(ctx, job), estimate_bytes: job.estimate },
    `${tag(ctx, job)}  started (estimate ${formatBytes(job.estimate)})`,
  );
  const outcome = await runTrialProcess({
    argv: [...job.argv, ...whereTrialsWrite(ctx.cmd.out, ctx.cmd.store), "--sweep-id", ctx.id],
    signal: opts.signal,
    killGraceMs: opts.killGraceMs,
    onRun: async (run) => {
      running.runId = run;
      await ctx.store.upsertTrial(running);
      ctx.progress.event("trial_run", { ...where(ctx, job), run }, `${tag(ctx, job)}  run ${run}`);
    },
    asha: job.asha
      ? { plan: job.asha, board: storeBoard(ctx, job.asha.eta), key: job.trial.key }
      : undefined,
  });
  // Stopped by the sweep's signal: the trial stays running until markInterrupted, which
  // turns every such trial back to pending in one transaction.
  if (outcome.status === "interrupted") return;
  await finishTrial(ctx, job, running, outcome, null);
}
