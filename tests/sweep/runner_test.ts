import assert from "node:assert/strict";
import { parseSweepArgs } from "../../src/sweep/grid.ts";
import { runSweep } from "../../src/sweep/runner.ts";
import { SweepStore } from "../../src/store/sweeps.ts";
import { tinyData } from "../support/tiny_data.ts";

const SWEEP_TASK = new URL("../../tasks/sweep.ts", import.meta.url).pathname;

type Event = Record<string, unknown> & { event: string };

/** The most trials running at once, from the progress events. */
function maxRunning(events: Event[]): number {
  let running = 0;
  let most = 0;
  for (const e of events) {
    if (e.event === "trial_started") most = Math.max(most, ++running);
    if (e.event === "trial_finished" || (e.event === "trial_failed" && e.run !== undefined)) {
      running--;
    }
  }
  return most;
}

Deno.test({
  name: "budget filtering, failing trials with their errors, the others finish; a rerun retries",
  // Trials are separate processes; this process only spawns them and reads their output.
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const data = await tinyData(dir);
    const out = `${dir}/runs`;
    // dim 128 is over the budget; heads 3 does not divide dim (a bad flag value, caught before
    // starting); lr 1e30 makes the loss NaN inside the trial process.
    const args = [
      ...["--data", data, "--out", out, "--epochs", "2", "--seq-len", "8", "--batch-size", "32"],
      ...["--dim", "8,128", "--heads", "1,3", "--lr", "0.01,1e30"],
      ...["--memory-budget", "6MiB", "--parallel", "2", "--json"],
    ];
    const events: Event[] = [];
    const result = await runSweep(parseSweepArgs(args), {
      write: (line) => events.push(JSON.parse(line)),
    });
    assert.equal(result.interrupted, false);
    const byKey = new Map(result.view.trials.map((t) => [t.key, t]));
    assert.equal(byKey.size, 8);

    const good = byKey.get("dim=8,heads=1,lr=0.01")!;
    assert.equal(good.status, "finished", good.error ?? "");
    assert.ok(good.runId && good.run, "the trial is a run in the run store");
    assert.equal(good.run.sweepId, result.sweepId);
    assert.equal(good.run.status, "finished");
    assert.equal(good.run.name, `tiny.txt dim×heads×lr ${good.key}`);
    assert.ok(good.peakBytes! > 0 && good.peakBytes === good.run.peakBytes);
    assert.ok(good.estimateBytes! > 0);
    assert.ok(good.validNdcg10! > 0 && good.validHr10! > 0 && good.validCoverage10! > 0);
    assert.ok(good.secondsPerEpoch! > 0);
    assert.ok(good.startedAt && good.finishedAt);

    const nan = byKey.get("dim=8,heads=1,lr=1e+30")!;
    assert.equal(nan.status, "failed");
    assert.match(nan.error!, /loss became NaN/);
    assert.equal(nan.run?.status, "failed");

    for (const key of ["dim=8,heads=3,lr=0.01", "dim=128,heads=3,lr=1e+30"]) {
      const t = byKey.get(key)!;
      assert.equal(t.status, "failed");
      assert.match(t.error!, /--dim \d+ is not divisible by --heads 3/);
      assert.equal(t.runId, null, "never started");
    }
    for (const key of ["dim=128,heads=1,lr=0.01", "dim=128,heads=1,lr=1e+30"]) {
      const t = byKey.get(key)!;
      assert.equal(t.status, "exceeds_budget");
      assert.ok(t.estimateBytes! > 6 * 1024 ** 2);
      assert.equal(t.runId, null, "never started");
    }
    const started = events.filter((e) => e.event === "trial_started").map((e) => e.key);
    assert.deepEqual(started.sort(), ["dim=8,heads=1,lr=0.01", "dim=8,heads=1,lr=1e+30"]);
    assert.equal(maxRunning(events), 2, "--parallel 2 runs two trials at once");
    const off = Math.abs(good.estimateBytes! - good.peakBytes!) / good.peakBytes! > 0.2;
    assert.equal(
      events.some((e) => e.event === "estimate_off" && e.key === good.key),
      off,
      "the estimate is checked against the measured peak",
    );
    assert.equal(result.view.sweep.status, "failed");
    assert.deepEqual(result.view.sweep.grid, { dim: [8, 128], heads: [1, 3], lr: [0.01, 1e30] });

    // The same command again: the finished trial is skipped, the failed ones are retried.
    const again: Event[] = [];
    const rerun = await runSweep(parseSweepArgs(args), {
      write: (line) => again.push(JSON.parse(line)),
    });
    assert.equal(rerun.sweepId, result.sweepId);
    assert.deepEqual(
      again.filter((e) => e.event === "trial_skipped").map((e) => e.key),
      ["dim=8,heads=1,lr=0.01"],
    );
    assert.deepEqual(
      again.filter((e) => e.event === "trial_started").map((e) => e.key),
      ["dim=8,heads=1,lr=1e+30"],
    );
    const after = new Map(rerun.view.trials.map((t) => [t.key, t]));
    assert.equal(after.get(good.key)!.runId, good.runId);
    assert.notEqual(after.get(nan.key)!.runId, nan.runId, "a retried trial is a new run");
    await Deno.remove(dir, { recursive: true });
  },
});

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

Deno.test("a sweep killed mid-trial leaves no half-recorded trial, and the same command resumes", async () => {
  const dir = await Deno.makeTempDir();
  const data = await tinyData(dir);
  const out = `${dir}/runs`;
  const args = [
    ...["--data", data, "--out", out, "--epochs", "3", "--dim", "8", "--seq-len", "8"],
    ...["--batch-size", "32", "--seed", "0,1", "--json"],
  ];
  const sweep = (extra: string[] = []) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", SWEEP_TASK, ...args, ...extra],
      stdout: "piped",
      stderr: "piped",
    }).spawn();

  // The first trial finishes; the sweep is killed once the second has created its run.
  const first = sweep();
  const seen: Event[] = [];
  const stderr = new Response(first.stderr).text();
  await readEvents(first.stdout, (e) => {
    seen.push(e);
    if (e.event === "trial_run" && e.index === 2) first.kill("SIGTERM");
  });
  const status = await first.status;
  assert.equal(status.code, 130, await stderr);
  const sweepId = seen[0].sweep as string;
  assert.ok(seen.some((e) => e.event === "interrupted"));

  const store = await SweepStore.open(out);
  const trials = await store.listTrials(sweepId);
  assert.deepEqual(trials.map((t) => [t.key, t.status]), [
    ["seed=0", "finished"],
    ["seed=1", "pending"],
  ]);
  const done = trials[0];
  assert.ok(done.runId && done.peakBytes! > 0 && done.estimateBytes! > 0 && done.finishedAt);
  const reset = trials[1];
  assert.deepEqual(
    [reset.runId, reset.peakBytes, reset.startedAt, reset.finishedAt, reset.error],
    [null, null, null, null, null],
  );
  assert.equal((await store.getSweepRecord(sweepId))!.status, "interrupted");
  const killedRun = seen.find((e) => e.event === "trial_run" && e.index === 2)!.run as string;
  const killed = (await store.runs.getRun(killedRun))!;
  assert.equal(killed.sweepId, sweepId, "the partial run stays in the run store");
  assert.equal(killed.status, "stopped", "the trial process recorded its run as stopped");
  assert.ok(
    (await store.getSweepRecord(sweepId))!.budgetBytes! > 0,
    "the device limit is the budget",
  );
  await store.close();

  // The same command (plus output flags, which do not change the sweep) resumes it.
  const csv = `${dir}/trials.csv`;
  const second = sweep(["--export", csv]);
  const resumed: Event[] = [];
  const stderr2 = new Response(second.stderr).text();
  await readEvents(second.stdout, (e) => resumed.push(e));
  assert.equal((await second.status).code, 0, await stderr2);
  assert.equal(resumed[0].sweep, sweepId);
  assert.equal(resumed[0].resumed, true);
  assert.deepEqual(
    resumed.filter((e) => e.event === "trial_skipped").map((e) => e.key),
    ["seed=0"],
  );
  assert.deepEqual(
    resumed.filter((e) => e.event === "trial_started").map((e) => e.key),
    ["seed=1"],
  );
  for (const run of [seen, resumed]) assert.equal(maxRunning(run), 1, "one at a time by default");
  const result = resumed.at(-1)!;
  assert.equal(result.event, "result");
  const final = result.trials as { key: string; status: string; run_id: string }[];
  assert.deepEqual(final.map((t) => t.status), ["finished", "finished"]);
  assert.equal(final.find((t) => t.key === "seed=0")!.run_id, done.runId);
  assert.equal((result.sweep as { status: string }).status, "finished");
  const rows = (await Deno.readTextFile(csv)).split("\r\n").filter(Boolean);
  assert.equal(rows.length, 3);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("data that cannot be read fails its trials, with the reason, before any starts", async () => {
  const dir = await Deno.makeTempDir();
  const events: Event[] = [];
  const result = await runSweep(
    parseSweepArgs([
      ...["--data", `${dir}/a.txt,${dir}/b.txt`, "--out", `${dir}/runs`],
      ...["--memory-budget", "1GiB", "--json"],
    ]),
    { write: (line) => events.push(JSON.parse(line)) },
  );
  assert.deepEqual(result.view.trials.map((t) => t.status), ["failed", "failed"]);
  for (const t of result.view.trials) assert.match(t.error!, new RegExp(String(t.params.data)));
  assert.equal(events.filter((e) => e.event === "trial_started").length, 0);
  assert.equal(result.view.sweep.status, "failed");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a bad command line exits with 2 and names the flag", async () => {
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SWEEP_TASK, "--negatives", "32,,128"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(o.code, 2);
  assert.match(new TextDecoder().decode(o.stderr), /error: --negatives: empty value/);
});

Deno.test("asha here: a trial below the rung's cutoff is stopped there and not rerun", async () => {
  const dir = await Deno.makeTempDir();
  const data = await tinyData(dir);
  // One at a time, so the order is fixed: lr 0.05 reaches rung 1 (epoch 1) first; lr 1e-7 barely
  // moves from its initialisation and is below it there (0.42 against 0.18 here).
  const args = [
    ...["--data", data, "--out", `${dir}/runs`, "--epochs", "2", "--dim", "8", "--seq-len", "8"],
    ...["--batch-size", "32", "--lr", "0.05,1e-7", "--search", "asha", "--eta", "2"],
    ...["--memory-budget", "64MiB", "--json"],
  ];
  const events: Event[] = [];
  const result = await runSweep(parseSweepArgs(args), {
    write: (line) => events.push(JSON.parse(line)),
  });
  const byKey = new Map(result.view.trials.map((t) => [t.key, t]));
  const good = byKey.get("lr=0.05")!;
  assert.equal(good.status, "finished", good.error ?? "");
  const slow = byKey.get("lr=1e-7")!;
  assert.equal(slow.status, "pruned", slow.error ?? "");
  assert.match(slow.error!, /^stopped by ASHA at epoch 1 \(rung 1\): valid NDCG@10 [\d.]+ below/);
  assert.equal(slow.run?.status, "stopped", "the trial stopped between two steps");
  assert.equal(slow.bestEpoch, 1);
  assert.ok(slow.validNdcg10! < good.validNdcg10!);
  assert.deepEqual(events.filter((e) => e.event === "trial_pruned").map((e) => e.key), [slow.key]);
  assert.equal(result.view.sweep.status, "finished", "pruning is no failure");
  // Pruned is an end, like finished: the same command starts nothing.
  const again: Event[] = [];
  await runSweep(parseSweepArgs(args), { write: (line) => again.push(JSON.parse(line)) });
  assert.equal(again.filter((e) => e.event === "trial_started").length, 0);
  await Deno.remove(dir, { recursive: true });
});
