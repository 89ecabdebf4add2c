/**
 * bench:prune's measuring core on tiny models: dense and sparse rates for every repetition, the
 * ratio of their medians, and the model left dense afterwards.
 */
import assert from "node:assert/strict";
import { decodeRate, denseAgainstSparse, prefillRate, rankingRate } from "../../bench/prune.ts";
import { Llama } from "../../src/models/llama.ts";
import { SasRec } from "../../src/models/sasrec.ts";
import { linearLayers } from "../../src/prune/activation.ts";
import { gpuTest } from "../support/check.ts";

const SPARSE = { sparsity: { pattern: { n: 8, m: 16 } }, criterion: "magnitude" } as const;

gpuTest("LM prefill and decode, dense against 8:16, model dense afterwards", async (e) => {
  const model = new Llama(e, {
    vocab: 23,
    dim: 32,
    hidden: 48,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    maxLen: 16,
    normEps: 1e-5,
    ropeTheta: 500,
    tied: false,
  }, 1);
  const prompt = Int32Array.from([1, 5, 7, 9]);
  const config = { ...SPARSE, mitigation: "none", layers: ["q", "up", "down"] } as const;
  let reps = 0;
  const t = await denseAgainstSparse(model, config, 2, prefillRate(model, prompt), () => reps++);
  assert.equal(reps, 2);
  assert.equal(t.denseRuns.length, 2);
  assert.ok(t.dense > 0 && t.sparse > 0 && Math.abs(t.ratio - t.sparse / t.dense) < 1e-12);
  const d = await denseAgainstSparse(model, config, 1, decodeRate(model, prompt, 3));
  assert.ok(d.dense > 0 && d.sparse > 0);
  assert.ok(linearLayers(model).every((l) => l.layer.inputTransform === null));
  model.dispose();
});

gpuTest("SASRec ranking users/s, dense against 8:16", async (e) => {
  const model = new SasRec(e, {
    items: 40,
    maxLen: 6,
    dim: 16,
    blocks: 1,
    heads: 2,
    dropout: 0,
    seed: 1,
  });
  const config = {
    ...SPARSE,
    mitigation: "none",
    layers: ["q", "k", "v", "o", "fc1", "fc2"],
  } as const;
  const t = await denseAgainstSparse(model, config, 1, rankingRate(model, 5, 3));
  assert.ok(t.dense > 0 && t.sparse > 0);
  assert.ok(linearLayers(model).every((l) => l.layer.inputTransform === null));
  model.dispose();
});
