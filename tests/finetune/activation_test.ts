/**
 * Trainable activation pruning: its forward equals src/prune's ActivationPruner (no mitigation)
 * and its gradients match finite differences of the masked product with the mask held fixed.
 */
import { TrainableActivationPruning } from "../../src/finetune/activation.ts";
import { activationProductHost, ActivationPruner } from "../../src/prune/activation.ts";
import type { Criterion } from "../../src/prune/criteria.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";

const [T, IN, OUT] = [5, 32, 3];
const X = randomArray(T * IN, 1);
const W = randomArray(OUT * IN, 2);

gpuTest("the masked product equals the pruner's for 8:16, 2:4 and u50", async (e) => {
  const cases = [
    [{ pattern: { n: 8, m: 16 } }, "magnitude"],
    [{ pattern: { n: 2, m: 4 } }, "weight-aware"],
    [{ unstructured: 0.5 }, "magnitude"],
  ] as const;
  for (const [sparsity, criterion] of cases) {
    const spec = { sparsity, criterion: criterion as Criterion, mitigation: "none" as const };
    await e.tidyAsync(async () => {
      const w = e.tensor(W, [OUT, IN]);
      const x = e.tensor(X, [1, T, IN]);
      const t = await TrainableActivationPruning.create(w, sparsity, spec.criterion, "l");
      const p = await ActivationPruner.create(w, spec, "l");
      const got = await t.product(x, w).read();
      assertClose(got, await p.product(x, w).read(), JSON.stringify(spec));
      assertClose(got, activationProductHost(X, T, IN, W, OUT, spec), `${criterion} host`);
      t.dispose();
      p.dispose();
    });
  }
});

gpuTest("gradients of x and W through the fixed mask match finite differences", async (e) => {
  const sparsity = { pattern: { n: 8, m: 16 } };
  const t = await e.tidyAsync(() =>
    TrainableActivationPruning.create(e.tensor(W, [OUT, IN]), sparsity, "magnitude", "l")
  );
  // The mask of X, kept fixed for the differences (a tiny step never changes the top 8 of 16).
  const mask = await e.tidyAsync(() => t.mask(e.tensor(X, [T, IN])).read());
  await checkOp(e, {
    name: "masked product",
    inputs: [{ data: X, shape: [T, IN], grad: true }, { data: W, shape: [OUT, IN], grad: true }],
    gpu: ([x, w]) => t.product(x, w),
    ref: ([x, w]) => {
      const y = new Float64Array(T * OUT);
      for (let i = 0; i < T; i++) {
        for (let o = 0; o < OUT; o++) {
          for (let j = 0; j < IN; j++) {
            y[i * OUT + o] += x[i * IN + j] * mask[i * IN + j] * w[o * IN + j];
          }
        }
      }
      return y;
    },
    eps: 1e-3,
  });
  t.dispose();
});
