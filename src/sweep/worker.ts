/**
 * A queue worker: takes trial jobs from the sweep queue and runs each in its own process exactly
 * as a local sweep does (process.ts), in its own runs folder (--artifacts), then returns the
 * outcome with the run's record and metrics, which the coordinator records in its store.
 *
 * Faults: the job's lock is renewed while the trial runs; a worker that dies (SIGKILL, a lost
 * machine) stops renewing it, and after the lease another worker's stalled-job check puts the job
 * back on the queue. A worker stopped by SIGINT/SIGTERM stops its trials and puts their jobs back
 * itself. A trial that fails is retried up to the sweep's --attempts, except one whose command
 * line the trainer refused (a configuration error: no retry can mend it).
 */
import { DelayedError, UnrecoverableError, WaitingError, Worker } from "bullmq";
import type { Job as QueueJob } from "bullmq";
import { Redis } from "ioredis";
import { formatBytes } from "../gpu/allocator.ts";
import { RunStore } from "../store/runs.ts";
import { CONFIG_EXIT, runTrialProcess, whereTrialsWrite } from "./process.ts";
import {
  checkRedis,
  connectionOf,
  QUEUE_NAME,
  QUEUE_PREFIX,
  RedisRungBoard,
  type TrialJobData,
  type TrialJobProgress,
  type TrialJobResult,
} from "./queue.ts";
import { Progress } from "./record.ts";

/** A job stalls when its worker stops renewing the lock; past this many stalls it fails. */
export const MAX_STALLS = 2;

/** How long a job that does not fit this worker's budget now waits before any worker takes it. */
const REFIT_DELAY_MS = 1000;

export interface WorkerOptions {
  /** redis://HOST:PORT[/DB] */
  queue: string;
  concurrency: number;
  /** GPU memory this worker's trials may take together (their estimates); null: no limit. */
  budget: number | null;
  /** The runs folder trials write (store, checkpoints): a shared folder, or this machine's. */
  artifacts: string;
  /** The PostgreSQL store trials record their runs in (postgres://…); null: the artifacts'. */
  store?: string | null;
  /** Lock duration in ms: how long a dead worker's job waits before it is run elsewhere. */
  leaseMs: number;
  /** How this worker is named in the coordinator's store. */
  name: string;
  json: boolean;
  write?: (line: string) => void;
  /** Stops the worker: running trials stop and their jobs go back to the queue. */
  signal?: AbortSignal;
  killGraceMs?: number;
}

/** Runs until the signal; resolves once every trial has stopped and the worker is closed. */
export async function runWorker(opts: WorkerOptions): Promise<void> {
  const target = await checkRedis(opts.queue, "--queue");
  const progress = new Progress(opts.json, opts.write);
  // Held open while trials run, as a sweep holds its store (the WAL is set up before they open it).
  Deno.mkdirSync(opts.artifacts, { recursive: true });
  const store = await RunStore.open(opts.artifacts, opts.store ?? null);
  const redis = new Redis(connectionOf(target));
  const stopping = new AbortController();
  let reserved = 0;
  const warned = new Set<string>();

  const runJob = async (
    job: QueueJob<TrialJobData, TrialJobResult>,
    token?: string,
  ): Promise<TrialJobResult> => {
    const d = job.data;
    const label = `${d.sweepId} ${d.key || "(single trial)"}`;
    if (opts.budget !== null && reserved + d.estimateBytes > opts.budget) {
      if (d.estimateBytes > opts.budget && !warned.has(job.id!)) {
        warned.add(job.id!);
        progress.event(
          "job_too_big",
          { job: job.id, estimate_bytes: d.estimateBytes, budget_bytes: opts.budget },
          `${label}: estimate ${formatBytes(d.estimateBytes)} is over this worker's ` +
            `--memory-budget ${formatBytes(opts.budget)}: left for another worker`,
        );
      }
      await job.moveToDelayed(Date.now() + REFIT_DELAY_MS, token);
      throw new DelayedError();
    }
    reserved += d.estimateBytes;
    try {
      const started: TrialJobProgress = {
        worker: opts.name,
        run: null,
        startedAt: new Date().toISOString(),
      };
      await job.updateProgress({ ...started });
      progress.event(
        "job_started",
        {
          job: job.id,
          sweep: d.sweepId,
          key: d.key,
          attempt: d.attempt,
          try: job.attemptsMade + 1,
        },
        `${label}: started (attempt ${d.attempt}, try ${job.attemptsMade + 1})`,
      );
      const outcome = await runTrialProcess({
        argv: [
          ...d.argv,
          ...whereTrialsWrite(opts.artifacts, opts.store ?? null),
          "--sweep-id",
          d.sweepId,
        ],
        signal: stopping.signal,
        killGraceMs: opts.killGraceMs,
        onRun: async (run) => {
          started.run = run;
          await job.updateProgress({ ...started });
        },
        asha: d.asha
          ? { plan: d.asha, board: new RedisRungBoard(redis, d.sweepId, d.asha.eta), key: d.key }
          : undefined,
      });
      if (outcome.status === "interrupted") {
        // Stopped with this worker: back to waiting, without spending one of its attempts.
        await job.moveToWait(token);
        progress.event("job_returned", { job: job.id }, `${label}: stopped, back on the queue`);
        throw new WaitingError();
      }
      const run = outcome.runId ? await store.getRun(outcome.runId) : null;
      const result: TrialJobResult = {
        ...outcome,
        worker: opts.name,
        run,
        metrics: run ? await store.metrics(run.id) : [],
      };
      progress.event(
        `job_${outcome.status}`,
        { job: job.id, run: outcome.runId, error: outcome.error },
        `${label}: ${outcome.status}${outcome.error ? `: ${outcome.error}` : ""}`,
      );
      if (outcome.status === "failed") {
        await job.updateProgress({ ...started, failed: result });
        const message = outcome.error ?? "the trial failed";
        throw outcome.exitCode === CONFIG_EXIT
          ? new UnrecoverableError(message)
          : new Error(message);
      }
      return result;
    } finally {
      reserved -= d.estimateBytes;
    }
  };

  const worker = new Worker<TrialJobData, TrialJobResult>(QUEUE_NAME, runJob, {
    connection: connectionOf(target),
    prefix: QUEUE_PREFIX,
    concurrency: opts.concurrency,
    lockDuration: opts.leaseMs,
    stalledInterval: opts.leaseMs,
    maxStalledCount: MAX_STALLS,
    autorun: false,
  });
  // Connection trouble after the start (Redis restarting) is retried by BullMQ; say it once each.
  worker.on(
    "error",
    (e) => progress.event("worker_error", { error: e.message }, `worker: ${e.message}`),
  );
  const ended = worker.run().then(() => null, (error: unknown) => ({ error }));
  await worker.waitUntilReady();
  progress.event(
    "worker",
    {
      worker: opts.name,
      queue: target.url,
      concurrency: opts.concurrency,
      budget_bytes: opts.budget,
      artifacts: opts.artifacts,
      lease_ms: opts.leaseMs,
    },
    `worker ${opts.name} on ${target.url}: ${opts.concurrency} at once, budget ` +
      `${opts.budget === null ? "none" : formatBytes(opts.budget)}, runs in ${opts.artifacts}`,
  );
  const stopped = new Promise<void>((resolve) => {
    if (opts.signal?.aborted) resolve();
    opts.signal?.addEventListener("abort", () => resolve(), { once: true });
  });
  try {
    await Promise.race([ended, stopped]);
  } finally {
    stopping.abort();
    await worker.close();
    redis.disconnect();
    await store.close();
  }
  const end = await ended;
  if (end) throw end.error;
}
