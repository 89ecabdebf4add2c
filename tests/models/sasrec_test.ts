import assert from "node:assert/strict";
import { SasRec, type SasRecConfig } from "../../src/models/sasrec.ts";
import { fullCrossEntropy } from "../../src/loss/losses.ts";
import { Adam } from "../../src/train/optim.ts";
import { gatherRows } from "../../src/tensor/ops/gather.ts";
import { reshape } from "../../src/tensor/ops/shape.ts";
import { EVAL } from "../../src/nn/module.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { gpuTest } from "../support/check.ts";

const CONFIG: SasRecConfig = {
  items: 23,
  maxLen: 9,
  dim: 16,
  blocks: 2,
  heads: 2,
  dropout: 0.1,
  seed: 3,
};

// Four left-padded sequences over a 23-item catalogue: inputs and next-item targets.
const SEQS = [
  [0, 0, 3, 7, 11, 2, 19, 5, 8],
  [0, 0, 0, 0, 0, 4, 4, 21, 13],
  [1, 2, 3, 4, 5, 6, 7, 8, 9],
  [0, 0, 0, 0, 0, 0, 0, 17, 23],
];

function batchOf(): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(4 * 8);
  const targets = new Int32Array(4 * 8);
  SEQS.forEach((s, r) => {
    for (let j = 0; j < 8; j++) {
      inputs[r * 8 + j] = s[j];
      targets[r * 8 + j] = s[j] === 0 ? 0 : s[j + 1];
    }
  });
  return { inputs, targets };
}

function trainSteps(e: Engine, model: SasRec, opt: Adam, steps: number): Promise<number[]> {
  const { inputs, targets } = batchOf();
  const rows = [...targets.keys()].filter((i) => targets[i] !== 0);
  const wanted = Int32Array.from(rows, (i) => targets[i]);
  const losses: Promise<number>[] = [];
  for (let step = 1; step <= steps; step++) {
    const loss = e.tidy(() => {
      e.startTape();
      const ids = e.tensor(inputs, [4, 8], "i32");
      const h = model.forward(ids, { training: true, seed: 11, step });
      const hv = gatherRows(reshape(h, [32, model.config.dim]), Int32Array.from(rows));
      const loss = fullCrossEntropy(hv, model.itemEmbedding, wanted);
      e.backward(loss);
      opt.step();
      opt.zeroGrad();
      return loss;
    });
    losses.push(loss.read().then((v) => (loss.dispose(), v[0])));
  }
  return Promise.all(losses);
}

gpuTest("a 2-block SASRec overfits a tiny batch (loss < 0.15 within 150 steps)", async (e) => {
  const model = new SasRec(e, CONFIG);
  const opt = new Adam(model.parameters(), { lr: 0.01 });
  const losses = await trainSteps(e, model, opt, 150);
  assert.ok(losses[0] > 2.5, `initial loss ${losses[0]} should be near ln(23) ≈ 3.14`);
  assert.ok(losses.at(-1)! < 0.15, `final loss ${losses.at(-1)}`);
  model.dispose();
  opt.dispose();
});

gpuTest("a training step is bit-identical for the same seed", async (e) => {
  const run = async () => {
    const model = new SasRec(e, CONFIG);
    const opt = new Adam(model.parameters(), { lr: 0.01 });
    const losses = await trainSteps(e, model, opt, 3);
    const params = await Promise.all(model.parameters().map((p) => p.read()));
    model.dispose();
    opt.dispose();
    return { losses, params };
  };
  const a = await run();
  const b = await run();
  assert.deepEqual(a.losses, b.losses);
  a.params.forEach((p, i) => {
    assert.deepEqual(
      new Uint32Array(p.buffer),
      new Uint32Array(b.params[i].buffer),
      `parameter ${i}`,
    );
  });
});

gpuTest(
  "the padding row of the item table stays zero through AdamW steps on full CE",
  async (e) => {
    const model = new SasRec(e, CONFIG);
    const opt = new Adam(model.parameters(), { lr: 0.01, weightDecay: 0.1, decoupled: true });
    await trainSteps(e, model, opt, 3);
    const table = await model.itemEmbedding.read();
    const row0 = [...new Uint32Array(table.buffer, 0, CONFIG.dim)];
    assert.deepEqual(row0, new Array(CONFIG.dim).fill(0));
    model.dispose();
    opt.dispose();
  },
);

gpuTest("dropping all-padding leading columns does not change the outputs", async (e) => {
  const model = new SasRec(e, CONFIG);
  const full = new Int32Array([0, 0, 0, 0, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
  const trimmed = new Int32Array([0, 5, 6, 7, 8, 9, 0, 0, 0, 1, 2, 3]);
  const last = async (ids: Int32Array, len: number) => {
    const h = model.forward(e.tensor(ids, [2, len], "i32"), EVAL);
    const v = await h.read();
    return [...v.subarray((len - 1) * 16, len * 16), ...v.subarray((2 * len - 1) * 16)];
  };
  const a = await last(full, 9);
  const b = await last(trimmed, 6);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 1e-5, `${v} vs ${b[i]}`));
  model.dispose();
});
