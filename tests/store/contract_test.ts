/**
 * The store's contract, one list of cases run against each back end: the embedded SQLite file and
 * a PostgreSQL server this test starts itself (initdb in a temporary folder, a loopback port;
 * skipped, saying why, where PostgreSQL is not installed). Every case gets a store of its own: a
 * fresh runs folder, and on PostgreSQL a fresh schema.
 */
import assert from "node:assert/strict";
import { StoreReader } from "../../src/store/read.ts";
import { LOST_AFTER_SECONDS, newRunId, RunStore } from "../../src/store/runs.ts";
import { SweepStore, type TrialRecord } from "../../src/store/sweeps.ts";
import { postgresMissing, startPostgres } from "../support/postgres_server.ts";

const SWEEPS_URL = new URL("../../src/store/sweeps.ts", import.meta.url).href;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** Where a case's store is: a runs folder, and the PostgreSQL URL when the store is there. */
interface StoreAt {
  dir: string;
  store: string | null;
}

const CASES: { name: string; run: (at: StoreAt) => Promise<void> }[] = [];
const case_ = (name: string, run: (at: StoreAt) => Promise<void>) => CASES.push({ name, run });

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

case_("runs and metrics round-trip through the store", async (at) => {
  const store = await RunStore.open(at.dir, at.store);
  const id = newRunId();
  await store.createRun({
    id,
    name: "beauty-ce",
    dataset: "Beauty.txt",
    config: { lr: 0.001, loss: "ce" },
  });
  await store.addMetrics(id, [
    { epoch: 1, step: 10, key: "train_loss", value: 9.1 },
    { epoch: 1, step: 10, key: "valid_ndcg@10", value: 0.01 },
    { epoch: 2, step: 20, key: "train_loss", value: 8.5 },
  ]);
  await store.update(id, {
    status: "finished",
    wallSeconds: 12.5,
    // Over 2^32: byte counts are 64-bit on both back ends.
    peakBytes: 12345678901,
    bestValidNdcg10: 0.01,
    finished: true,
  });
  const run = (await store.getRun(id))!;
  assert.equal(run.status, "finished");
  assert.equal(run.config.loss, "ce");
  assert.equal(run.peakBytes, 12345678901);
  assert.equal(run.wallSeconds, 12.5);
  assert.ok(run.finishedAt);
  assert.deepEqual((await store.metrics(id, "train_loss")).map((m) => m.value), [9.1, 8.5]);
  await store.truncateMetrics(id, 10);
  assert.equal((await store.metrics(id)).length, 2);
  assert.equal((await store.listRuns()).length, 1);
  assert.equal(await store.getRun("nope"), null);
  await store.close();
});

case_(
  "a reader sees what a writer adds: rows in write order, the cursor, row times",
  async (at) => {
    const store = await RunStore.open(at.dir, at.store);
    const reader = StoreReader.open(at.dir, at.store);
    await store.createRun({ id: "r1", name: "first", dataset: "d", config: { loss: "ce" } });
    const before = Date.now() / 1000;
    await store.addMetrics("r1", [
      { epoch: 1, step: 3, key: "train_loss", value: 2 },
      { epoch: 1, step: 1, key: "peak_bytes", value: 7 },
    ]);
    assert.equal((await reader.getRun("r1"))!.status, "running");
    const rows = await reader.metricRows("r1");
    assert.deepEqual(rows.map((r) => r.key), ["train_loss", "peak_bytes"], "write order");
    assert.ok(rows[0].rowid < rows[1].rowid);
    assert.ok(rows[0].recordedAt! >= before - 1 && rows[0].recordedAt! <= Date.now() / 1000 + 1);
    assert.equal(await reader.metricsCursor("r1"), rows[1].rowid);
    assert.deepEqual(
      (await reader.metricRows("r1", { after: rows[0].rowid })).map((r) => r.key),
      ["peak_bytes"],
    );
    assert.deepEqual(
      (await reader.metricRows("r1", { keys: ["train_loss"], limit: 5 })).map((r) => r.value),
      [2],
    );
    assert.equal(await reader.recordedPeak("r1"), 7);
    // No sweep tables yet: empty, not an error.
    assert.deepEqual(await reader.listSweeps(), []);
    assert.equal(await reader.getSweep("s1"), null);
    await reader.close();
    await store.close();
  },
);

case_("lost is derived from the heartbeat and never for runs that ended", async (at) => {
  const store = await RunStore.open(at.dir, at.store);
  await store.createRun({ id: "r", name: "r", dataset: "d", config: {} });
  const reader = StoreReader.open(at.dir, at.store);
  assert.equal((await reader.getRun("r"))!.status, "running");
  await store.heartbeat("r", new Date(Date.now() - (LOST_AFTER_SECONDS + 1) * 1000));
  assert.equal((await reader.getRun("r"))!.status, "lost");
  await store.update("r", { status: "failed", error: "x", finished: true });
  assert.equal((await reader.getRun("r"))!.status, "failed");
  await store.reopenRun("r");
  assert.equal((await reader.getRun("r"))!.status, "running");
  await reader.close();
  await store.close();
});

case_("tags, notes and the archive mark; deleting a run removes its records", async (at) => {
  const store = await RunStore.open(at.dir, at.store);
  for (const id of ["a", "b"]) await store.createRun({ id, name: id, dataset: "d", config: {} });
  await store.addMetrics("a", [{ epoch: 1, step: 1, key: "train_loss", value: 1 }]);
  const reader = StoreReader.open(at.dir, at.store);
  await store.annotate("a", { tags: ["baseline", "beauty"], note: "first try" });
  await store.setArchived("a", true);
  // Notes again keep the archive mark; archiving keeps the notes.
  await store.annotate("a", { tags: ["baseline"], note: "first try, kept" });
  const notes = await reader.notes("a");
  assert.deepEqual(notes.tags, ["baseline"]);
  assert.equal(notes.note, "first try, kept");
  assert.ok(notes.archivedAt);
  await store.setArchived("a", false);
  assert.equal((await reader.notes("a")).archivedAt, null);
  await store.setArchived("b", true);
  assert.deepEqual([...(await reader.allNotes()).keys()].sort(), ["a", "b"]);

  assert.equal(await store.deleteRun("a"), true);
  assert.equal(await reader.getRun("a"), null);
  assert.deepEqual(await reader.metricRows("a"), []);
  assert.equal((await reader.notes("a")).note, "");
  assert.equal(await store.deleteRun("a"), false);
  assert.deepEqual((await reader.listRuns()).map((r) => r.id), ["b"]);
  await reader.close();
  await store.close();
});

case_("a failed transaction leaves nothing behind", async (at) => {
  const store = await RunStore.open(at.dir, at.store);
  await assert.rejects(
    store.transaction(async (tx) => {
      await tx.createRun({ id: "half", name: "h", dataset: "d", config: {} });
      throw new Error("stop here");
    }),
    /stop here/,
  );
  assert.equal(await store.getRun("half"), null);
  // The connection is usable afterwards.
  await store.createRun({ id: "whole", name: "w", dataset: "d", config: {} });
  assert.equal((await store.getRun("whole"))?.name, "w");
  await store.close();
});

case_("sweeps and trials round-trip, joined with their runs' best metrics", async (at) => {
  const store = await SweepStore.open(at.dir, at.store);
  const base = {
    id: "s1",
    name: null,
    defaultName: "tiny negatives",
    args: { data: "/d/tiny.txt", epochs: 2 },
    grid: { negatives: [32, 128] },
    budgetBytes: 1 << 30,
  };
  const first = await store.createOrGetSweep(base);
  assert.equal(first.created, true);
  assert.equal(first.sweep.name, "tiny negatives");
  assert.deepEqual(first.sweep.grid, { negatives: [32, 128] });
  await store.setSweepStatus("s1", "interrupted");
  const again = await store.createOrGetSweep({ ...base, name: "renamed", budgetBytes: 2 << 30 });
  assert.equal(again.created, false);
  assert.equal(again.sweep.status, "running");
  assert.equal(again.sweep.name, "renamed");
  assert.equal(again.sweep.budgetBytes, 2 << 30);

  const keys = [{ key: "negatives=32", params: { negatives: 32 } }, {
    key: "negatives=128",
    params: { negatives: 128 },
  }];
  await store.ensureTrials("s1", keys);
  await store.upsertTrial(
    trial({
      key: "negatives=128",
      params: { negatives: 128 },
      status: "exceeds_budget",
      estimateBytes: 5e9,
    }),
  );
  await store.ensureTrials("s1", keys); // existing trials keep their state
  assert.equal((await store.getTrial("s1", "negatives=128"))!.status, "exceeds_budget");

  await store.runs.createRun({ id: "r1", name: "t", dataset: "tiny", config: {}, sweepId: "s1" });
  await store.runs.addMetrics("r1", [
    ...[[1, 0.1, 0.3, 0.5, 2], [2, 0.3, 0.6, 0.7, 4], [3, 0.2, 0.9, 0.8, 3]].flatMap(
      ([epoch, ndcg, hr, cov, sec]) => [
        { epoch, step: epoch * 10, key: "valid_ndcg@10", value: ndcg },
        { epoch, step: epoch * 10, key: "valid_hr@10", value: hr },
        { epoch, step: epoch * 10, key: "valid_coverage@10", value: cov },
        { epoch, step: epoch * 10, key: "epoch_seconds", value: sec },
      ],
    ),
  ]);
  await store.runs.update("r1", { status: "finished", peakBytes: 1234, finished: true });
  await store.upsertTrial(trial({
    key: "negatives=32",
    params: { negatives: 32 },
    status: "finished",
    runId: "r1",
    estimateBytes: 1000,
    peakBytes: 1234,
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:01:00.000Z",
  }));

  const view = (await store.getSweep("s1"))!;
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

  const [summary] = await store.listSweeps();
  assert.equal(summary.id, "s1");
  assert.deepEqual(summary.counts, {
    pending: 0,
    running: 0,
    finished: 1,
    failed: 0,
    exceeds_budget: 1,
    pruned: 0,
  });
  assert.equal(await store.getSweep("nope"), null);
  await store.close();
});

case_("an interruption turns running trials back to pending in one transaction", async (at) => {
  const store = await SweepStore.open(at.dir, at.store);
  await store.createOrGetSweep({
    id: "s1",
    name: "x",
    defaultName: "x",
    args: {},
    grid: { seed: [0, 1, 2] },
    budgetBytes: null,
  });
  await store.upsertTrial(trial({ key: "seed=0", status: "finished", runId: "a", peakBytes: 1 }));
  await store.upsertTrial(trial({ key: "seed=1", status: "running", runId: "b", startedAt: "t" }));
  await store.upsertTrial(trial({ key: "seed=2", status: "running", runId: "c", startedAt: "t" }));
  assert.equal(await store.markInterrupted("s1"), 2);
  const trials = await store.listTrials("s1");
  assert.deepEqual(trials.map((t) => [t.key, t.status, t.runId]), [
    ["seed=0", "finished", "a"],
    ["seed=1", "pending", null],
    ["seed=2", "pending", null],
  ]);
  assert.equal((await store.getSweepRecord("s1"))!.status, "interrupted");
  await store.close();
});

case_(
  "an outcome is recorded once per sweep, trial and attempt, with its imported run",
  async (at) => {
    const store = await SweepStore.open(at.dir, at.store);
    await store.createOrGetSweep({
      id: "s1",
      name: "x",
      defaultName: "x",
      args: {},
      grid: { seed: [0] },
      budgetBytes: null,
    });
    await store.ensureTrials("s1", [{ key: "seed=0", params: { seed: 0 } }]);
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
    assert.equal(await store.recordOutcome(outcome), true);
    // The same attempt delivered again (a restarted coordinator reading the job) changes nothing.
    assert.equal(
      await store.recordOutcome({
        ...outcome,
        trial: { ...outcome.trial, worker: "other", peakBytes: 1 },
      }),
      false,
    );
    const view = (await store.getSweep("s1"))!;
    const [t] = view.trials;
    assert.deepEqual([t.status, t.worker, t.attempt, t.peakBytes], [
      "finished",
      "host-b:42",
      1,
      999,
    ]);
    assert.equal(t.run?.checkpoint, run.checkpoint);
    assert.equal(t.validNdcg10, 0.25, "the imported metrics join the trial");
    assert.deepEqual((await store.runs.metrics("w-run")).map((m) => m.value), [0.25]);
    assert.deepEqual(
      (await store.listOutcomes("s1")).map((o) => [o.key, o.attempt, o.status, o.worker, o.runId]),
      [["seed=0", 1, "finished", "host-b:42", "w-run"]],
    );
    // A later attempt is a new entry; importing the same run again keeps one copy of its metrics.
    assert.equal(
      await store.recordOutcome({ ...outcome, trial: { ...outcome.trial, attempt: 2 } }),
      true,
    );
    assert.equal((await store.runs.metrics("w-run")).length, 1);
    assert.equal((await store.listOutcomes("s1")).length, 2);
    await store.close();
  },
);

case_("the rung table gives each trial the others' values and keeps its latest", async (at) => {
  const store = await SweepStore.open(at.dir, at.store);
  assert.deepEqual(await store.reportRung("s1", 1, "a", 0.5), []);
  assert.deepEqual(await store.reportRung("s1", 1, "b", 0.2), [0.5]);
  assert.deepEqual(
    await store.reportRung("s1", 1, "a", 0.4),
    [0.2],
    "a rerun replaces its own value",
  );
  assert.deepEqual(await store.reportRung("s1", 3, "a", 0.6), [], "rungs are apart");
  assert.deepEqual((await store.reportRung("s1", 1, "c", 0.1)).sort(), [0.2, 0.4]);
  await store.close();
});

case_("four processes writing the store at once lose nothing", async (at) => {
  // Fewer on PostgreSQL: each write is a round trip under the store-wide write lock.
  const WRITES = at.store ? 100 : 300;
  // As in a sweep, the parent holds a connection while its workers write: on SQLite, with one
  // open, the workers' `pragma journal_mode` (run before busy_timeout) never meets a lock.
  const parent = await SweepStore.open(at.dir, at.store);
  const script = `${at.dir}/writer.ts`;
  await Deno.writeTextFile(
    script,
    `import { SweepStore } from "${SWEEPS_URL}";
const [dir, who, url] = Deno.args;
const store = await SweepStore.open(dir, url || null);
await store.createOrGetSweep({ id: "s-" + who, name: null, defaultName: who, args: {}, grid: {},
  budgetBytes: null });
await store.runs.createRun({ id: "run-" + who, name: who, dataset: "d", config: {}, sweepId: "s-" + who });
for (let i = 0; i < ${WRITES}; i++) {
  await store.runs.addMetrics("run-" + who, [{ epoch: 1, step: i, key: "train_loss_step", value: i }]);
  await store.upsertTrial({ sweepId: "s-" + who, key: "k" + i, params: { i }, status: "finished",
    runId: "run-" + who, estimateBytes: i, peakBytes: i, error: null, startedAt: null,
    finishedAt: null, worker: null, attempt: 1 });
  await store.runs.update("run-" + who, { peakBytes: i });
}
await store.close();
`,
  );
  const children = Array.from({ length: 4 }, (_, i) =>
    new Deno.Command(Deno.execPath(), {
      // The repository's import map: the script lives in a temporary folder.
      args: ["run", "-A", "--config", CONFIG, script, at.dir, `w${i}`, at.store ?? ""],
      stdout: "piped",
      stderr: "piped",
    }).output());
  const outputs = await Promise.all(children);
  for (const o of outputs) assert.ok(o.success, new TextDecoder().decode(o.stderr));
  await parent.close();
  const store = await SweepStore.open(at.dir, at.store);
  for (let w = 0; w < 4; w++) {
    const points = await store.runs.metrics(`run-w${w}`, "train_loss_step");
    assert.deepEqual(points.map((p) => p.value), Array.from({ length: WRITES }, (_, i) => i));
    assert.equal((await store.listTrials(`s-w${w}`)).length, WRITES);
    assert.equal((await store.runs.getRun(`run-w${w}`))!.peakBytes, WRITES - 1);
  }
  assert.equal((await store.listSweeps()).length, 4);
  await store.close();
});

case_(
  "transactions started together run one after another; statements wait for them",
  async (at) => {
    const store = await RunStore.open(at.dir, at.store);
    await store.createRun({ id: "r", name: "r", dataset: "d", config: {} });
    const batch = (i: number) =>
      Array.from({ length: 5 }, (_, j) => ({ epoch: i, step: j, key: `k${i}`, value: j }));
    // Metric batches (transactions) and heartbeats (single statements) from one process at once,
    // as a training loop and its heartbeat timer issue them.
    await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => store.addMetrics("r", batch(i))),
      ...Array.from({ length: 8 }, () => store.heartbeat("r")),
    ]);
    const rows = await store.metrics("r");
    assert.equal(rows.length, 40);
    for (let i = 0; i < 8; i++) {
      assert.deepEqual(rows.filter((p) => p.key === `k${i}`).map((p) => p.value), [0, 1, 2, 3, 4]);
    }
    await store.close();
  },
);

/** Each back end: how to make a fresh store location, and how to clean up after the cases. */
interface Backend {
  name: string;
  ignore: boolean;
  start(): Promise<{ fresh(): Promise<StoreAt>; stop(): Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: "SQLite",
    ignore: false,
    start: () =>
      Promise.resolve({
        fresh: async () => ({
          dir: await Deno.makeTempDir({ prefix: "cutrec-store-" }),
          store: null,
        }),
        stop: () => Promise.resolve(),
      }),
  },
  {
    name: "PostgreSQL",
    ignore: postgresMissing !== null,
    start: async () => {
      const server = await startPostgres();
      return {
        fresh: async () => ({
          dir: await Deno.makeTempDir({ prefix: "cutrec-store-" }),
          store: await server.createStore(),
        }),
        stop: () => server.stop(),
      };
    },
  },
];

for (const backend of BACKENDS) {
  Deno.test({
    name: `store contract on ${backend.name}`,
    ignore: backend.ignore,
    fn: async (t) => {
      const server = await backend.start();
      try {
        for (const c of CASES) {
          await t.step(c.name, async () => {
            const at = await server.fresh();
            try {
              await c.run(at);
            } finally {
              await Deno.remove(at.dir, { recursive: true });
            }
          });
        }
      } finally {
        await server.stop();
      }
    },
  });
}
