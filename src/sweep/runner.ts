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
    // Every trial gets these: the sweep's runs folder and budget, JSON logging, a named run.
    const sweepArgv = (t: Trial) => [
      "--out",
      cmd.out,
      "--memory-limit",
      String(budget),
      "--json",
      "--name",
      t.key ? `${sweep.name} ${t.key}` : sweep.name,
    ];
    const tag = (i: number, t: Trial) => `[${i + 1}/${total}] ${t.key || "(single trial)"}`;
    const base = (t: Trial): TrialRecord => ({
      sweepId: id,
      key: t.key,
      params: t.params,
      status: "pending",
      runId: null,
      estimateBytes: null,
      peakBytes: null,
      error: null,
      startedAt: null,
      finishedAt: null,
    });
    const fail = (i: number, t: Trial, error: string) => {
      const now = new Date().toISOString();
      store.upsertTrial({ ...base(t), status: "failed", error, startedAt: now, finishedAt: now });
      progress.event(
        "trial_failed",
        { sweep: id, key: t.key, index: i + 1, of: total, error },
        `${tag(i, t)}  failed: ${error}`,
      );
    };

    const jobs: Job[] = [];
    // One read per distinct data flags; a read that fails fails its trials without rereading.
    const prepared = new Map<string, PreparedData | Error>();
    for (const [i, t] of trials.entries()) {
      if (signal?.aborted) break;
      const record = store.getTrial(id, t.key)!;
      if (record.status === "finished") {
        progress.event(
          "trial_skipped",
          { sweep: id, key: t.key, index: i + 1, of: total, run: record.runId },
          `${tag(i, t)}  skipped: finished earlier (run ${record.runId})`,
        );
        continue;
      }
      const argv = [...t.argv, ...sweepArgv(t)];
      let config: TrainConfig;
      try {
        config = parseTrainArgs(argv).config;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        fail(i, t, e.message);
        continue;
      }
      const key = dataKey(config);
      if (!prepared.has(key)) prepared.set(key, await prepareData(config).catch((e) => e as Error));
      const data = prepared.get(key)!;
      if (data instanceof Error) {
        fail(i, t, data.message);
        continue;
      }
      const estimate = estimateFor(config, data).total;
      if (estimate > budget) {
        store.upsertTrial({ ...base(t), status: "exceeds_budget", estimateBytes: estimate });
        progress.event(
          "trial_exceeds_budget",
          { sweep: id, key: t.key, index: i + 1, of: total, estimate_bytes: estimate },
          `${tag(i, t)}  exceeds budget: estimate ${formatBytes(estimate)} > ${
            formatBytes(budget)
          }, not started`,
        );
        continue;
      }
      store.upsertTrial({ ...base(t), estimateBytes: estimate });
      jobs.push({ trial: t, index: i, argv, estimate });
    }
    prepared.clear();

    const children = new Set<Deno.ChildProcess>();
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      for (const child of children) kill(child, "SIGTERM");
      killTimer = setTimeout(() => {
        for (const child of children) kill(child, "SIGKILL");
      }, opts.killGraceMs ?? 15_000);
    };
    signal?.addEventListener("abort", onAbort);

    const runJob = async (job: Job) => {
      const { trial: t, index: i } = job;
      const startedAt = new Date().toISOString();
      const running: TrialRecord = {
        ...base(t),
        status: "running",
        estimateBytes: job.estimate,
        startedAt,
      };
      store.upsertTrial(running);
      progress.event(
        "trial_started",
        { sweep: id, key: t.key, index: i + 1, of: total, estimate_bytes: job.estimate },
        `${tag(i, t)}  started (estimate ${formatBytes(job.estimate)})`,
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", TRIAL_SCRIPT, ...job.argv, "--sweep-id", id],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      children.add(child);
      if (signal?.aborted) kill(child, "SIGTERM");
      const stderr = tail(child.stderr, 8192);
      let runId: string | null = null;
      let done: Extract<TrainEvent, { event: "done" }> | null = null;
      let trainError: string | null = null;
      let bestNdcg: number | null = null;
      for await (const line of lines(child.stdout)) {
        const ev = parseTrainEvent(line);
        if (ev?.event === "run") {
          runId = ev.run;
          store.upsertTrial({ ...running, runId });
          progress.event(
            "trial_run",
            { sweep: id, key: t.key, index: i + 1, of: total, run: runId },
            `${tag(i, t)}  run ${runId}`,
          );
        } else if (ev?.event === "epoch" && ev.valid?.["ndcg@10"] !== undefined) {
          bestNdcg = Math.max(bestNdcg ?? -Infinity, ev.valid["ndcg@10"]);
        } else if (ev?.event === "failed") {
          trainError = ev.error;
        } else if (ev?.event === "done") {
          done = ev;
        }
      }
      const status = await child.status;
      children.delete(child);
      const errText = await stderr;
      const finishedAt = new Date().toISOString();
      if (status.success && done?.status === "finished" && runId) {
        const run = store.runs.getRun(runId);
        const peak = run?.peakBytes ?? done.peak_bytes;
        store.upsertTrial({ ...running, status: "finished", runId, peakBytes: peak, finishedAt });
        const spe = done.seconds_per_epoch;
        progress.event(
          "trial_finished",
          {
            sweep: id,
            key: t.key,
            index: i + 1,
            of: total,
            run: runId,
            valid_ndcg10: bestNdcg,
            peak_bytes: peak,
            estimate_bytes: job.estimate,
            seconds_per_epoch: spe,
          },
          `${tag(i, t)}  finished: valid NDCG@10 ${bestNdcg?.toFixed(4) ?? "-"}, peak ${
            peak === null ? "-" : formatBytes(peak)
          } (estimate ${formatBytes(job.estimate)}), ${spe?.toFixed(2) ?? "-"} s/epoch`,
        );
        const off = peak ? (job.estimate - peak) / peak : 0;
        if (Math.abs(off) > ESTIMATE_TOLERANCE) {
          progress.event(
            "estimate_off",
            {
              sweep: id,
              key: t.key,
              estimate_bytes: job.estimate,
              peak_bytes: peak,
              relative_error: off,
            },
            `warning: ${t.key || "trial"}: the estimate ${formatBytes(job.estimate)} is ${
              Math.abs(off * 100).toFixed(0)
            }% ${off < 0 ? "below" : "above"} the measured peak ${formatBytes(peak!)} (tolerance ${
              ESTIMATE_TOLERANCE * 100
            }%)`,
          );
        }
        return;
      }
      // Stopped by the sweep's signal: the trial stays running until markInterrupted, which
      // turns every such trial back to pending in one transaction.
      if (signal?.aborted) return;
      const error = trainError ?? done?.error ??
        lastErrorLine(errText) ??
        (status.signal ? `killed by ${status.signal}` : `exited with code ${status.code}`);
      const run = runId ? store.runs.getRun(runId) : null;
      store.upsertTrial({
        ...running,
        status: "failed",
        runId,
        peakBytes: run?.peakBytes ?? null,
        error,
        finishedAt,
      });
      progress.event(
        "trial_failed",
        { sweep: id, key: t.key, index: i + 1, of: total, run: runId, error },
        `${tag(i, t)}  failed: ${error}`,
      );
    };

    // A lane that throws (the store, a failed spawn) stops the others from starting trials, and
    // the sweep waits for the running ones before it closes the store they write to.
    let next = 0;
    let broken: { error: unknown } | null = null;
    const lanes = Array.from({ length: Math.min(cmd.parallel, jobs.length) }, async () => {
      try {
        while (next < jobs.length && !signal?.aborted && !broken) await runJob(jobs[next++]);
      } catch (error) {
        broken ??= { error };
      }
    });
    await Promise.all(lanes);
    signal?.removeEventListener("abort", onAbort);
    clearTimeout(killTimer);
    if (broken) throw (broken as { error: unknown }).error;

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
