/**
 * One trial's process, as both a local sweep lane and a queue worker run it: spawn `trial.ts`,
 * follow its typed events (src/train/events.ts), let the search stop it at a rung, and turn how it
 * ended into a serialisable outcome. Recording the outcome is the caller's business.
 */
import { streamLines } from "../data/lines.ts";
import { parseTrainEvent, type TrainEvent } from "../train/events.ts";
import { type AshaPlan, type RungBoard, rungOf } from "./search.ts";

/** The entry point each trial runs. */
export const TRIAL_SCRIPT = new URL("./trial.ts", import.meta.url).pathname;

export type DoneEvent = Extract<TrainEvent, { event: "done" }>;

/** Exit code of a trial whose command line the trainer refused (a configuration error). */
export const CONFIG_EXIT = 2;

/**
 * How a trial ended. "pruned": the search stopped it at a rung; "interrupted": the caller's
 * signal stopped it (the trial is to run again, it did not end).
 */
export type OutcomeStatus = "finished" | "failed" | "pruned" | "interrupted";

export interface TrialOutcome {
  status: OutcomeStatus;
  runId: string | null;
  /** Why it failed, or why the search stopped it. */
  error: string | null;
  /** Best validation NDCG@10 of the epochs it reported. */
  bestNdcg: number | null;
  /** The run's summary, the trial's last `done` event. */
  done: DoneEvent | null;
  /** The process's exit code (null when a signal ended it). */
  exitCode: number | null;
}

export interface TrialProcessOptions {
  /** Training flags, `--out` and `--sweep-id` included. */
  argv: string[];
  /** Stops the trial (SIGTERM, then SIGKILL after `killGraceMs`). */
  signal?: AbortSignal;
  killGraceMs?: number;
  /** Called once the trial has created its run. */
  onRun?: (runId: string) => void | Promise<void>;
  /** Successive halving: where the trial reports its rung results, and the rungs. */
  asha?: { plan: AshaPlan; board: RungBoard; key: string };
}

/** The runs folder and, when given, the PostgreSQL store a trial records its run in. */
export function whereTrialsWrite(out: string, store: string | null): string[] {
  return ["--out", out, ...(store === null ? [] : ["--store", store])];
}

/** Runs one trial process to its end and reports how it ended. */
export async function runTrialProcess(opts: TrialProcessOptions): Promise<TrialOutcome> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TRIAL_SCRIPT, ...opts.argv],
    // The trial stops when this pipe closes: a parent killed with SIGKILL takes its trial with it.
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    kill(child, "SIGTERM");
    killTimer ??= setTimeout(() => kill(child, "SIGKILL"), opts.killGraceMs ?? 15_000);
  };
  if (opts.signal?.aborted) stop();
  opts.signal?.addEventListener("abort", stop);
  const stderr = tail(child.stderr, 8192);
  let pruned: string | null = null;
  const report = {
    runId: null as string | null,
    done: null as DoneEvent | null,
    trainError: null as string | null,
    bestNdcg: null as number | null,
  };
  const reported = new Set<number>();
  const follow = async () => {
    for await (const line of streamLines(child.stdout)) {
      const ev = parseTrainEvent(line);
      if (ev?.event === "run") {
        report.runId = ev.run;
        await opts.onRun?.(ev.run);
      } else if (ev?.event === "epoch" && ev.valid?.["ndcg@10"] !== undefined) {
        const ndcg = ev.valid["ndcg@10"];
        report.bestNdcg = Math.max(report.bestNdcg ?? -Infinity, ndcg);
        const rung = opts.asha ? rungOf(opts.asha.plan, ev.epoch, reported) : null;
        if (rung !== null && pruned === null) {
          reported.add(rung);
          const verdict = await opts.asha!.board.report(rung, opts.asha!.key, ndcg);
          if (verdict.cutoff !== null && ndcg < verdict.cutoff) {
            pruned = `stopped by ASHA at epoch ${ev.epoch} (rung ${rung}): valid NDCG@10 ` +
              `${ndcg.toFixed(4)} below the rung's cutoff ${verdict.cutoff.toFixed(4)}`;
            stop();
          }
        }
      } else if (ev?.event === "failed") {
        report.trainError = ev.error;
      } else if (ev?.event === "done") {
        report.done = ev;
      }
    }
  };
  // A hook that throws (the store, the queue) stops the trial; the error goes to the caller once
  // the process has ended, so that no trial outlives the code that follows it.
  const broken = await follow().then(() => null, (error) => {
    stop();
    return { error };
  });
  const exit = await child.status;
  opts.signal?.removeEventListener("abort", stop);
  clearTimeout(killTimer);
  await child.stdin.close().catch(() => {});
  if (broken) throw broken.error;
  const errText = await stderr;
  const base = { runId: report.runId, bestNdcg: report.bestNdcg, done: report.done };
  const exitCode = exit.signal ? null : exit.code;
  if (exit.success && report.done?.status === "finished" && report.runId) {
    return { ...base, status: "finished", error: null, exitCode };
  }
  if (pruned !== null && report.done?.status === "stopped") {
    return { ...base, status: "pruned", error: pruned, exitCode };
  }
  if (opts.signal?.aborted) return { ...base, status: "interrupted", error: null, exitCode };
  const error = report.trainError ?? report.done?.error ?? lastErrorLine(errText) ??
    (exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`);
  return { ...base, status: "failed", error, exitCode };
}

function kill(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // It has exited already: nothing to stop.
  }
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
