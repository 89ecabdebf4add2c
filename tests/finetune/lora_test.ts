/**
 * LoRA: the layer's output with the adapter equals the output of its merged dense weight, its
 * rank matches a parameter budget, and only A and B train. Full fine-tuning trains everything.
 */
import assert from "node:assert/strict";
import { adapt, elementsOf } from "../../src/finetune/adapt.ts";
import { LoraLayer, loraRankFor } from "../../src/finetune/lora.ts";
import { Linear } from "../../src/nn/linear.ts";
import { mul } from "../../src/tensor/ops/elementwise.ts";
import { sum } from "../../src/tensor/ops/reduce.ts";
import { seededRandom } from "../../src/tensor/random.ts";
import { Adam } from "../../src/train/optim.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

Deno.test("the rank matches out·k trainable parameters as nearly as a whole rank can", () => {
  assert.equal(loraRankFor(64, 64, 64 * 8), 4);
  assert.equal(loraRankFor(172, 64, 172 * 8), 6);
  assert.equal(loraRankFor(3, 5, 1), 1);
  assert.equal(loraRankFor(3, 5, 1000), 3);
});

gpuTest("a trained LoRA layer equals its merged dense weight", async (e) => {
  const [tokens, inF, out] = [5, 13, 7];
  const layer = new Linear(e, inF, out, seededRandom(2));
  const clock = { training: true, step: 1 };
  const columns = Int32Array.from({ length: 4 }, (_, i) => i);
  const a = await adapt(layer, "lora", [{ name: "l", layer, columns, halfDelta: null }], {
    seed: 3,
    clock,
  });
  const rank = a.ranks.get("l")!;
  assert.equal(rank, loraRankFor(out, inF, out * 4));
  assert.equal(elementsOf(a.trainable), rank * (inF + out));
  assert.ok(layer.weightTransform instanceof LoraLayer);
  // One step, so that B is no longer zero and B·A matters.
  const adam = new Adam(a.trainable, { lr: 0.05 });
  const x = randomArray(tokens * inF, 4);
  const r = randomArray(tokens * out, 5);
  const forward = () => layer.forward(e.tensor(x, [tokens, inF]));
  e.tidy(() => {
    e.startTape();
    e.backward(sum(mul(forward(), e.tensor(r, [tokens, out]))));
    assert.equal(layer.bias!.grad, null, "the frozen bias gets no gradient");
    adam.step();
    adam.zeroGrad();
  });
  assert.ok((await a.trainable[1].read()).some((v) => v !== 0), "B moved off zero");
  const adapted = await e.tidyAsync(() => forward().read());
  await a.merge();
  assert.equal(layer.weightTransform, null);
  const merged = await e.tidyAsync(() => forward().read());
  assertClose(merged, adapted, "merged against adapted", 1e-5, 1e-6);
  adam.dispose();
  layer.dispose();
});

gpuTest("full fine-tuning trains every parameter and adds no transform", async (e) => {
  const layer = new Linear(e, 4, 3, seededRandom(6));
  const a = await adapt(layer, "full", [], { seed: 0, clock: { training: true, step: 1 } });
  assert.deepEqual(a.trainable, layer.parameters());
  assert.equal(layer.weightTransform, null);
  layer.dispose();
});
