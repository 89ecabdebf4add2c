/**
 * Salient column selection (methods.md §4): the GPU column statistics of calibration inputs
 * against the float64 reference on awkward shapes, the top-k choice from the max and general
 * scores, the noise scale Δ_r/2 and the α grid search against brute force.
 */
import assert from "node:assert/strict";
import {
  ALPHA_GRID,
  columnStatsHost,
  ColumnStatsRecorder,
  halfDeltas,
  quantisationErrorHost,
  rowRanges,
  salientCount,
  salientScores,
  topColumns,
} from "../../src/finetune/salient.ts";
import { matmulTransposedHost } from "../../src/sparse/host.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

gpuTest("column statistics over batches match the host on awkward shapes", async (e) => {
  for (const [batches, tokens, inF, rho] of [[2, 37, 13, 2], [1, 1, 1, 1.5], [3, 5, 70, 3]]) {
    const what = `${batches}×[${tokens}, ${inF}] ρ=${rho}`;
    const w = randomArray(3 * inF, 5);
    const rec = new ColumnStatsRecorder(rho, null);
    const all: number[] = [];
    for (let b = 0; b < batches; b++) {
      const x = randomArray(tokens * inF, 10 + b, -3, 3);
      all.push(...x);
      await e.tidyAsync(async () => {
        const y = rec.product(e.tensor(x, [1, tokens, inF]), e.tensor(w, [3, inF]));
        // The recorder multiplies densely while it records.
        assertClose(await y.read(), matmulTransposedHost(x, w, tokens, 3, inF), what);
      });
    }
    const got = await rec.result();
    const want = columnStatsHost(all, batches * tokens, inF, rho);
    assertClose(got.maxAbs, want.maxAbs, `${what} max`, 0, 0);
    assertClose(got.powerSum, want.powerSum, `${what} Σ|x|^ρ`, 1e-5, 1e-6);
  }
});

Deno.test("the max score picks the columns of largest |x|, ties to the lower column", () => {
  const stats = columnStatsHost([1, -5, 2, 5, 0, 0, 3, -1], 2, 4, 2);
  // max|x| per column: 1, 5, 3, 5.
  assert.deepEqual(Array.from(topColumns(salientScores("max", stats), 2)), [1, 3]);
  assert.deepEqual(Array.from(topColumns(salientScores("max", stats), 3)), [1, 2, 3]);
  assert.throws(() => topColumns([1, 2], 3), /cannot choose 3 salient columns of 2/);
});

Deno.test("the general score is ‖D col‖_τ · ‖X col‖_ρ^γ", () => {
  const x = randomArray(6 * 5, 1);
  const d = randomArray(3 * 5, 2);
  const stats = columnStatsHost(x, 6, 5, 2);
  const s = salientScores("general", stats, { d, out: 3 }, { tau: 1, gamma: 2 });
  for (let j = 0; j < 5; j++) {
    let dn = 0;
    let xn = 0;
    for (let r = 0; r < 3; r++) dn += Math.abs(d[r * 5 + j]);
    for (let t = 0; t < 6; t++) xn += x[t * 5 + j] ** 2;
    assert.ok(Math.abs(s[j] - dn * xn) < 1e-9 * Math.max(1, dn * xn), `column ${j}`);
  }
  assert.throws(() => salientScores("general", stats), /needs a perturbation D/);
});

Deno.test("k is a count capped at the width or a fraction of it", () => {
  assert.equal(salientCount(128, 64), 64);
  assert.equal(salientCount(8, 64), 8);
  assert.equal(salientCount(0.125, 172), 22);
  assert.equal(salientCount(0.001, 64), 1);
  assert.throws(() => salientCount(2.5, 64), /whole count or a fraction/);
});

Deno.test("Δ_r/2 = α_r / (2(2^(b−1)−1)) with α_r = max|W_r|; the grid errs least", () => {
  const [out, inF, bits] = [3, 9, 4];
  const w = randomArray(out * inF, 7);
  const alpha = rowRanges(w, out, inF, bits);
  for (let r = 0; r < out; r++) {
    const max = Math.max(...Array.from(w.slice(r * inF, (r + 1) * inF), Math.abs));
    assert.equal(alpha[r], max);
    assert.ok(Math.abs(halfDeltas(alpha, bits)[r] - max / 14) < 1e-15);
  }
  const grid = rowRanges(w, out, inF, bits, true);
  const errOf = (a: number, r: number) => {
    const alphas = new Float64Array(out).fill(a);
    const d = quantisationErrorHost(w, out, inF, alphas, bits);
    return d.slice(r * inF, (r + 1) * inF).reduce((s, v) => s + v * v, 0);
  };
  for (let r = 0; r < out; r++) {
    const best = Math.min(...ALPHA_GRID.map((f) => errOf(f * alpha[r], r)));
    assert.ok(errOf(grid[r], r) <= best + 1e-15, `row ${r}`);
    assert.ok(errOf(grid[r], r) <= errOf(alpha[r], r));
  }
});
