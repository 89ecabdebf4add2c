/**
 * A sweep on a queue: the planned trials become BullMQ jobs, `deno task worker` processes on any
 * machine run them, and this coordinator follows the jobs and records each outcome in its store.
 * Jobs are named by sweep, attempt and trial key, so a coordinator started again with the same
 * command finds the jobs of the one before it and records what they returned, once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Job as QueueJob } from "bullmq";
import { formatBytes } from "../gpu/allocator.ts";
import type { TrialRecord } from "../store/sweeps.ts";
import { finishTrial, type Job, pendingRecord, type SweepContext, tag, where } from "./record.ts";
import {
  jobIdOf,
  type TrialJobData,
  type TrialJobProgress,
  type TrialJobResult,
  type TrialQueue,
} from "./queue.ts";
import type { TrialOutcome } from "./process.ts";

/** How often job states are read when no poll interval is given. */
const POLL_MS = 500;

interface Followed {
  job: Job;
  jobId: string;
  /** The trial's record as the coordinator last wrote it. */
  record: TrialRecord;
  /** Worker and run last reported for it, to announce each change once. */
  seen: string;
}

/** Enqueues the jobs (or finds them queued already) and follows them until each is recorded. */
export async function runOnQueue(
  ctx: SweepContext,
  jobs: Job[],
  tq: TrialQueue,
  opts: { signal?: AbortSignal; pollMs?: number },
): Promise<void> {
  const followed: Followed[] = [];
  for (const job of jobs) {
    if (opts.signal?.aborted) return;
    followed.push(await enqueue(ctx, job, tq));
  }
  if (followed.length) {
    ctx.progress.event(
      "queue_waiting",
      { sweep: ctx.id, queue: tq.target.url, jobs: followed.length },
      `${followed.length} trial${followed.length === 1 ? "" : "s"} on ${tq.target.url}; ` +
        `workers: deno task worker --queue ${tq.target.url}`,
    );
  }
  let open = followed;
  while (open.length && !opts.signal?.aborted) {
    const still: Followed[] = [];
    for (const f of open) {
      if (!(await poll(ctx, f, tq))) still.push(f);
    }
    open = still;
    if (open.length) {
      await sleep(opts.pollMs ?? POLL_MS, undefined, { signal: opts.signal }).catch(() => {});
    }
  }
}

/**
 * The trial's job: a pending or running trial keeps the job of its attempt (a coordinator started
 * again resumes it); any other trial gets a new attempt. Adding a job whose id exists adds nothing.
 */
async function enqueue(ctx: SweepContext, job: Job, tq: TrialQueue): Promise<Followed> {
  const { prior } = job;
  const keep = prior.attempt > 0 && (prior.status === "pending" || prior.status === "running");
  const attempt = keep ? prior.attempt : prior.attempt + 1;
  const record: TrialRecord = {
    ...pendingRecord(ctx, job.trial, attempt),
    estimateBytes: job.estimate,
  };
  await ctx.store.upsertTrial(record);
  const jobId = jobIdOf(ctx.id, attempt, job.trial.key);
  const found = await tq.queue.getJob(jobId);
  if (!found) await add(ctx, job, tq, jobId, attempt);
  ctx.progress.event(
    "trial_queued",
    { ...where(ctx, job), attempt, job: jobId, resumed: found !== undefined },
    `${tag(ctx, job)}  ${found ? "found on the queue" : "queued"} (attempt ${attempt}, ` +
      `estimate ${formatBytes(job.estimate)})`,
  );
  return { job, jobId, record, seen: "" };
}

async function add(ctx: SweepContext, job: Job, tq: TrialQueue, jobId: string, attempt: number) {
  const data: TrialJobData = {
    sweepId: ctx.id,
    key: job.trial.key,
    attempt,
    argv: job.argv,
    estimateBytes: job.estimate,
    asha: job.asha,
  };
  // Finished and failed jobs stay until the coordinator has recorded them (then it removes them).
  await tq.queue.add(job.trial.key || "trial", data, {
    jobId,
    attempts: ctx.cmd.attempts,
    removeOnComplete: false,
    removeOnFail: false,
  });
}

/** Reads the job once: announces a new worker or run, records an end. True once recorded. */
async function poll(ctx: SweepContext, f: Followed, tq: TrialQueue): Promise<boolean> {
  let qjob = await tq.queue.getJob(f.jobId) as QueueJob<TrialJobData, TrialJobResult> | undefined;
  if (!qjob) {
    // Gone from Redis (flushed, or a Redis without its AOF restarted): queue it again.
    await add(ctx, f.job, tq, f.jobId, f.record.attempt);
    ctx.progress.event(
      "trial_queued",
      { ...where(ctx, f.job), attempt: f.record.attempt, job: f.jobId, lost: true },
      `${tag(ctx, f.job)}  its job was gone from the queue: queued again`,
    );
    return false;
  }
  const state = await qjob.getState();
  if (state === "completed" || state === "failed") {
    // Read again: the copy above may predate the end, without its return value or reason.
    qjob = await tq.queue.getJob(f.jobId) as QueueJob<TrialJobData, TrialJobResult>;
  }
  const progress = typeof qjob.progress === "object" ? qjob.progress as TrialJobProgress : null;
  if (progress) await announce(ctx, f, progress);
  if (state === "completed") {
    await record(ctx, f, qjob.returnvalue);
  } else if (state === "failed") {
    // The last attempt's outcome, when the worker got as far as sending it; else the job's reason
    // (a worker lost more often than allowed, an error outside the trial).
    const error = qjob.failedReason || "failed on the queue without a reason";
    const outcome: TrialOutcome = progress?.failed ?? {
      status: "failed",
      runId: progress?.run ?? null,
      error,
      bestNdcg: null,
      done: null,
      exitCode: null,
    };
    const tries = qjob.attemptsMade;
    await record(ctx, f, {
      worker: progress?.worker ?? "",
      run: null,
      metrics: [],
      ...outcome,
      error: `${error} (after ${tries} ${tries === 1 ? "try" : "tries"})`,
    });
  } else {
    return false;
  }
  await qjob.remove();
  return true;
}

/** A worker took the trial, or the trial created its run: written to the store and said once. */
async function announce(ctx: SweepContext, f: Followed, p: TrialJobProgress): Promise<void> {
  const seen = `${p.worker} ${p.startedAt} ${p.run}`;
  if (seen === f.seen) return;
  const rerun = f.seen !== "" && !f.seen.startsWith(`${p.worker} ${p.startedAt} `);
  const started = !f.seen.startsWith(`${p.worker} ${p.startedAt} `);
  f.seen = seen;
  f.record = {
    ...f.record,
    status: "running",
    worker: p.worker,
    runId: p.run,
    startedAt: p.startedAt,
  };
  await ctx.store.upsertTrial(f.record);
  const at = { ...where(ctx, f.job), worker: p.worker, attempt: f.record.attempt };
  if (started) {
    ctx.progress.event(
      "trial_started",
      { ...at, estimate_bytes: f.job.estimate, rerun },
      `${tag(ctx, f.job)}  ${rerun ? "started again" : "started"} on ${p.worker}`,
    );
  }
  if (p.run) {
    ctx.progress.event(
      "trial_run",
      { ...at, run: p.run },
      `${tag(ctx, f.job)}  run ${p.run} on ${p.worker}`,
    );
  }
}

async function record(ctx: SweepContext, f: Followed, result: TrialJobResult): Promise<void> {
  const { run, metrics, worker, ...outcome } = result;
  const running: TrialRecord = { ...f.record, worker: worker || f.record.worker };
  await finishTrial(ctx, f.job, running, outcome, run ? { run, metrics } : null);
}
