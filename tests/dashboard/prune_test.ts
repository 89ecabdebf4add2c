/**
 * The pruning pages: a stored evaluation drawn as pattern × criterion heatmaps per mitigation with
 * the dense reference, the run page's link and redirect, refusals shown (escaped), the 400/404s;
 * the layout's colour direction for lower-is-better metrics.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/dashboard/app.tsx";
import { layoutPrune } from "../../src/dashboard/prune.ts";
import { type PruneEvaluation, PruneRecorder, type PruneResult } from "../../src/store/prune.ts";
import { RunStore } from "../../src/store/runs.ts";

const EVALUATION: PruneEvaluation = {
  id: "20261202-160000-abcdef",
  model: "run-a",
  runId: "run-a",
  backbone: "lm",
  label: "run run-a (best), validation of tinyshakespeare.txt",
  headline: "loss",
  higherIsBetter: false,
  dense: { loss: 1.5, ppl: Math.exp(1.5) },
  createdAt: "2026-12-02T16:00:00.000Z",
};

const row = (
  kind: PruneResult["kind"],
  pattern: string,
  criterion: string,
  mitigation: string,
  loss: number | null,
  refused: string | null = null,
): PruneResult => ({
  kind,
  pattern,
  criterion,
  mitigation,
  metrics: loss === null ? null : { loss, ppl: Math.exp(loss) },
  bits: kind === "weight" ? 16.9 : null,
  refused,
});

const RESULTS: PruneResult[] = [
  row("activation", "2:4", "magnitude", "none", 2.5),
  row("activation", "2:4", "clact", "none", 2.1),
  row("activation", "8:16", "magnitude", "none", 1.9),
  row("activation", "8:16", "clact", "none", 1.5),
  row("activation", "8:16", "clact", "variance", 1.7),
  row("activation", "16:24", "clact", "variance", null, `<script>alert("x")</script> width`),
  row("weight", "8:16", "wanda", "o1:16+vc", 2.0),
];

Deno.test("layout: a heatmap per kind and mitigation, lower-is-better coloured best-bright", () => {
  const l = layoutPrune(EVALUATION, RESULTS);
  assert.deepEqual(l.heatmaps.map((h) => `${h.kind} ${h.mitigation}`), [
    "activation none",
    "activation variance",
    "weight o1:16+vc",
  ]);
  const none = l.heatmaps[0];
  assert.deepEqual(none.patterns, ["2:4", "8:16"]);
  assert.deepEqual(none.criteria, ["magnitude", "clact"]);
  // 1.5 is the lowest loss (the dense one too): the bright end, the best, as good as dense.
  const good = none.rows[1][1];
  assert.equal(good.t, 1);
  assert.ok(good.best && good.atDense);
  assert.equal(none.rows[0][0].t, 0, "2.5 is the worst loss of the evaluation");
  assert.equal(l.dense, 1.5);
  assert.deepEqual(l.range, { min: 1.5, max: 2.5 });
});

Deno.test("routes: the evaluation page, the run's link and redirect, the refusals", async () => {
  const dir = await Deno.makeTempDir();
  const store = await RunStore.open(dir);
  await store.createRun({
    id: "run-a",
    name: "lm run",
    dataset: "tinyshakespeare.txt",
    config: {},
  });
  await store.createRun({ id: "run-b", name: "never pruned", dataset: "x", config: {} });
  const recorder = await PruneRecorder.start(store, EVALUATION);
  for (const r of RESULTS) await recorder.add(r);
  const abort = new AbortController();
  const app = createApp({ runsDir: dir, signal: abort.signal });
  try {
    const res = await app.request(`/prune/${EVALUATION.id}`);
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /activation pruning · mitigation none/);
    assert.match(html, /weight pruning · additions o1:16\+vc/);
    assert.match(html, /dense model: loss <strong>1\.5000<\/strong> \(lower is better/);
    assert.match(html, /16\.900 bits\/el/);
    assert.match(html, /as good as dense/);
    assert.ok(!html.includes("<script>alert"), "a refusal's text is escaped");
    assert.match(html, /refused/);
    assert.match(html, /href="\/runs\/run-a"/);

    const run = await (await app.request("/runs/run-a")).text();
    assert.match(run, new RegExp(`href="/prune/${EVALUATION.id}">pruning heatmaps`));
    assert.ok(!(await (await app.request("/runs/run-b")).text()).includes("pruning heatmaps"));

    const redirect = await app.request("/runs/run-a/prune");
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get("location"), `/prune/${EVALUATION.id}`);
    assert.equal((await app.request("/runs/run-b/prune")).status, 404);
    assert.equal((await app.request("/runs/nope/prune")).status, 404);
    assert.equal((await app.request("/prune/20261202-000000-000000")).status, 404);
    assert.equal((await app.request("/prune/..%2Fx")).status, 400);
  } finally {
    abort.abort();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("routes: a store without pruning tables answers 404, not an error", async () => {
  const dir = await Deno.makeTempDir();
  const store = await RunStore.open(dir);
  await store.createRun({ id: "run-a", name: "lm run", dataset: "x", config: {} });
  const abort = new AbortController();
  const app = createApp({ runsDir: dir, signal: abort.signal });
  try {
    assert.equal((await app.request("/runs/run-a")).status, 200);
    assert.equal((await app.request("/runs/run-a/prune")).status, 404);
    assert.equal((await app.request(`/prune/${EVALUATION.id}`)).status, 404);
  } finally {
    abort.abort();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
