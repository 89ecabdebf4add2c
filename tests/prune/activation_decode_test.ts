/**
 * One token through an activation pruner (decoding) runs the sparse GEMV against a transposed copy
 * of the weight when out is a multiple of 4: it must give the multi-token path's rows and the
 * float64 reference for every mitigation, fall back on other widths, and follow a weight the layer
 * computes per call (Linear.weightTransform) instead of serving the copy.
 */
import assert from "node:assert/strict";
import { Linear } from "../../src/nn/linear.ts";
import {
  activationProductHost,
  ActivationPruner,
  type ActivationSpec,
  type Calibration,
  MITIGATIONS,
  type Sparsity,
} from "../../src/prune/activation.ts";
import type { FitOptions } from "../../src/prune/learnable.ts";
import { Adam } from "../../src/train/optim.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

const T = 3;
const FIT: FitOptions = {
  epochs: 3,
  makeOptimizer: (params: Tensor[]) => new Adam(params, { lr: 0.02 }),
};

/** Whether the pruner holds a transposed copy, i.e. took the one-token fast path. */
const hasCopy = (p: ActivationPruner) =>
  (p as unknown as { transposed: unknown }).transposed !== null;

// in = 48 groups by 16; in = 20 only by 4 or unstructured. out = 12 takes the fast path, 6 not.
const CASES: { inF: number; out: number; sparsity: Sparsity }[] = [
  { inF: 48, out: 12, sparsity: { pattern: { n: 8, m: 16 } } },
  { inF: 48, out: 6, sparsity: { pattern: { n: 8, m: 16 } } },
  { inF: 20, out: 4, sparsity: { pattern: { n: 2, m: 4 } } },
  { inF: 20, out: 8, sparsity: { unstructured: 0.5 } },
];

for (const { inF, out, sparsity } of CASES) {
  gpuTest(`one token, ${inF}→${out} ${JSON.stringify(sparsity)}: every mitigation`, async (e) => {
    const W = randomArray(out * inF, 31);
    const calib = randomArray(T * inF, 32);
    const X = randomArray(T * inF, 33);
    for (const mitigation of MITIGATIONS) {
      const spec: ActivationSpec = { sparsity, criterion: "weight-aware", mitigation };
      const what = `${mitigation} ${inF}→${out}`;
      await e.tidyAsync(async () => {
        const w = e.parameter(W, [out, inF], "W");
        const p = await ActivationPruner.create(w, spec, what);
        let calibration: Calibration = {};
        if (mitigation !== "none" && mitigation !== "variance" && mitigation !== "median-token") {
          p.startCalibration();
          p.product(e.tensor(calib, [T, inF]), w);
          calibration = await p.finishCalibration(FIT);
        }
        const rows = await p.product(e.tensor(X, [T, inF]), w).read();
        assert.ok(!hasCopy(p), `${what}: several tokens made a copy`);
        for (let t = 0; t < T; t++) {
          const x = X.slice(t * inF, (t + 1) * inF);
          const y = await p.product(e.tensor(x, [1, 1, inF]), w).read();
          assertClose(y, rows.slice(t * out, (t + 1) * out), `${what} token ${t}`, 1e-5, 1e-6);
          const want = activationProductHost(x, 1, inF, W, out, spec, calibration);
          assertClose(y, want, `${what} token ${t} vs host`, 1e-4, 1e-5);
        }
        assert.equal(hasCopy(p), out % 4 === 0, `${what}: fast path`);
        p.dispose();
      });
    }
  });
}

gpuTest("one token follows a weight computed per call, then the layer's own again", async (e) => {
  const [inF, out] = [32, 8];
  const spec: ActivationSpec = {
    sparsity: { pattern: { n: 8, m: 16 } },
    criterion: "magnitude",
    mitigation: "none",
  };
  const x = randomArray(inF, 41);
  const W2 = randomArray(out * inF, 42);
  await e.tidyAsync(async () => {
    let seed = 43;
    const layer = new Linear(e, inF, out, () => (seed = (seed * 16807) % 2147483647) / 2147483647, {
      bias: false,
    });
    const W = await layer.weight.read();
    const p = await ActivationPruner.create(layer.weight, spec, "layer");
    layer.inputTransform = p;
    const one = () => layer.forward(e.tensor(x, [1, inF])).read();
    const host = (w: ArrayLike<number>) => activationProductHost(x, 1, inF, w, out, spec);
    assertClose(await one(), host(W), "own weight", 1e-4, 1e-5);
    assert.ok(hasCopy(p));
    const w2 = e.tensor(W2, [out, inF]);
    layer.weightTransform = { weight: () => w2 };
    assertClose(await one(), host(W2), "computed weight", 1e-4, 1e-5);
    layer.weightTransform = null;
    assertClose(await one(), host(W), "own weight again", 1e-4, 1e-5);
    p.dispose();
  });
});
