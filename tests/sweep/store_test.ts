import assert from "node:assert/strict";
import { SweepStore, type TrialRecord } from "../../src/store/sweeps.ts";

const SWEEPS_URL = new URL("../../src/store/sweeps.ts", import.meta.url).href;

function trial(over: Partial<TrialRecord> & { key: string }): TrialRecord {
  return {
    sweepId: "s1",
    params: {},
    status: "pending",
    runId: null,
    estimateBytes: null,
    peakBytes: null,
    error: null,
    startedAt: null,
    finishedAt: null,
    worker: null,
    attempt: 0,
    ...over,
  };
}

Deno.test("sweeps and trials round-trip, joined with their runs' best metrics", async () => {
  const dir = await Deno.makeTempDir();
  const store = SweepStore.open(dir);
  const base = {
    id: "s1",
    name: null,
    defaultName: "tiny negatives",
    args: { data: "/d/tiny.txt", epochs: 2 },
    grid: { negatives: [32, 128] },
    budgetBytes: 1 << 30,
  };
  const first = store.createOrGetSweep(base);
  assert.equal(first.created, true);
  assert.equal(first.sweep.name, "tiny negatives");
  assert.deepEqual(first.sweep.grid, { negatives: [32, 128] });
  store.setSweepStatus("s1", "interrupted");
  const again = store.createOrGetSweep({ ...base, name: "renamed", budgetBytes: 2 << 30 });
  assert.equal(again.created, false);
  assert.equal(again.sweep.status, "running");
  assert.equal(again.sweep.name, "renamed");
  assert.equal(again.sweep.budgetBytes, 2 << 30);

  const keys = [{ key: "negatives=32", params: { negatives: 32 } }, {
    key: "negatives=128",
    params: { negatives: 128 },
  }];
  store.ensureTrials("s1", keys);
  store.upsertTrial(
    trial({
      key: "negatives=128",
      params: { negatives: 128 },
      status: "exceeds_budget",
      estimateBytes: 5e9,
    }),
  );
  store.ensureTrials("s1", keys); // existing trials keep their state
  assert.equal(store.getTrial("s1", "negatives=128")!.status, "exceeds_budget");

  store.runs.createRun({ id: "r1", name: "t", dataset: "tiny", config: {}, sweepId: "s1" });
  store.runs.addMetrics("r1", [
    ...[[1, 0.1, 0.3, 0.5, 2], [2, 0.3, 0.6, 0.7, 4], [3, 0.2, 0.9, 0.8, 3]].flatMap(
      ([epoch, ndcg, hr, cov, sec]) => [
        { epoch, step: epoch * 10, key: "valid_ndcg@10", value: ndcg },
        { epoch, step: epoch * 10, key: "valid_hr@10", value: hr },
        { epoch, step: epoch * 10, key: "valid_coverage@10", value: cov },
        { epoch, step: epoch * 10, key: "epoch_seconds", value: sec },
      ],
    ),
  ]);
  store.runs.update("r1", { status: "finished", peakBytes: 1234, finished: true });
  store.upsertTrial(trial({
    key: "negatives=32",
    params: { negatives: 32 },
    status: "finished",
    runId: "r1",
    estimateBytes: 1000,
    peakBytes: 1234,
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:01:00.000Z",
  }));

  const view = store.getSweep("s1")!;
  assert.equal(view.trials.length, 2);
  const t = view.trials.find((x) => x.key === "negatives=32")!;
  assert.equal(t.run?.id, "r1");
  assert.deepEqual(
    [t.validNdcg10, t.validHr10, t.validCoverage10, t.bestEpoch, t.secondsPerEpoch],
    [0.3, 0.6, 0.7, 2, 3],
    "metrics of the best-NDCG epoch, median s/epoch",
  );
  const other = view.trials.find((x) => x.key === "negatives=128")!;
  assert.equal(other.run, null);
  assert.equal(other.validNdcg10, null);
  assert.deepEqual(other.params, { negatives: 128 });

  const [summary] = store.listSweeps();
  assert.equal(summary.id, "s1");
  assert.deepEqual(summary.counts, {
    pending: 0,
    running: 0,
    finished: 1,
    failed: 0,
    exceeds_budget: 1,
    pruned: 0,
  });
  assert.equal(store.getSweep("nope"), null);
  store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an interruption turns running trials back to pending in one transaction", async () => {
  const dir = await Deno.makeTempDir();
  const store = SweepStore.open(dir);
  store.createOrGetSweep({
    id: "s1",
    name: "x",
    defaultName: "x",
    args: {},
    grid: { seed: [0, 1, 2] },
    budgetBytes: null,
  });
  store.upsertTrial(trial({ key: "seed=0", status: "finished", runId: "a", peakBytes: 1 }));
  store.upsertTrial(trial({ key: "seed=1", status: "running", runId: "b", startedAt: "t" }));
  store.upsertTrial(trial({ key: "seed=2", status: "running", runId: "c", startedAt: "t" }));
  assert.equal(store.markInterrupted("s1"), 2);
  const trials = store.listTrials("s1");
  assert.deepEqual(trials.map((t) => [t.key, t.status, t.runId]), [
    ["seed=0", "finished", "a"],
    ["seed=1", "pending", null],
    ["seed=2", "pending", null],
  ]);
  assert.equal(store.getSweepRecord("s1")!.status, "interrupted");
  store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("four processes writing the store at once lose nothing", async () => {
  const dir = await Deno.makeTempDir();
  const WRITES = 300;
  // As in a sweep, the parent holds a connection while its workers write: with one open, the
  // workers' `pragma journal_mode` (run before busy_timeout by RunStore) never meets a lock.
  const parent = SweepStore.open(dir);
  const script = `${dir}/writer.ts`;
  await Deno.writeTextFile(
    script,
    `import { SweepStore } from "${SWEEPS_URL}";
const [dir, who] = Deno.args;
const store = SweepStore.open(dir);
store.createOrGetSweep({ id: "s-" + who, name: null, defaultName: who, args: {}, grid: {},
  budgetBytes: null });
store.runs.createRun({ id: "run-" + who, name: who, dataset: "d", config: {}, sweepId: "s-" + who });
for (let i = 0; i < ${WRITES}; i++) {
  store.runs.addMetrics("run-" + who, [{ epoch: 1, step: i, key: "train_loss_step", value: i }]);
  store.upsertTrial({ sweepId: "s-" + who, key: "k" + i, params: { i }, status: "finished",
    runId: "run-" + who, estimateBytes: i, peakBytes: i, error: null, startedAt: null,
    finishedAt: null, worker: null, attempt: 1 });
  store.runs.update("run-" + who, { peakBytes: i });
}
store.close();
`,
  );
  const children = Array.from({ length: 4 }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, dir, `w${i}`],
      stdout: "piped",
      stderr: "piped",
    }).output());
  const outputs = await Promise.all(children);
  for (const o of outputs) assert.ok(o.success, new TextDecoder().decode(o.stderr));
  parent.close();
  const store = SweepStore.open(dir);
  for (let w = 0; w < 4; w++) {
    const points = store.runs.metrics(`run-w${w}`, "train_loss_step");
    assert.deepEqual(points.map((p) => p.value), Array.from({ length: WRITES }, (_, i) => i));
    assert.equal(store.listTrials(`s-w${w}`).length, WRITES);
    assert.equal(store.runs.getRun(`run-w${w}`)!.peakBytes, WRITES - 1);
  }
  assert.equal(store.listSweeps().length, 4);
  const mode = store.db.prepare("pragma journal_mode").get() as { journal_mode: string };
  assert.equal(mode.journal_mode, "wal");
  store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an outcome is recorded once per sweep, trial and attempt, with its imported run", async () => {
  const dir = await Deno.makeTempDir();
  const store = SweepStore.open(dir);
  store.createOrGetSweep({
    id: "s1",
    name: "x",
    defaultName: "x",
    args: {},
    grid: { seed: [0] },
    budgetBytes: null,
  });
  store.ensureTrials("s1", [{ key: "seed=0", params: { seed: 0 } }]);
  // The run as a worker's own store holds it: not in this store until the outcome brings it.
  const run = {
    id: "w-run",
    name: "x seed=0",
    status: "finished" as const,
    dataset: "tiny",
    config: { seed: 0 },
    createdAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:01:00.000Z",
    wallSeconds: 60,
    peakBytes: 999,
    bestValidNdcg10: 0.25,
    error: null,
    checkpoint: "/worker/disk/w-run/last.safetensors",
    sweepId: "s1",
    heartbeatAt: "2026-01-01T00:01:00.000Z",
  };
  const metrics = [{ epoch: 1, step: 3, key: "valid_ndcg@10", value: 0.25 }];
  const outcome = {
    trial: trial({
      key: "seed=0",
      params: { seed: 0 },
      status: "finished",
      runId: "w-run",
      peakBytes: 999,
      worker: "host-b:42",
      attempt: 1,
    }),
    imported: { run, metrics },
  };
  assert.equal(store.recordOutcome(outcome), true);
  // The same attempt delivered again (a restarted coordinator reading the job) changes nothing.
  assert.equal(
    store.recordOutcome({ ...outcome, trial: { ...outcome.trial, worker: "other", peakBytes: 1 } }),
    false,
  );
  const view = store.getSweep("s1")!;
  const [t] = view.trials;
  assert.deepEqual([t.status, t.worker, t.attempt, t.peakBytes], ["finished", "host-b:42", 1, 999]);
  assert.equal(t.run?.checkpoint, run.checkpoint);
  assert.equal(t.validNdcg10, 0.25, "the imported metrics join the trial");
  assert.deepEqual(store.runs.metrics("w-run").map((m) => m.value), [0.25]);
  assert.deepEqual(
    store.listOutcomes("s1").map((o) => [o.key, o.attempt, o.status, o.worker, o.runId]),
    [["seed=0", 1, "finished", "host-b:42", "w-run"]],
  );
  // A later attempt is a new entry; importing the same run again keeps one copy of its metrics.
  assert.equal(
    store.recordOutcome({ ...outcome, trial: { ...outcome.trial, attempt: 2 } }),
    true,
  );
  assert.equal(store.runs.metrics("w-run").length, 1);
  assert.equal(store.listOutcomes("s1").length, 2);
  store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a store written before workers existed gains the worker and attempt columns", async () => {
  const dir = await Deno.makeTempDir();
  const { DatabaseSync } = await import("node:sqlite");
  const old = new DatabaseSync(`${dir}/runs.sqlite`);
  old.exec(`create table trials (sweep_id text not null, key text not null, params text not null,
    status text not null, run_id text, estimate_bytes integer, peak_bytes integer, error text,
    started_at text, finished_at text, primary key (sweep_id, key));
    insert into trials (sweep_id, key, params, status) values ('s0', 'k', '{}', 'finished');`);
  old.close();
  const store = SweepStore.open(dir);
  const [t] = store.listTrials("s0");
  assert.deepEqual([t.key, t.status, t.worker, t.attempt], ["k", "finished", null, 0]);
  store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the rung table gives each trial the others' values and keeps its latest", async () => {
  const dir = await Deno.makeTempDir();
  const store = SweepStore.open(dir);
  assert.deepEqual(store.reportRung("s1", 1, "a", 0.5), []);
  assert.deepEqual(store.reportRung("s1", 1, "b", 0.2), [0.5]);
  assert.deepEqual(store.reportRung("s1", 1, "a", 0.4), [0.2], "a rerun replaces its own value");
  assert.deepEqual(store.reportRung("s1", 3, "a", 0.6), [], "rungs are apart");
  assert.deepEqual(store.reportRung("s1", 1, "c", 0.1).sort(), [0.2, 0.4]);
  store.close();
  await Deno.remove(dir, { recursive: true });
});
