/**
 * Runs a sweep: every trial of the grid is validated and its peak memory estimated here, trials
 * over the budget are recorded and never started, the others run in their own processes
 * (`trial.ts`), at most `parallel` at once. State lives in the sweep store, so rerunning the same
 * command skips finished trials and retries the rest, and an interrupted sweep leaves every
 * trial either complete or pending.
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
  expandGrid,
  gridOf,
  type SweepCommand,
  sweepId,
  type Trial,
} from "./grid.ts";
import { ESTIMATE_TOLERANCE } from "./report.ts";
import { parseTrainEvent, type TrainEvent } from "../train/events.ts";

/** The worker entry point each trial runs. */
export const TRIAL_SCRIPT = new URL("./trial.ts", import.meta.url).pathname;

export interface RunSweepOptions {
  /** Where progress lines go; stdout by default. */
  write?: (line: string) => void;
  /** Stops the sweep: no trial starts any more, running ones are stopped and become pending. */
  signal?: AbortSignal;
  /** How long a stopped trial may take to record its run before it is killed. */
  killGraceMs?: number;
}

export interface SweepResult {
  sweepId: string;
  /** True when the signal stopped the sweep before every trial had run. */
  interrupted: boolean;
  view: SweepView;
}

interface Job {
  trial: Trial;
  index: number;
  argv: string[];
  estimate: number;
}

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
  const trials = expandGrid(cmd);
  const id = await sweepId(cmd);
  const budget = cmd.budget ?? await deviceMemoryLimit();
  // Held open until every trial has ended: with a connection open, trial processes opening the
  // store never find the WAL being set up (RunStore sets journal_mode before busy_timeout).
  const store = SweepStore.open(cmd.out);
  try {
    const { sweep, created } = store.createOrGetSweep({
      id,
      name: cmd.name,
      defaultName: defaultSweepName(cmd),
      args: argsOf(cmd),
      grid: gridOf(cmd),
      budgetBytes: budget,
    });
    store.ensureTrials(id, trials);
    const total = trials.length;
    progress.event(
      "sweep",
      {
        sweep: id,
        name: sweep.name,
        trials: total,
        resumed: !created,
        budget_bytes: budget,
        parallel: cmd.parallel,
      },
      `sweep ${id} "${sweep.name}": ${total} trial${total === 1 ? "" : "s"}, budget ` +
        `${formatBytes(budget)}, ${cmd.parallel} at once${created ? "" : " (resumed)"}`,
    );
    const ctx: SweepContext = { cmd, id, name: sweep.name, budget, total, store, progress };
    const jobs = await planJobs(ctx, trials, signal);
    await runJobs(ctx, jobs, opts);
    const interrupted = signal?.aborted ?? false;
    if (interrupted) {
      const reset = store.markInterrupted(id);
      progress.event(
        "interrupted",
        { sweep: id, reset },
        `interrupted: ${reset} running trial${reset === 1 ? "" : "s"} back to pending; ` +
          "rerun the same command to resume",
      );
    } else {
      const failed = store.listTrials(id).some((t) => t.status === "failed");
      store.setSweepStatus(id, failed ? "failed" : "finished");
    }
    return { sweepId: id, interrupted, view: store.getSweep(id)! };
  } finally {
    store.close();
  }
}

/** What every step of a sweep needs to know about it. */
interface SweepContext {
  cmd: SweepCommand;
  id: string;
  name: string;
  budget: number;
  total: number;
  store: SweepStore;
  progress: Progress;
}

const tag = (ctx: SweepContext, job: { index: number; trial: Trial }) =>
  `[${job.index + 1}/${ctx.total}] ${job.trial.key || "(single trial)"}`;

const where = (ctx: SweepContext, job: { index: number; trial: Trial }) => ({
  sweep: ctx.id,
  key: job.trial.key,
  index: job.index + 1,
  of: ctx.total,
});

function pendingRecord(ctx: SweepContext, t: Trial): TrialRecord {
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
  };
}

/** Every trial gets these: the sweep's runs folder and budget, JSON logging, a named run. */
function sweepArgv(ctx: SweepContext, t: Trial): string[] {
  return [
    "--out",
    ctx.cmd.out,
    "--memory-limit",
    String(ctx.budget),
    "--json",
    "--name",
    t.key ? `${ctx.name} ${t.key}` : ctx.name,
  ];
}

function failBeforeStart(ctx: SweepContext, job: { index: number; trial: Trial }, error: string) {
  const now = new Date().toISOString();
  ctx.store.upsertTrial({
    ...pendingRecord(ctx, job.trial),
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

/**
 * Validates each trial and estimates its peak: finished trials are skipped, bad configurations
 * fail, trials over the budget are recorded and never started; the rest become jobs.
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
    const at = { index, trial };
    const record = store.getTrial(id, trial.key)!;
    if (record.status === "finished") {
      progress.event(
        "trial_skipped",
        { ...where(ctx, at), run: record.runId },
        `${tag(ctx, at)}  skipped: finished earlier (run ${record.runId})`,
      );
      continue;
    }
    const argv = [...trial.argv, ...sweepArgv(ctx, trial)];
    let config: TrainConfig;
    try {
      config = parseTrainArgs(argv).config;
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      failBeforeStart(ctx, at, e.message);
      continue;
    }
    const key = dataKey(config);
    if (!prepared.has(key)) prepared.set(key, await prepareData(config).catch((e) => e as Error));
    const data = prepared.get(key)!;
    if (data instanceof Error) {
      failBeforeStart(ctx, at, data.message);
      continue;
    }
    const estimate = estimateFor(config, data).total;
    if (estimate > ctx.budget) {
      store.upsertTrial({
        ...pendingRecord(ctx, trial),
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
    store.upsertTrial({ ...pendingRecord(ctx, trial), estimateBytes: estimate });
    jobs.push({ trial, index, argv, estimate });
  }
  return jobs;
}

/**
 * Runs the jobs, at most `parallel` at once. A lane that throws (the store, a failed spawn) stops
 * the others from starting trials, and the sweep waits for the running ones before it closes the
 * store they write to. The signal stops every running trial (SIGTERM, then SIGKILL after grace).
 */
async function runJobs(ctx: SweepContext, jobs: Job[], opts: RunSweepOptions): Promise<void> {
  const { signal } = opts;
  const children = new Set<Deno.ChildProcess>();
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    for (const child of children) kill(child, "SIGTERM");
    killTimer = setTimeout(() => {
      for (const child of children) kill(child, "SIGKILL");
    }, opts.killGraceMs ?? 15_000);
  };
  signal?.addEventListener("abort", onAbort);
  let next = 0;
  let broken: { error: unknown } | null = null;
  const lanes = Array.from({ length: Math.min(ctx.cmd.parallel, jobs.length) }, async () => {
    try {
      while (next < jobs.length && !signal?.aborted && !broken) {
        await runJob(ctx, jobs[next++], children, signal);
      }
    } catch (error) {
      broken ??= { error };
    }
  });
  await Promise.all(lanes);
  signal?.removeEventListener("abort", onAbort);
  clearTimeout(killTimer);
  if (broken) throw (broken as { error: unknown }).error;
}

/** What a trial process reported, read from its event lines (src/train/events.ts). */
interface TrialReport {
  runId: string | null;
  done: Extract<TrainEvent, { event: "done" }> | null;
  trainError: string | null;
  bestNdcg: number | null;
}

/** Starts one trial's process, follows its events and records how it ended. */
async function runJob(
  ctx: SweepContext,
  job: Job,
  children: Set<Deno.ChildProcess>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const running: TrialRecord = {
    ...pendingRecord(ctx, job.trial),
    status: "running",
    estimateBytes: job.estimate,
    startedAt: new Date().toISOString(),
  };
  ctx.store.upsertTrial(running);
  ctx.progress.event(
    "trial_started",
    { ...where(ctx, job), estimate_bytes: job.estimate },
    `${tag(ctx, job)}  started (estimate ${formatBytes(job.estimate)})`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TRIAL_SCRIPT, ...job.argv, "--sweep-id", ctx.id],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(child);
  if (signal?.aborted) kill(child, "SIGTERM");
  const stderr = tail(child.stderr, 8192);
  const report = await followTrial(ctx, job, running, child.stdout);
  const status = await child.status;
  children.delete(child);
  const errText = await stderr;
  const finishedAt = new Date().toISOString();
  const { runId, done } = report;
  if (status.success && done?.status === "finished" && runId) {
    recordFinished(ctx, job, running, runId, done, report.bestNdcg, finishedAt);
    return;
  }
  // Stopped by the sweep's signal: the trial stays running until markInterrupted, which
  // turns every such trial back to pending in one transaction.
  if (signal?.aborted) return;
  const error = report.trainError ?? done?.error ?? lastErrorLine(errText) ??
    (status.signal ? `killed by ${status.signal}` : `exited with code ${status.code}`);
  const run = runId ? ctx.store.runs.getRun(runId) : null;
  ctx.store.upsertTrial({
    ...running,
    status: "failed",
    runId,
    peakBytes: run?.peakBytes ?? null,
    error,
    finishedAt,
  });
  ctx.progress.event(
    "trial_failed",
    { ...where(ctx, job), run: runId, error },
    `${tag(ctx, job)}  failed: ${error}`,
  );
}

/** Reads a trial's events to their end, linking its run to the trial as soon as it is known. */
async function followTrial(
  ctx: SweepContext,
  job: Job,
  running: TrialRecord,
  stdout: ReadableStream<Uint8Array>,
): Promise<TrialReport> {
  const report: TrialReport = { runId: null, done: null, trainError: null, bestNdcg: null };
  for await (const line of lines(stdout)) {
    const ev = parseTrainEvent(line);
    if (ev?.event === "run") {
      report.runId = ev.run;
      ctx.store.upsertTrial({ ...running, runId: ev.run });
      ctx.progress.event(
        "trial_run",
        { ...where(ctx, job), run: ev.run },
        `${tag(ctx, job)}  run ${ev.run}`,
      );
    } else if (ev?.event === "epoch" && ev.valid?.["ndcg@10"] !== undefined) {
      report.bestNdcg = Math.max(report.bestNdcg ?? -Infinity, ev.valid["ndcg@10"]);
    } else if (ev?.event === "failed") {
      report.trainError = ev.error;
    } else if (ev?.event === "done") {
      report.done = ev;
    }
  }
  return report;
}

function recordFinished(
  ctx: SweepContext,
  job: Job,
  running: TrialRecord,
  runId: string,
  done: Extract<TrainEvent, { event: "done" }>,
  bestNdcg: number | null,
  finishedAt: string,
): void {
  const peak = ctx.store.runs.getRun(runId)?.peakBytes ?? done.peak_bytes;
  ctx.store.upsertTrial({ ...running, status: "finished", runId, peakBytes: peak, finishedAt });
  const spe = done.seconds_per_epoch;
  ctx.progress.event(
    "trial_finished",
    {
      ...where(ctx, job),
      run: runId,
      valid_ndcg10: bestNdcg,
      peak_bytes: peak,
      estimate_bytes: job.estimate,
      seconds_per_epoch: spe,
    },
    `${tag(ctx, job)}  finished: valid NDCG@10 ${bestNdcg?.toFixed(4) ?? "-"}, peak ${
      formatBytes(peak)
    } (estimate ${formatBytes(job.estimate)}), ${spe?.toFixed(2) ?? "-"} s/epoch`,
  );
  const off = peak ? (job.estimate - peak) / peak : 0;
  if (Math.abs(off) > ESTIMATE_TOLERANCE) {
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

function kill(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // It has exited already: nothing to stop.
  }
}

/** The text lines of a byte stream. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
  if (buffered) yield buffered;
}

/** The last `max` characters of a stream, read to its end (a child blocks on a full pipe). */
async function tail(stream: ReadableStream<Uint8Array>, max: number): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text = (text + chunk).slice(-max);
  }
  return text;
}

/** The message of a child's last `error:` line (tasks print errors so), else its last line. */
function lastErrorLine(stderr: string): string | null {
  const all = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const error = all.findLast((l) => l.startsWith("error: "));
  return error ? error.slice("error: ".length) : all.at(-1) ?? null;
}
