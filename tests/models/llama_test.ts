/**
 * The Llama decoder against the float64 reference: stories260K (a real llama2.c checkpoint) and a
 * small untied model with grouped-query attention and odd head widths; greedy decoding; the kv
 * cache against recomputing the prefix.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { assignWeights, Llama, type LlamaConfig } from "../../src/models/llama.ts";
import { loadLlama2c, parseLlama2c } from "../../src/models/llama2c.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, gpuTest, randomArray, randomInts } from "../support/check.ts";
import { argmax, referenceGreedy, referenceLogits } from "../support/llama_reference.ts";

const STORIES = fileURLToPath(new URL("../../data/stories260K/stories260K.bin", import.meta.url));

/** Logits [B·T, vocab] of the whole sequences ids [B][T]. */
async function gpuLogits(e: Engine, model: Llama, ids: number[][]): Promise<Float32Array> {
  const [B, T] = [ids.length, ids[0].length];
  return await e.tidyAsync(async () => {
    const h = model.forward(e.tensor(Int32Array.from(ids.flat()), [B, T], "i32"));
    return await model.logits(e.tidy(() => reshape2d(h))).readF32();
  });
}

function reshape2d(h: Tensor): Tensor {
  return h.engine.alias(h, [h.shape[0] * h.shape[1], h.shape[2]]);
}

/** Max |a − b| over max |b|: the logits' error relative to their scale. */
function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

gpuTest("stories260K: next-token logits equal the float64 reference within 1e-4", async (e) => {
  const { config, weights } = parseLlama2c(await Deno.readFile(STORIES), STORIES);
  assert.deepEqual(
    [config.dim, config.hidden, config.layers, config.heads, config.kvHeads, config.vocab],
    [64, 172, 5, 8, 4, 512],
  );
  const model = await loadLlama2c(e, STORIES);
  const w = (name: string) => weights.get(name)!.data;
  const sequences = [
    [1, ...randomInts(22, 1, 3, 512)],
    [1, ...randomInts(22, 2, 3, 512)],
  ];
  const got = await gpuLogits(e, model, sequences);
  const want = sequences.flatMap((s) => referenceLogits(config, w, s)).flatMap((r) => [...r]);
  const err = relativeError(got, want);
  assert.ok(err < 1e-4, `relative error ${err}`);
  // Elementwise too, for logits away from zero.
  assertClose(got, want, "stories260K logits", 1e-4, 1e-4 * Math.max(...want.map(Math.abs)));
  const one = await gpuLogits(e, model, [[1]]);
  assert.ok(relativeError(one, referenceLogits(config, w, [1])[0]) < 1e-4);
  model.dispose();
});

gpuTest("stories260K: greedy decoding from BOS gives the reference's ids", async (e) => {
  const { config, weights } = parseLlama2c(await Deno.readFile(STORIES), STORIES);
  const model = await loadLlama2c(e, STORIES);
  const count = 24;
  const want = referenceGreedy(config, (n) => weights.get(n)!.data, [1], count);
  const cache = model.newCache(1, 64);
  const got: number[] = [];
  let logits = model.prefill(e.tensor([1], [1, 1], "i32"), cache);
  for (let i = 0; i < count; i++) {
    const next = argmax(await logits.readF32());
    logits.dispose();
    got.push(next);
    if (i + 1 < count) logits = model.step(e.tensor([next], [1, 1], "i32"), cache);
  }
  assert.deepEqual(got, want);
  cache.dispose();
  model.dispose();
});

/** A random untied model: grouped-query attention, head width 6 (scalar kernels), vocab 37. */
const SMALL: LlamaConfig = {
  vocab: 37,
  dim: 12,
  hidden: 29,
  layers: 2,
  heads: 2,
  kvHeads: 1,
  maxLen: 40,
  normEps: 1e-5,
  ropeTheta: 500,
  tied: false,
};

function smallWeights(model: Llama): Map<string, Float32Array> {
  return new Map(
    model.namedParameters().map(([name, t], i) => {
      const isNorm = name.endsWith("norm.weight") || name.endsWith("layernorm.weight");
      const data = isNorm ? randomArray(t.size, i, 0.5, 1.5) : randomArray(t.size, i, -0.6, 0.6);
      return [name, data];
    }),
  );
}

gpuTest("an untied GQA model with odd widths matches the reference", async (e) => {
  const model = new Llama(e, SMALL, 3);
  const weights = smallWeights(model);
  assignWeights(
    model,
    (n) => ({
      shape: [...model.namedParameters().find(([m]) => m === n)![1].shape],
      data: weights.get(n)!,
      file: "test",
    }),
    "test",
  );
  const sequences = [randomInts(31, 5, 0, 37), randomInts(31, 6, 0, 37)].map((a) => [...a]);
  const got = await gpuLogits(e, model, sequences);
  const want = sequences.flatMap((s) => referenceLogits(SMALL, (n) => weights.get(n)!, s));
  assert.ok(relativeError(got, want.flatMap((r) => [...r])) < 1e-4);
  model.dispose();
});

gpuTest("decoding with the kv cache gives the logits of recomputing the prefix", async (e) => {
  const model = new Llama(e, SMALL, 4);
  const weights = smallWeights(model);
  const shapes = new Map(model.namedParameters().map(([n, t]) => [n, [...t.shape]]));
  assignWeights(
    model,
    (n) => ({ shape: shapes.get(n)!, data: weights.get(n)!, file: "test" }),
    "test",
  );
  const T = 21;
  const ids = [[...randomInts(T, 7, 0, 37)], [...randomInts(T, 8, 0, 37)]];
  const full = await gpuLogits(e, model, ids);
  const cache = model.newCache(2, 30);
  const prompt = 5;
  const steps: Float32Array[] = [];
  const first = model.prefill(
    e.tensor(Int32Array.from(ids.flatMap((s) => s.slice(0, prompt))), [2, prompt], "i32"),
    cache,
  );
  steps.push(await first.readF32());
  first.dispose();
  for (let t = prompt; t < T; t++) {
    const logits = model.step(e.tensor(ids.map((s) => s[t]), [2, 1], "i32"), cache);
    steps.push(await logits.readF32());
    logits.dispose();
  }
  assert.equal(cache.length, T);
  const V = SMALL.vocab;
  steps.forEach((got, i) => {
    const t = prompt - 1 + i;
    for (let b = 0; b < 2; b++) {
      const want = full.subarray((b * T + t) * V, (b * T + t + 1) * V);
      assertClose(
        got.subarray(b * V, (b + 1) * V),
        want,
        `position ${t} of sequence ${b}`,
        1e-5,
        1e-5,
      );
    }
  });
  assert.throws(() => model.step(e.tensor([0], [1, 1], "i32"), cache), /step takes ids \[2, 1\]/);
  cache.dispose();
  model.dispose();
});
