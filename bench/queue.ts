/**
 * The queue benchmark: one sweep command run locally (`--parallel 1`) and on a Redis queue with 1,
 * 2, … worker processes (each `--concurrency 1`), every mode in fresh folders with a Redis of its
 * own, timed from the sweep command's start to its exit. Workers are started and ready before the
 * sweep starts, as long-lived workers on other machines would be.
 */
import { SweepStore } from "../src/store/sweeps.ts";
import { startRedis } from "./redis.ts";

const SWEEP_TASK = new URL("../tasks/sweep.ts", import.meta.url).pathname;
const WORKER_TASK = new URL("../tasks/worker.ts", import.meta.url).pathname;

export interface QueueMode {
  /** "local" or "queue". */
  kind: "local" | "queue";
  /** Trial processes at once: --parallel here, or worker processes on the queue. */
  processes: number;
}

export interface ModeFigures extends QueueMode {
  label: string;
  wallSeconds: number;
  trials: number;
  trialsPerHour: number;
  /** Median seconds a trial's run recorded (its training session inside the trial process). */
  medianRunSeconds: number;
  /** Which worker ran how many trials (empty for the local run). */
  perWorker: Record<string, number>;
}

export interface QueueBenchOptions {
  /** The sweep's flags, without --out, --queue, --parallel and --json. */
  sweepArgs: string[];
  modes: QueueMode[];
  /** Folder for the modes' runs folders (one per mode). */
  workDir: string;
  /** Called with one line per event (mode started, mode timed). */
  log: (line: string) => void;
}

const label = (m: QueueMode) =>
  m.kind === "local"
    ? `local, --parallel ${m.processes}`
    : `queue, ${m.processes} worker${m.processes === 1 ? "" : "s"}`;

export async function runQueueBenchmark(opts: QueueBenchOptions): Promise<ModeFigures[]> {
  const figures: ModeFigures[] = [];
  for (const [i, mode] of opts.modes.entries()) {
    const dir = `${opts.workDir}/mode-${i}-${mode.kind}-${mode.processes}`;
    opts.log(`${label(mode)}: starting`);
    const f = mode.kind === "local"
      ? await timeSweep(opts.sweepArgs, ["--parallel", String(mode.processes)], dir)
      : await onQueue(opts.sweepArgs, mode.processes, dir);
    figures.push({ ...mode, label: label(mode), ...f });
    opts.log(
      `${label(mode)}: ${f.wallSeconds.toFixed(1)} s for ${f.trials} trials ` +
        `(${f.trialsPerHour.toFixed(0)}/hour)`,
    );
  }
  return figures;
}

type Timed = Omit<ModeFigures, keyof QueueMode | "label">;

/** Runs the sweep command to its end; every trial must have finished. */
async function timeSweep(sweepArgs: string[], extra: string[], dir: string): Promise<Timed> {
  const out = `${dir}/runs`;
  const start = performance.now();
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SWEEP_TASK, ...sweepArgs, ...extra, "--out", out, "--json"],
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).output();
  const wallSeconds = (performance.now() - start) / 1000;
  if (!result.success) {
    throw new Error(
      `the sweep failed (exit ${result.code}): ${new TextDecoder().decode(result.stderr).trim()}`,
    );
  }
  const store = await SweepStore.open(out);
  try {
    const [summary] = await store.listSweeps();
    const view = (await store.getSweep(summary.id))!;
    const unfinished = view.trials.filter((t) => t.status !== "finished");
    if (unfinished.length) {
      throw new Error(
        `trials did not finish: ${unfinished.map((t) => `${t.key} ${t.status} ${t.error}`)}`,
      );
    }
    const perWorker: Record<string, number> = {};
    for (const t of view.trials) if (t.worker) perWorker[t.worker] = (perWorker[t.worker] ?? 0) + 1;
    const runSeconds = view.trials.map((t) => t.run?.wallSeconds ?? 0).sort((a, b) => a - b);
    return {
      wallSeconds,
      trials: view.trials.length,
      trialsPerHour: view.trials.length / wallSeconds * 3600,
      medianRunSeconds: runSeconds[Math.floor(runSeconds.length / 2)],
      perWorker,
    };
  } finally {
    await store.close();
  }
}

/** A Redis of its own, `workers` worker processes ready on it, then the timed sweep. */
async function onQueue(sweepArgs: string[], workers: number, dir: string): Promise<Timed> {
  const redis = await startRedis();
  const procs: Deno.ChildProcess[] = [];
  try {
    for (let w = 1; w <= workers; w++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          ...["run", "-A", WORKER_TASK, "--queue", redis.url, "--concurrency", "1"],
          ...["--artifacts", `${dir}/w${w}`, "--name", `w${w}`, "--json"],
        ],
        stdout: "piped",
        stderr: "null",
        stdin: "null",
      }).spawn();
      procs.push(child);
      await untilReady(child);
    }
    return await timeSweep(sweepArgs, ["--queue", redis.url], dir);
  } finally {
    for (const p of procs) {
      try {
        p.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await p.status;
    }
    await redis.stop();
  }
}

/** Reads a worker's JSON lines until its `worker` event (it listens), then drains the rest. */
async function untilReady(child: Deno.ChildProcess): Promise<void> {
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await lines.read();
    if (done) throw new Error("a worker exited before it was ready");
    buffered += value;
    if (/"event":"worker"/.test(buffered)) break;
  }
  // Keep reading so that the pipe never fills and blocks the worker.
  void (async () => {
    while (!(await lines.read()).done) { /* drained */ }
  })().catch(() => {});
}

/** The figures against the first local mode: wall-time difference per trial and speed-up. */
export function compareToLocal(figures: ModeFigures[]) {
  const local = figures.find((f) => f.kind === "local" && f.processes === 1) ?? figures[0];
  return figures.map((f) => ({
    ...f,
    /** Seconds per trial this mode took beyond the local run (negative: it was faster). */
    overheadPerTrialSeconds: (f.wallSeconds - local.wallSeconds) / f.trials,
    speedup: local.wallSeconds / f.wallSeconds,
  }));
}
