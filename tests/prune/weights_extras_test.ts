/**
 * The 8:16 paper's additions to weight pruning against float64 references: salient outliers in
 * their own N:M tensor beside the main pattern, SmoothQuant-like equalisation, the output's
 * variance correction (statistics and corrected product), storage with both metadata, and the
 * walker with every addition at once.
 */
import assert from "node:assert/strict";
import { Llama, type LlamaConfig } from "../../src/models/llama.ts";
import { linearLayers, smoothScalesHost } from "../../src/prune/activation.ts";
import { columnNormsHost } from "../../src/prune/criteria.ts";
import { OutputMomentsRecorder } from "../../src/prune/weight_calibration.ts";
import {
  applyWeightPruning,
  correctionFromMoments,
  pruneWeightHost,
  pruneWeightParts,
  pruneWeightPartsHost,
  removeWeightPruning,
  scoreFactorHost,
  varianceCorrectionHost,
  WeightPruned,
  type WeightSpec,
  weightSpecName,
} from "../../src/prune/weights.ts";
import { matmulTransposedHost } from "../../src/sparse/host.ts";
import { decodeNm } from "../../src/sparse/prune.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { assertClose, gpuTest, randomArray, randomInts } from "../support/check.ts";

const [T, IN, OUT] = [5, 32, 6];
const X = randomArray(T * IN, 31);
/** A few large weights: the outliers the salient pattern should keep. */
const W = Float32Array.from(randomArray(OUT * IN, 32), (v, i) => (i % 13 === 0 ? 8 * v : v));
const STATS = {
  norms: columnNormsHost(X, T, IN),
  absMax: Array.from(
    { length: IN },
    (_, j) => Math.max(...[0, 1, 2, 3, 4].map((t) => Math.abs(X[t * IN + j]))),
  ),
};

function upload(e: Engine, spec: WeightSpec) {
  const f = scoreFactorHost(W, OUT, IN, spec, STATS);
  const factor = f ? e.tensor(Float32Array.from(f), [IN]) : null;
  return pruneWeightParts(e.tensor(W, [OUT, IN]), spec, factor);
}

const SPECS: WeightSpec[] = [
  { sparsity: { pattern: { n: 8, m: 16 } }, criterion: "magnitude", outliers: { n: 1, m: 16 } },
  { sparsity: { pattern: { n: 2, m: 4 } }, criterion: "wanda", outliers: { n: 2, m: 32 } },
  { sparsity: { unstructured: 0.5 }, criterion: "magnitude", outliers: { n: 1, m: 8 } },
  { sparsity: { pattern: { n: 8, m: 16 } }, criterion: "magnitude", equalize: true },
  {
    sparsity: { pattern: { n: 16, m: 32 } },
    criterion: "magnitude",
    equalize: true,
    outliers: { n: 1, m: 16 },
  },
];

gpuTest("outliers and equalisation: both parts match the host", async (e) => {
  for (const spec of SPECS) {
    const what = weightSpecName(spec);
    await e.tidyAsync(async () => {
      const parts = upload(e, spec);
      const want = pruneWeightPartsHost(W, OUT, IN, spec, STATS);
      assert.deepEqual(Array.from(await decodeNm(parts.main).read()), Array.from(want.main), what);
      if (spec.outliers) {
        const o = await decodeNm(parts.outliers!).read();
        assert.deepEqual(Array.from(o), Array.from(want.outliers!), `${what} outliers`);
        // Disjoint: no weight is kept twice, and the outliers are the largest of their groups.
        want.main.forEach((v, i) => assert.ok(v === 0 || want.outliers![i] === 0));
      }
      const t = new WeightPruned(parts);
      const y = t.product(e.tensor(X, [T, IN]), e.tensor(W, [OUT, IN]));
      const wp = pruneWeightHost(W, OUT, IN, spec, STATS.norms, STATS.absMax);
      assertClose(await y.read(), matmulTransposedHost(X, wp, T, OUT, IN), what, 1e-4, 1e-5);
      t.dispose();
    });
  }
});

Deno.test("outliers keep the largest weight of each group; equalisation scores |W|·s", () => {
  const w = [9, 1, 2, 3, 0.5, 4, 0.1, 0.2];
  const spec: WeightSpec = {
    sparsity: { pattern: { n: 2, m: 4 } },
    criterion: "magnitude",
    outliers: { n: 1, m: 4 },
  };
  const p = pruneWeightPartsHost(w, 1, 8, spec);
  assert.deepEqual(Array.from(p.outliers!), [9, 0, 0, 0, 0, 4, 0, 0]);
  assert.deepEqual(Array.from(p.main), [0, 0, 2, 3, 0.5, 0, 0, 0.2]);
  const s = smoothScalesHost(STATS.absMax, W, OUT, IN);
  assert.deepEqual(
    Array.from(scoreFactorHost(W, OUT, IN, { ...spec, equalize: true }, STATS)!),
    Array.from(s),
  );
  // Wanda's score is invariant to the equalisation: its factor stays ‖X_j‖.
  const wanda: WeightSpec = { sparsity: spec.sparsity, criterion: "wanda", equalize: true };
  assert.deepEqual(
    Array.from(scoreFactorHost(W, OUT, IN, wanda, STATS)!),
    Array.from(STATS.norms),
  );
  assert.equal(
    weightSpecName({ ...wanda, outliers: { n: 1, m: 16 }, correctVariance: true }),
    "wanda+o1:16+eq+vc",
  );
});

gpuTest("variance correction: statistics and the corrected product match the host", async (e) => {
  const spec: WeightSpec = { sparsity: { pattern: { n: 4, m: 8 } }, criterion: "magnitude" };
  const batches = [X, randomArray(3 * IN, 33)];
  const tokens = T + 3;
  await e.tidyAsync(async () => {
    const w = e.tensor(W, [OUT, IN]);
    const t = new WeightPruned(upload(e, spec));
    const rec = new OutputMomentsRecorder(t);
    for (const b of batches) rec.product(e.tensor(b, [b.length / IN, IN]), w);
    const m = await rec.moments();
    const all = Float32Array.from([...batches[0], ...batches[1]]);
    const wp = pruneWeightHost(W, OUT, IN, spec);
    const dense = matmulTransposedHost(all, W, tokens, OUT, IN);
    const pruned = matmulTransposedHost(all, wp, tokens, OUT, IN);
    const want = varianceCorrectionHost(dense, pruned, tokens, OUT);
    const { scale, shift } = correctionFromMoments(m.dense, m.pruned, m.tokens);
    assertClose(scale, want.scale, "a", 1e-4, 1e-5);
    assertClose(shift, want.shift, "b", 1e-4, 1e-5);
    assert.ok(want.scale.some((a) => Math.abs(a - 1) > 1e-3), "the correction does something");
    await t.setCorrection(scale, shift);
    const y = await t.product(e.tensor(all, [tokens, IN]), w).read();
    const corrected = pruned.map((v, i) => want.scale[i % OUT] * v + want.shift[i % OUT]);
    assertClose(y, corrected, "a ⊙ y + b", 1e-4, 1e-4);
    // On its calibration tokens the corrected output has the dense mean and variance per output.
    const again = varianceCorrectionHost(dense, corrected, tokens, OUT);
    assertClose(again.scale, new Float64Array(OUT).fill(1), "variance matched", 1e-9, 1e-9);
    t.dispose();
  });
});

const LM: LlamaConfig = {
  vocab: 19,
  dim: 16,
  hidden: 32,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  maxLen: 8,
  normEps: 1e-5,
  ropeTheta: 500,
  tied: false,
};

gpuTest("the walker with outliers, equalisation and variance correction at once", async (e) => {
  const model = new Llama(e, LM, 4);
  const ids = e.tensor(randomInts(2 * 6, 5, 0, LM.vocab), [2, 6], "i32");
  const run = () => e.tidyAsync(() => model.forward(ids).read());
  const dense = await run();
  const config = {
    sparsity: { pattern: { n: 8, m: 16 } },
    criterion: "magnitude" as const,
    outliers: { n: 1, m: 16 },
    equalize: true,
    correctVariance: true,
    layers: ["q", "k", "v", "o", "gate", "up", "down"] as const,
  };
  await assert.rejects(applyWeightPruning(model, config), /needs calibration batches/);
  let calls = 0;
  const pruned = await applyWeightPruning(model, config, async () => {
    calls++;
    await run();
  });
  assert.equal(calls, 2, "one pass for the input statistics, one for the output moments");
  const q = pruned.get("model.layers.0.self_attn.q_proj")!;
  // 8 of 16 plus 1 of 16: metadata 7/8 + 4/16 bits, values (8 + 1)/16 · 32 bits per element.
  assert.equal(q.storage().metadata, 0.875 + 0.25);
  assert.equal(q.storage().values, 18);
  assert.notDeepEqual(await run(), dense);
  removeWeightPruning(model, pruned);
  assert.deepEqual(await run(), dense);
  assert.ok(linearLayers(model).every((l) => l.layer.inputTransform === null));
  model.dispose();
});
