/**
 * Learnable mitigations: fitting η (and γ) with Adam lowers the layer's MSE against the dense
 * layer on its calibration batches, the fitted layer on the sparse kernels matches the float64
 * host reference, the fit differentiates through the kept values only (finite differences of the
 * MSE at a fixed mask), and no gradient reaches the model's weight.
 */
import assert from "node:assert/strict";
import {
  activationProductHost,
  ActivationPruner,
  type ActivationSpec,
} from "../../src/prune/activation.ts";
import { ActivationScorer } from "../../src/prune/criteria.ts";
import { fitLearnable, type FitOptions, keptMask } from "../../src/prune/learnable.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { Adam } from "../../src/train/optim.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

const [T, IN, OUT] = [6, 32, 7];
const W = randomArray(OUT * IN, 21);
/** Inputs with a common offset per feature: what a shift can learn back. */
const OFFSET = randomArray(IN, 22, 0.5, 1.5);
const batch = (seed: number) =>
  Float32Array.from(randomArray(T * IN, seed, -0.5, 0.5), (v, i) => v + OFFSET[i % IN]);

const FIT: FitOptions = {
  epochs: 60,
  makeOptimizer: (params: Tensor[]) => new Adam(params, { lr: 0.02 }),
};

for (const mitigation of ["learn-shift", "learn-scale-shift"] as const) {
  for (const sparsity of [{ pattern: { n: 8, m: 16 } }, { unstructured: 0.5 }]) {
    gpuTest(`${mitigation} ${JSON.stringify(sparsity)}: the fit lowers the MSE`, async (e) => {
      await e.tidyAsync(async () => {
        const spec: ActivationSpec = { sparsity, criterion: "weight-aware", mitigation };
        const weight = e.parameter(W, [OUT, IN], "W");
        const p = await ActivationPruner.create(weight, spec, mitigation);
        const batches = [batch(23), batch(24)];
        p.startCalibration();
        for (const b of batches) p.product(e.tensor(b, [T, IN]), weight);
        const c = await p.finishCalibration(FIT);
        assert.ok(c.mse!.after < 0.5 * c.mse!.before, `${c.mse!.before} → ${c.mse!.after}`);
        assert.equal(c.learned!.scale === null, mitigation === "learn-shift");
        assert.equal(weight.grad, null, "the model's weight got a gradient");
        // The fitted layer on the sparse kernels against the float64 reference, on a new batch.
        const x = batch(25);
        const y = await p.product(e.tensor(x, [T, IN]), weight).read();
        assertClose(y, activationProductHost(x, T, IN, W, OUT, spec, c), mitigation, 1e-4, 1e-5);
        p.dispose();
        weight.dispose();
      });
    });
  }
}

gpuTest("the fit's gradient is the MSE's at a fixed mask (finite differences)", async (e) => {
  await e.tidyAsync(async () => {
    const w = e.tensor(W, [OUT, IN]);
    const x = batch(26);
    const scorer = await ActivationScorer.create("magnitude", w);
    const keep = { pattern: { n: 8, m: 16 } };
    const mask = await keptMask(e.tensor(x, [T, IN]), keep, scorer).read();
    const dense = new Float64Array(T * OUT);
    for (let i = 0; i < dense.length; i++) {
      const [t, o] = [Math.floor(i / OUT), i % OUT];
      for (let j = 0; j < IN; j++) dense[i] += x[t * IN + j] * W[o * IN + j];
    }
    // MSE(η) in float64 with the mask of η = 0 held fixed.
    const mse = (eta: Float64Array) => {
      let s = 0;
      for (let t = 0; t < T; t++) {
        for (let o = 0; o < OUT; o++) {
          let y = 0;
          for (let j = 0; j < IN; j++) {
            const k = t * IN + j;
            y += ((x[k] - eta[j]) * mask[k] + eta[j]) * W[o * IN + j];
          }
          s += (y - dense[t * OUT + o]) ** 2;
        }
      }
      return s / (T * OUT);
    };
    // Adam's first step moves every coordinate by lr against the sign of its gradient.
    const lr = 1e-3;
    const adam = { epochs: 1, makeOptimizer: (ps: Tensor[]) => new Adam(ps, { lr }) };
    const r = await fitLearnable([e.tensor(x, [T, IN])], w, keep, scorer, false, adam);
    const h = 1e-4;
    for (let j = 0; j < IN; j++) {
      const up = new Float64Array(IN);
      const down = new Float64Array(IN);
      up[j] = h;
      down[j] = -h;
      const g = (mse(up) - mse(down)) / (2 * h);
      if (Math.abs(g) < 1e-3) continue;
      assertClose([r.learned.shift[j]], [-lr * Math.sign(g)], `η[${j}]`, 1e-3, 1e-6);
    }
    scorer.dispose();
  });
});
