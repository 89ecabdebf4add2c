/**
 * `deno task finetune` end to end on a tiny trained run: each method after weight and activation
 * 8:16 pruning records dense, pruned and fine-tuned losses, the trainable budget and a merged
 * checkpoint; GIFT-SW and LoRA train about the same number of parameters; bad flags are refused.
 */
import assert from "node:assert/strict";
import { finetuneLm } from "../../src/train/finetune.ts";
import {
  FINETUNE_DEFAULTS,
  type FinetuneConfig,
  parseFinetuneArgs,
} from "../../src/train/finetune_config.ts";
import { prepareText, trainLm } from "../../src/train/lm.ts";
import { Logger } from "../../src/train/log.ts";
import { gpuTest } from "../support/check.ts";
import { tinyLmConfig } from "../support/tiny_data.ts";

const quiet = new Logger({ json: true, write: () => {}, progress: false });

gpuTest("finetune: every method after weight and activation 8:16 pruning", async (e) => {
  const dir = await Deno.makeTempDir();
  // hidden 24: 8:16 groups the width-16 projections but not down_proj's input, which is skipped.
  const c = await tinyLmConfig(dir);
  const base = await trainLm(e, c, await prepareText(c), { logger: quiet });
  const params: Record<string, number> = {};
  // Each method after each pruning; GIFT-SW once more with the general score, the α grid and
  // without noise.
  const cases: [string, Partial<FinetuneConfig>][] = [];
  for (const prune of ["weight-8:16", "act-8:16"]) {
    for (const method of ["gift-sw", "lora", "full"] as const) cases.push([prune, { method }]);
  }
  cases.push(["weight-8:16", { method: "gift-sw", score: "general", alphaGrid: true }]);
  cases.push(["act-8:16", { method: "gift-sw", score: "general", noNoise: true }]);
  for (const [prune, given] of cases) {
    const method = given.method!;
    const f: FinetuneConfig = {
      ...FINETUNE_DEFAULTS,
      ...given,
      model: `${dir}/runs/${base.runId}`,
      prune,
      steps: 2,
      salient: 4,
      calibTokens: 64,
      evalTokens: 0,
      out: `${dir}/runs`,
    };
    const r = await finetuneLm(e, f, { logger: quiet });
    const what = `${prune} ${JSON.stringify(given)}`;
    assert.equal(r.status, "finished", `${what}: ${r.error}`);
    const { dense, pruned, finetuned, repruned, budget } = r.groups;
    assert.ok(pruned.loss > dense.loss, `${what}: pruning costs loss`);
    assert.ok(Number.isFinite(finetuned.loss), what);
    assert.equal(repruned !== undefined, prune.startsWith("weight"), what);
    assert.equal(budget.trainable_params, r.trainableParams);
    // Parameters and Adam's two moments, at least.
    assert.ok(r.trainableBytes >= 3 * 4 * r.trainableParams, what);
    assert.ok(r.peakBytes > r.trainableBytes, what);
    await Deno.stat(`${r.runDir}/merged.safetensors`);
    params[method] = r.trainableParams;
  }
  // q, k, v, o, gate, up with k = 4: 4 · (16 + 8 + 8 + 16 + 24 + 24) = 384.
  assert.equal(params["gift-sw"], 384);
  assert.ok(Math.abs(params.lora - params["gift-sw"]) / params["gift-sw"] < 0.35);
  assert.ok(params.full > params.lora);
});

Deno.test("finetune flags: the model is required, --no-noise is GIFT-SW's, steps divide", () => {
  assert.throws(() => parseFinetuneArgs(["--method", "lora"]), /--model RUN\|PATH is required/);
  assert.throws(
    () => parseFinetuneArgs(["--model", "x", "--method", "lora", "--no-noise"]),
    /--no-noise is GIFT-SW's/,
  );
  assert.throws(
    () => parseFinetuneArgs(["--model", "x", "--steps", "10", "--steps-per-epoch", "3"]),
    /--steps 10 is not a multiple of --steps-per-epoch 3/,
  );
  assert.throws(() => parseFinetuneArgs(["--model", "x", "--method", "qlora"]), /not one of/);
  const { config } = parseFinetuneArgs(["--model", "x", "--salient", "0.125"]);
  assert.equal(config.salient, 0.125);
});
