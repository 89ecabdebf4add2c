import assert from "node:assert/strict";
import { parseSweepArgs } from "../../src/sweep/grid.ts";
import { runSweep } from "../../src/sweep/runner.ts";
import { runWorker } from "../../src/sweep/worker.ts";
import { connectQueue, parseRedisUrl } from "../../src/sweep/queue.ts";
import { SweepStore } from "../../src/store/sweeps.ts";
import { RunStore } from "../../src/store/runs.ts";
import { Redis } from "ioredis";
import { tinyData } from "../support/tiny_data.ts";
import { freePort, redisMissing, startRedis } from "./redis_server.ts";

const SWEEP_TASK = new URL("../../tasks/sweep.ts", import.meta.url).pathname;
const WORKER_TASK = new URL("../../tasks/worker.ts", import.meta.url).pathname;

type Event = Record<string, unknown> & { event: string };

/** Tiny trials (a second of training each once the shaders are cached). */
const TINY = ["--dim", "8", "--seq-len", "8", "--batch-size", "32"];

// Workers, Redis connections and trial processes outlive single awaits by design.
const queueTest = { ignore: redisMissing !== null, sanitizeOps: false, sanitizeResources: false };

/** A worker in this process, stopped by `stop()`. */
function worker(
  url: string,
  name: string,
  artifacts: string,
  leaseMs = 30_000,
  budget: number | null = null,
) {
  const abort = new AbortController();
  const lines: string[] = [];
  const done = runWorker({
    queue: url,
    concurrency: 1,
    budget,
    artifacts,
    leaseMs,
    name,
    json: true,
    write: (line) => lines.push(line),
    signal: abort.signal,
  });
  return {
    lines,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

/** Reads a child's stdout JSON lines, calling `on` for each, until the stream ends. */
async function readEvents(stream: ReadableStream<Uint8Array>, on: (e: Event) => void) {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith("{")) on(JSON.parse(line));
    }
  }
}

Deno.test({
  name: "two workers on one queue share a random ASHA search; each trial is recorded once, here",
  ...queueTest,
  fn: async () => {
    const redis = await startRedis();
    const dir = await Deno.makeTempDir();
    const a = worker(redis.url, "wa", `${dir}/wa`);
    const b = worker(redis.url, "wb", `${dir}/wb`);
    try {
      const data = await tinyData(dir);
      const events: Event[] = [];
      const result = await runSweep(
        parseSweepArgs([
          ...["--data", data, "--out", `${dir}/runs`, ...TINY, "--epochs", "2"],
          ...["--search", "asha", "--eta", "2", "--trials", "2", "--lr", "1e-3..1e-2:log"],
          ...["--memory-budget", "64MiB", "--queue", redis.url, "--json"],
        ]),
        { write: (line) => events.push(JSON.parse(line)), pollMs: 200 },
      );
      assert.equal(result.interrupted, false);
      const trials = result.view.trials;
      assert.deepEqual(
        trials.map((t) => t.worker).sort(),
        ["wa", "wb"],
        "each idle worker takes a trial",
      );
      // Both reach rung 1 (epoch 1) at about the same time: the first to report goes on, the
      // other goes on only if it is not below the first's value there (eta 2: the top half).
      const client = new Redis(redis.url);
      const rung = await client.hgetall(`cutrec:asha:${result.sweepId}:1`);
      client.disconnect();
      assert.deepEqual(Object.keys(rung).sort(), trials.map((t) => t.key).sort());
      const pruned = trials.filter((t) => t.status === "pruned");
      assert.ok(pruned.length <= 1, "the first trial at a rung always goes on");
      for (const t of trials) {
        assert.equal(t.attempt, 1);
        // The worker's run and metrics travel with the job into the sweep's own store.
        assert.equal(t.run?.sweepId, result.sweepId);
        assert.ok(t.run!.checkpoint!.startsWith(`${dir}/${t.worker}/`), "checkpoints stay there");
        assert.ok(t.validNdcg10! > 0 && t.secondsPerEpoch! > 0);
        assert.ok(t.peakBytes! > 0 && t.peakBytes === t.run!.peakBytes);
        assert.ok((t.params.lr as number) >= 1e-3 && (t.params.lr as number) <= 1e-2);
        if (t.status === "pruned") {
          assert.match(t.error!, /^stopped by ASHA at epoch 1 \(rung 1\)/);
          assert.equal(t.run?.status, "stopped");
          const other = trials.find((o) => o !== t)!;
          assert.ok(Number(rung[t.key]) < Number(rung[other.key]));
        } else {
          assert.equal(t.status, "finished", t.error ?? "");
          assert.equal(t.run?.status, "finished");
        }
      }
      const store = await SweepStore.open(`${dir}/runs`);
      assert.deepEqual(
        (await store.listOutcomes(result.sweepId)).map((o) => o.attempt),
        [1, 1],
        "one ledger entry per trial",
      );
      await store.close();
      assert.equal(
        events.filter((e) => e.event === "trial_finished" || e.event === "trial_pruned").length,
        2,
      );
      for (const w of [a, b]) assert.ok(w.lines.some((l) => /"job_(finished|pruned)"/.test(l)));
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a killed worker's trial runs again on another; a killed coordinator resumes; once",
  ...queueTest,
  fn: async () => {
    const redis = await startRedis();
    const dir = await Deno.makeTempDir();
    let b: ReturnType<typeof worker> | null = null;
    try {
      const data = await tinyData(dir);
      const args = [
        ...["--data", data, "--out", `${dir}/runs`, ...TINY, "--epochs", "3"],
        ...["--memory-budget", "64MiB", "--queue", redis.url, "--json"],
      ];
      const coordinator = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", SWEEP_TASK, ...args],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const coordinatorErr = new Response(coordinator.stderr).text();
      const workerA = new Deno.Command(Deno.execPath(), {
        args: [
          ...["run", "-A", WORKER_TASK, "--queue", redis.url, "--lease", "2"],
          ...["--name", "wa", "--artifacts", `${dir}/wa`, "--json"],
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      // Once worker A's trial has its run, both die without a word: a lost machine, a crash.
      let killedRun = "";
      await readEvents(coordinator.stdout, (e) => {
        if (e.event === "trial_run" && e.worker === "wa" && !killedRun) {
          killedRun = e.run as string;
          workerA.kill("SIGKILL");
          coordinator.kill("SIGKILL");
        }
      });
      // A coordinator that ended on its own (a bad command) leaves worker A to stop here.
      if (!killedRun) workerA.kill("SIGKILL");
      await Promise.all([coordinator.status, workerA.status]);
      assert.ok(
        killedRun,
        `worker A started the trial; the coordinator said ${await coordinatorErr}`,
      );
      const before = await SweepStore.open(`${dir}/runs`);
      const [lost] = await before.listTrials((await before.listSweeps())[0].id);
      assert.deepEqual([lost.status, lost.worker, lost.attempt], ["running", "wa", 1]);
      await before.close();

      // Worker B and the same command again: the job is found, re-queued after A's lease by B's
      // stalled-job check, run by B, and recorded once.
      b = worker(redis.url, "wb", `${dir}/wb`, 2000);
      const events: Event[] = [];
      const result = await runSweep(parseSweepArgs(args), {
        write: (line) => events.push(JSON.parse(line)),
        pollMs: 200,
      });
      const [t] = result.view.trials;
      assert.equal(t.status, "finished", t.error ?? "");
      assert.deepEqual([t.worker, t.attempt], ["wb", 1]);
      assert.notEqual(t.runId, killedRun, "the trial ran again, from its start");
      assert.equal(t.run?.status, "finished");
      const queued = events.find((e) => e.event === "trial_queued")!;
      assert.equal(queued.resumed, true, "the restarted coordinator found the job");
      assert.ok(
        events.some((e) => e.event === "trial_started" && e.worker === "wb" && e.rerun === true),
      );
      // A's trial process saw its parent go (stdin closed) and stopped, recording its run so.
      const deadline = Date.now() + 20_000;
      let orphan = "";
      while (Date.now() < deadline) {
        const wa = await RunStore.open(`${dir}/wa`);
        orphan = (await wa.getRun(killedRun))?.status ?? "";
        await wa.close();
        if (orphan === "stopped") break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(orphan, "stopped", "no trial trains on for a dead worker");

      // Once more: nothing to run, nothing recorded twice.
      const again = await runSweep(parseSweepArgs(args), { write: () => {}, pollMs: 200 });
      assert.equal(again.view.trials[0].runId, t.runId);
      const store = await SweepStore.open(`${dir}/runs`);
      assert.deepEqual(
        (await store.listOutcomes(result.sweepId)).map((o) => [o.attempt, o.worker, o.runId]),
        [[1, "wb", t.runId]],
      );
      await store.close();
    } finally {
      await b?.stop();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a failing trial gets --attempts tries, a refused command line one; the error is kept",
  ...queueTest,
  fn: async () => {
    const redis = await startRedis();
    const dir = await Deno.makeTempDir();
    let w: ReturnType<typeof worker> | null = null;
    try {
      const data = await tinyData(dir);
      // The data is there when the sweep plans the trial and gone when the worker runs it, so the
      // trial fails at once, each time (a machine without the data file).
      const events: Event[] = [];
      const result = await runSweep(
        parseSweepArgs([
          ...["--data", data, "--out", `${dir}/runs`, ...TINY, "--epochs", "1"],
          ...["--memory-budget", "64MiB", "--queue", redis.url, "--attempts", "2", "--json"],
        ]),
        {
          write: (line) => {
            const e = JSON.parse(line);
            events.push(e);
            if (e.event === "queue_waiting") {
              Deno.removeSync(data);
              w = worker(redis.url, "wa", `${dir}/wa`);
            }
          },
          pollMs: 200,
        },
      );
      const [t] = result.view.trials;
      assert.equal(t.status, "failed");
      assert.match(t.error!, new RegExp(`${data}.*\\(after 2 tries\\)$`));
      assert.deepEqual([t.worker, t.attempt], ["wa", 1]);
      assert.equal(result.view.sweep.status, "failed");
      // A command line the trainer refuses (exit code 2) is not retried: no try can mend it.
      const tq = await connectQueue(redis.url, "--queue");
      const job = await tq.queue.add("bad", {
        sweepId: "s-bad",
        key: "k",
        attempt: 1,
        argv: ["--no-such-flag"],
        estimateBytes: 1,
        asha: null,
      }, { jobId: "s-bad.1.k", attempts: 5 });
      const deadline = Date.now() + 30_000;
      while ((await job.getState()) !== "failed" && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      const failed = (await tq.queue.getJob("s-bad.1.k"))!;
      assert.equal(failed.attemptsMade, 1);
      assert.match(failed.failedReason, /--no-such-flag/);
      await tq.close();
    } finally {
      await (w as ReturnType<typeof worker> | null)?.stop();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a worker leaves a trial over its --memory-budget on the queue for another",
  ...queueTest,
  fn: async () => {
    const redis = await startRedis();
    const dir = await Deno.makeTempDir();
    const small = worker(redis.url, "small", `${dir}/small`, 30_000, 1024 ** 2);
    const tq = await connectQueue(redis.url, "--queue");
    try {
      const job = await tq.queue.add("big", {
        sweepId: "s-big",
        key: "k",
        attempt: 1,
        argv: ["--epochs", "1"],
        estimateBytes: 64 * 1024 ** 2,
        asha: null,
      }, { jobId: "s-big.1.k" });
      const deadline = Date.now() + 10_000;
      while (!small.lines.some((l) => l.includes('"job_too_big"')) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(small.lines.some((l) => l.includes('"job_too_big"')), small.lines.join("\n"));
      assert.ok(["delayed", "waiting", "prioritized"].includes(await job.getState()));
      assert.ok(!small.lines.some((l) => l.includes('"job_started"')), "it never ran here");
      assert.equal((await tq.queue.getJob("s-big.1.k"))!.attemptsMade, 0, "no attempt spent");
    } finally {
      await tq.close();
      await small.stop();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("an unreachable or malformed queue URL is refused, naming it, before anything starts", async () => {
  const dir = await Deno.makeTempDir();
  const url = `redis://127.0.0.1:${freePort()}`;
  await assert.rejects(
    runSweep(parseSweepArgs(["--out", `${dir}/runs`, "--seed", "0,1", "--queue", url])),
    new RegExp(`^Error: --queue ${url}: cannot reach Redis at 127\\.0\\.0\\.1:\\d+ .*redis-server`),
  );
  await assert.rejects(Deno.stat(`${dir}/runs`), Deno.errors.NotFound, "nothing was written");
  await assert.rejects(
    runWorker({
      queue: url,
      concurrency: 1,
      budget: null,
      artifacts: `${dir}/w`,
      leaseMs: 1000,
      name: "w",
      json: true,
    }),
    new RegExp(`--queue ${url}: cannot reach Redis`),
  );
  assert.throws(() => parseRedisUrl("http://h:1", "--queue"), /--queue http:\/\/h:1: the scheme/);
  assert.throws(() => parseRedisUrl("redis://h:1/x", "--queue"), /database number/);
  assert.deepEqual(parseRedisUrl("redis://10.0.0.2:6380/3", "--queue"), {
    url: "redis://10.0.0.2:6380/3",
    host: "10.0.0.2",
    port: 6380,
    db: 3,
  });
  // The command line: one error line and exit code 1.
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER_TASK, "--queue", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(o.code, 1);
  assert.match(new TextDecoder().decode(o.stderr), new RegExp(`^error: --queue ${url}: cannot`));
  await Deno.remove(dir, { recursive: true });
});
