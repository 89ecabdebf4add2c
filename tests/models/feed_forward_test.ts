/**
 * The Llama feed-forward's stacked gate/up product (taken while training) gives the output and
 * gradients of the two separate products (taken when a walker transforms a layer).
 */
import "../../src/tensor/ops/mod.ts";
import { GatedFeedForward } from "../../src/nn/decoder.ts";
import { sum } from "../../src/tensor/ops/reduce.ts";
import { mul } from "../../src/tensor/ops/elementwise.ts";
import { seededRandom } from "../../src/tensor/random.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

/** The output and the gradients of x and of the three weights under L = Σ out ⊙ w. */
async function outputAndGradients(e: Engine, ffn: GatedFeedForward, rows: number, dim: number) {
  const x = e.tensor(randomArray(rows * dim, 3, -2, 2), [rows, dim]);
  x.requiresGrad = true;
  const w = e.tensor(randomArray(rows * dim, 4), [rows, dim]);
  e.startTape();
  const out = ffn.forward(x);
  e.backward(sum(mul(out, w)));
  const weights = [ffn.gate.weight, ffn.up.weight, ffn.down.weight];
  const read = [await out.read(), await x.grad!.read()];
  for (const t of weights) read.push(await t.grad!.read());
  for (const t of [x, w, out]) t.dispose();
  for (const t of weights) t.zeroGrad();
  return read;
}

// hidden 7: the packed kernel's scalar entries; 172 (the default model's): its vec4 ones.
for (const [dim, hidden, rows] of [[5, 7, 3], [8, 172, 33], [3, 4, 1]]) {
  gpuTest(
    `stacked gate/up products (dim ${dim}, hidden ${hidden}) equal separate ones`,
    async (e) => {
      const ffn = new GatedFeedForward(e, dim, hidden, seededRandom(7), "mlp");
      const stacked = await outputAndGradients(e, ffn, rows, dim);
      // An identity weight transform keeps the gate's product its own.
      ffn.gate.weightTransform = { weight: (t) => t };
      const separate = await outputAndGradients(e, ffn, rows, dim);
      const names = ["output", "dx", "d gate", "d up", "d down"];
      stacked.forEach((got, i) => assertClose(got, separate[i], names[i], 1e-5, 1e-6));
      ffn.dispose();
    },
  );
}
