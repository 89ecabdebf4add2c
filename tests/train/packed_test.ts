import assert from "node:assert/strict";
import { DEFAULTS, type TrainConfig } from "../../src/train/config.ts";
import { batchOptions, prepareData, RecommenderTraining } from "../../src/train/recommender.ts";
import { BatchIterator, evalBatches } from "../../src/data/batches.ts";
import { SasRec } from "../../src/models/sasrec.ts";
import { EVAL } from "../../src/nn/module.ts";
import { gatherRows } from "../../src/tensor/ops/gather.ts";
import { matmul } from "../../src/tensor/ops/matmul.ts";
import { reshape } from "../../src/tensor/ops/shape.ts";
import { coalesceSparseGrads, sparseRowsToDense } from "../../src/tensor/ops/embedding.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, gpuTest } from "../support/check.ts";
import { tinyData } from "../support/tiny_data.ts";

async function gradientOf(t: Tensor): Promise<Float32Array> {
  coalesceSparseGrads(t);
  const parts: Float32Array[] = [];
  if (t.grad) parts.push(await t.grad.read() as Float32Array);
  for (const rows of t.sparseGrads) {
    parts.push(await sparseRowsToDense(rows, t.shape[0]).read() as Float32Array);
  }
  const sum = new Float32Array(t.size);
  for (const p of parts) p.forEach((x, i) => (sum[i] += x));
  return sum;
}

/** Loss and every parameter's gradient of one step's objective on the first batch. */
async function lossAndGradients(e: Parameters<Parameters<typeof gpuTest>[1]>[0], c: TrainConfig) {
  const data = await prepareData(c);
  const training = new RecommenderTraining(e, c, data);
  const [batch] = new BatchIterator(data.split.train, batchOptions(c)).epoch(0);
  const result = await e.tidyAsync(async () => {
    e.startTape();
    const loss = training.loss(batch, 1);
    e.backward(loss);
    const grads: Record<string, Float32Array> = {};
    for (const [name, t] of training.model.namedParameters()) grads[name] = await gradientOf(t);
    return { loss: (await loss.read())[0], grads };
  });
  training.dispose();
  return result;
}

for (const loss of ["ce", "cce-"] as const) {
  gpuTest(`packed and padded batches give the same ${loss} loss and gradients`, async (e) => {
    const dir = await Deno.makeTempDir();
    const base: TrainConfig = {
      ...DEFAULTS,
      data: await tinyData(dir),
      out: `${dir}/runs`,
      loss,
      sampler: "shared",
      negatives: 7,
      dim: 16,
      heads: 2,
      seqLen: 9,
      batchSize: 24,
      dropout: 0,
    };
    const padded = await lossAndGradients(e, { ...base, padded: true });
    const packed = await lossAndGradients(e, base);
    assert.ok(Math.abs(packed.loss - padded.loss) <= 1e-5 * Math.abs(padded.loss));
    for (const name of Object.keys(padded.grads)) {
      assertClose(packed.grads[name], padded.grads[name], name, 1e-5, 1e-7);
    }
    await Deno.remove(dir, { recursive: true });
  });
}

gpuTest("scoring packed histories equals scoring their padded rows", async (e) => {
  const model = new SasRec(e, {
    items: 40,
    maxLen: 12,
    dim: 8,
    blocks: 2,
    heads: 2,
    dropout: 0.2,
    seed: 3,
  });
  const examples = [3, 1, 12, 7].map((n, user) => ({
    user,
    history: Int32Array.from({ length: 20 }, (_, j) => 1 + ((user * 7 + j) % 40)).subarray(0, n),
    target: 5,
  }));
  const [batch] = evalBatches(examples, 4, 12);
  const packed = await e.noGrad(() => model.score(batch)).read();
  const ids = e.tensor(batch.inputs, [4, 12], "i32");
  const h = reshape(e.noGrad(() => model.forward(ids, EVAL)), [48, 8]);
  const last = gatherRows(h, Int32Array.from([11, 23, 35, 47]));
  const padded = await matmul(last, model.itemEmbedding, { transB: true }).read();
  assertClose(packed, padded, "scores", 1e-5, 1e-6);
  model.dispose();
});
