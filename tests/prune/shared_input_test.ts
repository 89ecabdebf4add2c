/**
 * Layers that read one input (q, k, v; gate, up) share its pruning when the choice depends on
 * the input alone: one prune per input while decoding, the same outputs as pruning it per layer
 * (what a tape, i.e. training, still does).
 */
import assert from "node:assert/strict";
import { Llama } from "../../src/models/llama.ts";
import { applyActivationPruning } from "../../src/prune/activation.ts";
import type { Dispatch } from "../../src/gpu/gpu.ts";
import { gpuTest } from "../support/check.ts";

gpuTest("q, k, v and gate, up prune their shared input once, with the same outputs", async (e) => {
  const model = new Llama(e, {
    vocab: 20,
    dim: 32,
    hidden: 48,
    layers: 2,
    heads: 2,
    kvHeads: 1,
    maxLen: 8,
    normEps: 1e-5,
    ropeTheta: 10000,
    tied: false,
  }, 3);
  const layers = ["q", "k", "v", "o", "gate", "up", "down"] as const;
  await applyActivationPruning(model, {
    sparsity: { pattern: { n: 8, m: 16 } },
    criterion: "magnitude",
    mitigation: "none",
    layers: [...layers],
  });
  const kernels: string[] = [];
  const dispatch = e.gpu.dispatch.bind(e.gpu);
  e.gpu.dispatch = (d: Dispatch) => {
    kernels.push(d.kernel);
    dispatch(d);
  };
  const ids = e.tensor(Int32Array.from([3, 7, 1, 12]), [1, 4], "i32");
  const prunes = async (taped: boolean) => {
    kernels.length = 0;
    if (taped) e.startTape();
    const out = await e.tidyAsync(() => model.forward(ids).read());
    e.tape = null;
    return { out, prunes: kernels.filter((k) => /prune/.test(k)).length };
  };
  const shared = await prunes(false);
  const separate = await prunes(true);
  assert.equal(shared.prunes, 4 * 2, "q·k·v, o, gate·up and down per layer");
  assert.equal(separate.prunes, layers.length * 2, "one per layer under a tape");
  assert.deepEqual(shared.out, separate.out);
  e.gpu.dispatch = dispatch;
  model.dispose();
});
