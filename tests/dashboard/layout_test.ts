/**
 * Pure parts of the dashboard: sweep heatmap and parallel-coordinates layout, colour scale,
 * runs-list queries and search, tags, formatting, and the chart script's smoothing.
 */
import assert from "node:assert/strict";
import type { RunView } from "../../src/dashboard/runs.ts";
import type { Param, TrialView } from "../../src/store/sweeps.ts";
import { layoutSweep, scaleColor, scalePosition, scaleText } from "../../src/dashboard/heatmap.ts";
import { layoutParallel } from "../../src/dashboard/parcoords.ts";
import { resumeCommand } from "../../src/dashboard/pages/run.tsx";
import {
  applyRunQuery,
  matchesSearch,
  parseRunQuery,
  parseSearch,
  queryString,
} from "../../src/dashboard/query.ts";
import { parseTags } from "../../src/dashboard/routes/actions.ts";
import { configValue, duration, statusText } from "../../src/dashboard/format.ts";
import { duration as clientDuration, smooth } from "../../src/dashboard/static/charts.js";

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
    worker: null,
    attempt: 1,
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

Deno.test("runs search: text anywhere, key=value and key>n over config values", () => {
  const runs = [
    run("a", { config: { lr: 0.001, negatives: 64, data: "Beauty.txt" }, tags: ["baseline"] }),
    run("bb", { config: { lr: 0.01, negatives: 512, data: "ml-1m.csv" }, note: "Try logQ" }),
    run("ccc", { config: { lr: 0.001, loss: "ce-" } }),
  ];
  const ids = (q: string) => runs.filter((r) => matchesSearch(r, parseSearch(q))).map((r) => r.id);
  assert.deepEqual(ids(""), ["a", "bb", "ccc"]);
  assert.deepEqual(ids("lr=0.001"), ["a", "ccc"]);
  // Keys in any case; values exactly: "ce" is not "ce-".
  assert.deepEqual(ids("LOSS=ce-"), ["ccc"]);
  assert.deepEqual(ids("loss=ce"), []);
  assert.deepEqual(ids("negatives>100"), ["bb"]);
  assert.deepEqual(ids("negatives<100 lr=0.001"), ["a"]);
  assert.deepEqual(ids("beauty"), ["a"]);
  assert.deepEqual(ids("baseline"), ["a"]);
  assert.deepEqual(ids("logq"), ["bb"]);
  // Not a number to compare with: searched as text.
  assert.deepEqual(ids("negatives>lots"), []);
  assert.deepEqual(parseSearch("a= =b x>1e400"), [
    { kind: "text", text: "a=" },
    { kind: "text", text: "=b" },
    { kind: "text", text: "x>1e400" },
  ]);
  const q = (params: Record<string, string>) => parseRunQuery((n) => params[n]);
  assert.deepEqual(
    applyRunQuery([run("x", { archivedAt: "2026-01-01" }), run("y", {})], q({})).map((r) => r.id),
    ["y"],
  );
  assert.equal(q({ show: "toString" }).show, "active");
});

Deno.test("tags: trimmed, deduplicated, bounded", () => {
  assert.deepEqual(parseTags(" a ,b,, a,  c  d "), ["a", "b", "c d"]);
  assert.deepEqual(parseTags(""), []);
  assert.match(
    parseTags(Array.from({ length: 21 }, (_, i) => `t${i}`).join()) as string,
    /20 tags/,
  );
  assert.match(parseTags("x".repeat(41)) as string, /at most 40 characters/);
});

Deno.test("resume command: the runs folder quoted for the shell when it needs to be", () => {
  assert.equal(resumeCommand("r1", "runs"), "deno task train --resume r1 --out runs");
  assert.equal(
    resumeCommand("r1", "/data/my runs/it's"),
    `deno task train --resume r1 --out '/data/my runs/it'\\''s'`,
  );
});

Deno.test("config values: byte counts in binary units; statuses as words", () => {
  assert.equal(configValue("memoryLimit", 104857600), "100 MiB");
  assert.equal(configValue("budgetBytes", 3 * 1024 ** 3), "3.00 GiB");
  assert.equal(configValue("negatives", 104857600), "104857600");
  assert.equal(configValue("memoryLimit", null), "—");
  assert.equal(statusText("exceeds_budget"), "exceeds budget");
  assert.equal(statusText("lost"), "lost");
});

Deno.test("colour scale: viridis from the lowest to the highest score", () => {
  assert.equal(scaleColor(0), "rgb(68, 1, 84)");
  assert.equal(scaleColor(1), "rgb(253, 231, 37)");
  assert.equal(scaleColor(0.5), "rgb(33, 145, 140)");
  assert.equal(scaleColor(-3), scaleColor(0));
  assert.equal(scalePosition(0.25, { min: 0.2, max: 0.3 }), 0.5);
  assert.equal(scalePosition(0.5, { min: 0.2, max: 0.3 }), 1);
  assert.equal(scalePosition(0.2, { min: 0.2, max: 0.2 }), 1);
  assert.equal(scaleText(0.1), "#ffffff");
  assert.equal(scaleText(0.9), "#1a1a1a");
});

Deno.test("parallel coordinates: an axis per grid axis, memory and NDCG; grey when unscored", () => {
  const grid = { negatives: [32, 128, 512], batchSize: [64, 256] };
  const trials = [
    trial({ negatives: 32, batchSize: 64 }, { validNdcg10: 0.2, peakBytes: 50 }),
    trial({ negatives: 512, batchSize: 256 }, { validNdcg10: 0.3, peakBytes: 100 }),
    trial({ negatives: 128, batchSize: 256 }, {
      status: "exceeds_budget",
      validNdcg10: null,
      peakBytes: null,
      estimateBytes: 400,
    }),
  ];
  const layout = layoutParallel(grid, trials, 200, { min: 0.2, max: 0.3 })!;
  assert.deepEqual(layout.axes.map((a) => a.title), [
    "negatives",
    "batchSize",
    "peak memory",
    "valid NDCG@10",
  ]);
  const [negatives, , memory, ndcg] = layout.axes;
  // Grid values evenly spaced, the first at the bottom.
  assert.deepEqual(negatives.ticks.map((t) => t.label), ["32", "128", "512"]);
  assert.equal(negatives.ticks[0].y, layout.bottom);
  assert.equal(negatives.ticks[2].y, layout.top);
  // Memory from zero up to the largest figure (the over-budget estimate).
  assert.deepEqual(memory.ticks.map((t) => t.label), ["0 B", "200 B", "400 B"]);
  assert.deepEqual(ndcg.ticks.map((t) => t.label), ["0.2000", "0.2500", "0.3000"]);
  assert.deepEqual(layout.budget, { x: memory.x, y: (layout.top + layout.bottom) / 2 });
  // Unscored lines first (drawn under), stopping before the NDCG axis.
  assert.deepEqual(layout.lines.map((l) => l.t), [null, 0, 1]);
  assert.equal(layout.lines[0].points.split(" ").length, 3);
  assert.equal(layout.lines[2].points.split(" ").length, 4);
  assert.match(layout.lines[0].title, /negatives=128, batchSize=256: exceeds budget/);
  assert.equal(layout.lines[2].points.split(" ").at(-1), `${ndcg.x},${layout.top}`);
  assert.equal(layoutParallel({}, trials, null, null), null);
});

Deno.test("the client's smoothing and durations match what the server shows", () => {
  assert.deepEqual(smooth([1, null, 3], 0), [1, null, 3]);
  // Debiased: the first point stays where it was; later ones lean on the past.
  const s = smooth([2, 4, 4], 0.5);
  assert.equal(s[0], 2);
  assert.ok(Math.abs(s[1]! - (0.5 * 1 + 0.5 * 4) / 0.75) < 1e-12);
  for (const seconds of [0.4, 9.96, 42.4, 95, 3599.6, 3 * 3600 + 125]) {
    assert.equal(clientDuration(seconds), duration(seconds));
  }
});
