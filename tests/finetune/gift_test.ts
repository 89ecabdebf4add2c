/**
 * GIFT-SW's effective weight: forward against the float64 reference (with and without noise),
 * backward against finite differences, the noise's statistics per row (mean 0, standard deviation
 * Δ_r/2) and its absence at evaluation, and a training step that changes the salient columns only.
 */
import assert from "node:assert/strict";
import { adapt } from "../../src/finetune/adapt.ts";
import {
  composeSalient,
  composeSalientHost,
  gaussianHost,
  salientIndex,
} from "../../src/finetune/compose.ts";
import { GiftSwLayer, type NoiseClock } from "../../src/finetune/gift.ts";
import { Linear } from "../../src/nn/linear.ts";
import { mul } from "../../src/tensor/ops/elementwise.ts";
import { sum } from "../../src/tensor/ops/reduce.ts";
import { seededRandom } from "../../src/tensor/random.ts";
import { Adam } from "../../src/train/optim.ts";
import { assertClose, checkOp, EXACT, gpuTest, randomArray } from "../support/check.ts";

gpuTest("compose matches the host and its backward finite differences", async (e) => {
  for (const [out, inF, cols] of [[5, 7, [0, 3, 6]], [1, 1, [0]], [3, 70, [69]]] as const) {
    const columns = Int32Array.from(cols);
    const k = columns.length;
    const index = salientIndex(e, columns, inF, "test");
    const w = randomArray(out * inF, 1);
    const s = randomArray(out * k, 2);
    await checkOp(e, {
      name: `compose [${out}, ${inF}] k=${k}`,
      inputs: [{ data: w, shape: [out, inF] }, { data: s, shape: [out, k], grad: true }],
      gpu: ([tw, ts]) => composeSalient(tw, ts, index, null),
      ref: ([hw, hs]) => composeSalientHost(hw, out, inF, hs, columns, null),
      ...EXACT,
    });
    const halfDelta = Float64Array.from({ length: out }, (_, r) => 0.01 * (r + 1));
    const noise = { seed: 11, step: 3, halfDelta };
    await e.tidyAsync(async () => {
      const hd = e.tensor(Float32Array.from(halfDelta), [out]);
      const got = composeSalient(e.tensor(w, [out, inF]), e.tensor(s, [out, k]), index, {
        ...noise,
        halfDelta: hd,
      });
      const want = composeSalientHost(w, out, inF, s, columns, noise);
      assertClose(await got.read(), want, "compose with noise", 1e-5, 1e-6);
    });
    index.slot.dispose();
    index.list.dispose();
  }
});

gpuTest("noise: mean 0 and std Δ_r/2 per row, fresh each step, none at evaluation", async (e) => {
  const [out, inF] = [4, 2049];
  const layer = new Linear(e, inF, out, seededRandom(3), { bias: false });
  const w = await layer.weight.read();
  const halfDelta = Float64Array.from([0.5, 0.01, 0.2, 1e-3]);
  const clock: NoiseClock = { training: true, step: 1 };
  const gift = await GiftSwLayer.create("layer", layer, {
    columns: Int32Array.from([0]),
    halfDelta,
    seed: 5,
    clock,
  });
  const noiseAt = async () => {
    const eff = await e.tidyAsync(() => gift.weight(layer.weight).read());
    return Float64Array.from(eff, (v, i) => v - w[i]);
  };
  const first = await noiseAt();
  for (let r = 0; r < out; r++) {
    const row = first.slice(r * inF + 1, (r + 1) * inF);
    const mean = row.reduce((a, b) => a + b, 0) / row.length;
    const std = Math.sqrt(row.reduce((a, b) => a + (b - mean) ** 2, 0) / (row.length - 1));
    const sd = halfDelta[r];
    // 2048 draws: the mean's standard error is sd/45, the std's about sd/64.
    assert.ok(Math.abs(mean) < 4 * sd / Math.sqrt(row.length), `row ${r} mean ${mean}`);
    assert.ok(Math.abs(std / sd - 1) < 0.06, `row ${r} std ${std}, want ${sd}`);
    assert.equal(first[r * inF], 0, "the salient column carries no noise");
  }
  assertClose(
    first.slice(1, 50),
    Array.from({ length: 49 }, (_, j) => 0.5 * gaussianHost(5, 1, j + 1)),
    "draws",
    1e-3,
    1e-5,
  );
  clock.step = 2;
  const second = await noiseAt();
  assert.notDeepEqual(Array.from(second.slice(1, 20)), Array.from(first.slice(1, 20)));
  clock.step = 1;
  assert.deepEqual(Array.from(await noiseAt()), Array.from(first), "same step, same noise");
  clock.training = false;
  assert.ok((await noiseAt()).every((v) => v === 0), "no noise at evaluation");
  gift.dispose();
  layer.dispose();
});

gpuTest("a training step changes W[:, salient] only; the rest stays bit for bit", async (e) => {
  const [tokens, inF, out] = [6, 10, 3];
  const layer = new Linear(e, inF, out, seededRandom(8), { bias: false });
  const before = await layer.weight.read();
  const columns = Int32Array.from([2, 7]);
  const clock: NoiseClock = { training: true, step: 1 };
  const a = await adapt(layer, "gift-sw", [{
    name: "layer",
    layer,
    columns,
    halfDelta: new Float64Array(out).fill(0.05),
  }], { seed: 1, clock });
  assert.equal(a.trainable.length, 1);
  assert.deepEqual(a.trainable[0].shape, [out, 2]);
  assert.equal(layer.weight.requiresGrad, false);
  const adam = new Adam(a.trainable, { lr: 0.1 });
  const x = randomArray(tokens * inF, 9);
  const r = randomArray(tokens * out, 10);
  e.tidy(() => {
    e.startTape();
    const loss = sum(mul(layer.forward(e.tensor(x, [tokens, inF])), e.tensor(r, [tokens, out])));
    e.backward(loss);
    assert.equal(layer.weight.grad, null, "the frozen weight gets no gradient");
    adam.step();
    adam.zeroGrad();
  });
  await a.merge();
  const after = await layer.weight.read();
  for (let i = 0; i < before.length; i++) {
    const salient = columns.includes(i % inF);
    if (salient) assert.notEqual(after[i], before[i], `salient element ${i} moved`);
    else assert.ok(Object.is(after[i], before[i]), `element ${i} kept its bits`);
  }
  assert.equal(layer.weightTransform, null);
  assert.equal(layer.weight.requiresGrad, true, "merge restores the gradient flag");
  adam.dispose();
  layer.dispose();
});
