/**
 * The pruned backbone in trainable form: weight pruning leaves each chosen layer's dense W equal
 * to the float64 reference's pruned weight (originals kept for D); layers whose width the pattern
 * cannot group are skipped by name; activation pruning trains through the mask and deploys
 * src/prune's pruners again; the --prune spellings parse or are refused clearly.
 */
import assert from "node:assert/strict";
import { TrainableActivationPruning } from "../../src/finetune/activation.ts";
import { chooseLayers, parseBackbonePruning, PrunedBackbone } from "../../src/finetune/backbone.ts";
import { Llama, type LlamaConfig } from "../../src/models/llama.ts";
import { ActivationPruner } from "../../src/prune/activation.ts";
import { pruneWeightHost } from "../../src/prune/weights.ts";
import { gpuTest } from "../support/check.ts";

const CONFIG: LlamaConfig = {
  vocab: 11,
  dim: 16,
  hidden: 24,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  maxLen: 8,
  normEps: 1e-5,
  ropeTheta: 10000,
  tied: true,
};

gpuTest("weight 8:16: W becomes the reference's pruned weight; down_proj is skipped", async (e) => {
  const model = new Llama(e, CONFIG, 3);
  const spec = parseBackbonePruning("weight-8:16", "magnitude");
  const { chosen, skipped } = chooseLayers(model, ["q", "up", "down"], spec.sparsity);
  assert.deepEqual(chosen.map((l) => l.name), [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.mlp.up_proj",
  ]);
  assert.deepEqual(skipped, ["model.layers.0.mlp.down_proj"]);
  const b = await PrunedBackbone.create(model, spec, chosen, () => Promise.resolve());
  for (const l of chosen) {
    const [out, inF] = l.layer.weight.shape;
    const original = b.originals.get(l.name)!;
    const want = pruneWeightHost(original, out, inF, {
      sparsity: spec.sparsity!,
      criterion: "magnitude",
    });
    assert.deepEqual(Array.from(await l.layer.weight.read()), Array.from(want), l.name);
    assert.equal(l.layer.inputTransform, null, "the layer multiplies densely");
  }
  b.dispose();
  model.dispose();
});

gpuTest("activation 8:16 trains through the mask and deploys the pruners", async (e) => {
  const model = new Llama(e, CONFIG, 4);
  const spec = parseBackbonePruning("act-8:16", "weight-aware");
  const { chosen } = chooseLayers(model, ["k", "gate"], spec.sparsity);
  const b = await PrunedBackbone.create(model, spec, chosen, () => Promise.resolve());
  for (const l of chosen) assert.ok(l.layer.inputTransform instanceof ActivationPruner);
  await b.forTraining();
  for (const l of chosen) assert.ok(l.layer.inputTransform instanceof TrainableActivationPruning);
  await b.deploy();
  for (const l of chosen) assert.ok(l.layer.inputTransform instanceof ActivationPruner);
  b.dispose();
  for (const l of chosen) assert.equal(l.layer.inputTransform, null);
  model.dispose();
});

Deno.test("--prune: weight-N:M, act-N:M, act-uP or none; criteria checked per kind", () => {
  assert.deepEqual(parseBackbonePruning("act-u50", "clact").sparsity, { unstructured: 0.5 });
  assert.equal(parseBackbonePruning("none", "magnitude").sparsity, null);
  assert.throws(() => parseBackbonePruning("8:16", "magnitude"), /expected weight-N:M, act-N:M/);
  assert.throws(() => parseBackbonePruning("weight-8:16", "clact"), /weight pruning takes/);
  assert.throws(() => parseBackbonePruning("act-8:16", "wanda"), /unknown criterion|wanda/);
});
