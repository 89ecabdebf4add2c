/** Pure parts of the dashboard: sweep heatmap layout, runs-list queries, formatting. */
import assert from "node:assert/strict";
import type { RunView } from "../../src/dashboard/runs.ts";
import type { Param, TrialView } from "../../src/store/sweeps.ts";
import { layoutSweep } from "../../src/dashboard/heatmap.ts";
import { applyRunQuery, parseRunQuery, queryString } from "../../src/dashboard/query.ts";
import { duration } from "../../src/dashboard/format.ts";

function trial(params: Record<string, Param>, over: Partial<TrialView> = {}): TrialView {
  return {
    sweepId: "s",
    key: JSON.stringify(params),
    params,
    status: "finished",
    runId: null,
    run: null,
    estimateBytes: 10,
    peakBytes: 10,
    validNdcg10: 0.1,
    validHr10: null,
    validCoverage10: null,
    bestEpoch: null,
    secondsPerEpoch: null,
    error: null,
    startedAt: null,
    finishedAt: null,
    ...over,
  };
}

Deno.test("sweep layout: extra axes give one heatmap each; over-budget peaks are not best", () => {
  const grid = { loss: ["ce-", "bce"], batchSize: [64, 128], negatives: [8, 16] };
  const trials = [
    trial({ loss: "ce-", negatives: 8, batchSize: 64 }, { validNdcg10: 0.2 }),
    // The highest NDCG, but its measured peak went over the budget.
    trial({ loss: "ce-", negatives: 16, batchSize: 64 }, { validNdcg10: 0.4, peakBytes: 200 }),
    trial({ loss: "bce", negatives: 16, batchSize: 128 }, { validNdcg10: 0.3 }),
    trial({ loss: "bce", negatives: 8, batchSize: 128 }, { status: "running", validNdcg10: 0.35 }),
    // Grid values match by JSON value: "64" is not 64.
    trial({ loss: "bce", negatives: 8, batchSize: "64" }, { validNdcg10: 0.15 }),
  ];
  const layout = layoutSweep(grid, trials, 100);
  assert.equal(layout.best, trials[2]);
  assert.deepEqual(layout.range, { min: 0.15, max: 0.3 });
  assert.deepEqual(layout.heatmaps.map((h) => h.title), ["loss = ce-", "loss = bce"]);
  const [ce, bce] = layout.heatmaps;
  assert.equal(ce.x.axis, "negatives");
  assert.equal(ce.y.axis, "batchSize");
  assert.equal(ce.rows[0][1].exceedsBudget, true);
  assert.equal(ce.rows[0][1].best, false);
  assert.equal(ce.rows[1][0].trial, null);
  assert.equal(bce.rows[1][1].best, true);
  // A running trial shows no score yet.
  assert.equal(bce.rows[1][0].ndcg10, null);
  assert.equal(bce.rows[0][0].trial, null);
});

Deno.test("sweep layout: one axis is one row; no axes, no heatmap", () => {
  const one = layoutSweep({ dim: [32, 64] }, [trial({ dim: 64 })], null);
  assert.equal(one.heatmaps.length, 1);
  assert.equal(one.heatmaps[0].y.axis, null);
  assert.equal(one.heatmaps[0].rows.length, 1);
  assert.equal(one.heatmaps[0].rows[0][1].best, true);
  assert.deepEqual(layoutSweep({}, [], null).heatmaps, []);
});

function run(id: string, over: Partial<RunView>): RunView {
  return {
    id,
    name: id,
    status: "finished",
    dataset: "d",
    config: {},
    loss: "ce",
    objective: "full softmax",
    negatives: null,
    batchSize: 128,
    bestValidNdcg10: null,
    peakBytes: null,
    wallSeconds: null,
    durationSeconds: null,
    createdAt: `2026-11-29T10:00:0${id.length}Z`,
    finishedAt: null,
    heartbeatAt: null,
    checkpoint: null,
    sweepId: null,
    error: null,
    tags: [],
    note: "",
    archivedAt: null,
    ...over,
  };
}

Deno.test("runs query: parse, filter, sort with missing values last, round-trip", () => {
  const runs = [
    run("a", { negatives: 64, bestValidNdcg10: 0.2 }),
    run("bb", { loss: "ce-", negatives: 256, bestValidNdcg10: 0.3, status: "running" }),
    run("ccc", { negatives: null }),
  ];
  const q = (params: Record<string, string>) => parseRunQuery((n) => params[n]);
  const ids = (params: Record<string, string>) => applyRunQuery(runs, q(params)).map((r) => r.id);
  assert.deepEqual(ids({}), ["ccc", "bb", "a"]);
  assert.deepEqual(ids({ sort: "negatives", dir: "asc" }), ["a", "bb", "ccc"]);
  assert.deepEqual(ids({ sort: "negatives", dir: "desc" }), ["bb", "a", "ccc"]);
  assert.deepEqual(ids({ sort: "ndcg" }), ["bb", "a", "ccc"]);
  assert.deepEqual(ids({ status: "running" }), ["bb"]);
  assert.deepEqual(ids({ q: "CC" }), ["ccc"]);
  assert.deepEqual(ids({ loss: "ce-" }), ["bb"]);
  assert.equal(queryString(q({})), "");
  assert.equal(queryString(q({ sort: "name", dir: "asc", q: " x " })), "?q=x&sort=name&dir=asc");
});

Deno.test("durations read as seconds, minutes or hours", () => {
  assert.equal(duration(null), "—");
  assert.equal(duration(2.04), "2.0 s");
  assert.equal(duration(42.4), "42 s");
  assert.equal(duration(95), "1 min 35 s");
  assert.equal(duration(3 * 3600 + 125), "3 h 02 min");
});
