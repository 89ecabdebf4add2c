/**
 * Fused batch-1 decoding against the float64 reference: every plan (many tokens per dispatch, one
 * workgroup per layer or five phases over many; whole rows per invocation or a workgroup per row)
 * on stories260K and on awkward models (kv heads ≠ heads, widths that are not multiples of the
 * workgroup, or not even of 4, untied head, a vocabulary that is not a multiple of 4); greedy
 * ids; the GPU sampler against sampleToken with the same Philox uniforms; readback chunking,
 * stop token and the fallback to the layer-by-layer path.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { assignWeights, Llama, type LlamaConfig } from "../../src/models/llama.ts";
import { loadLlama2c, parseLlama2c } from "../../src/models/llama2c.ts";
import {
  type DecodePlan,
  defaultDecodePlan,
  fusedDecodeBlocker,
  FusedDecoder,
  gpuSamplerBlocker,
  laneIterations,
  SAMPLE_STREAM,
} from "../../src/models/decode.ts";
import { generate } from "../../src/models/generate.ts";
import { LOOP_BUDGET } from "../../src/gpu/device.ts";
import { sampleToken } from "../../src/models/sampling.ts";
import { randomUniform } from "../../src/tensor/random.ts";
import { matmul } from "../../src/tensor/ops/matmul.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { gpuTest, randomArray, randomInts } from "../support/check.ts";
import { referenceGreedy, referenceLogits } from "../support/llama_reference.ts";

const STORIES = fileURLToPath(new URL("../../data/stories260K/stories260K.bin", import.meta.url));

const PLANS: DecodePlan[] = [
  { schedule: "tokens", laneRows: true },
  { schedule: "fused", laneRows: true },
  { schedule: "fused", laneRows: false },
  { schedule: "split", laneRows: true },
  { schedule: "split", laneRows: false },
];

/** Max |a − b| over max |b|. */
function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

/** Kv heads ≠ heads, head width 14, widths 70 and 93 (not multiples of 64), untied. */
const AWKWARD: LlamaConfig = {
  vocab: 131,
  dim: 70,
  hidden: 93,
  layers: 2,
  heads: 5,
  kvHeads: 1,
  maxLen: 48,
  normEps: 1e-5,
  ropeTheta: 1000,
  tied: false,
};

/** As AWKWARD, with the multiples of 4 the `tokens` schedule reads as vec4s: head width 12. */
const AWKWARD4: LlamaConfig = { ...AWKWARD, dim: 36, hidden: 52, heads: 3 };

function randomModel(e: Engine, c: LlamaConfig, seed: number) {
  const model = new Llama(e, c, seed);
  const weights = new Map(
    model.namedParameters().map(([name, t], i) => {
      const norm = name.endsWith("norm.weight") || name.endsWith("layernorm.weight");
      return [name, norm ? randomArray(t.size, i, 0.5, 1.5) : randomArray(t.size, i, -0.3, 0.3)];
    }),
  );
  const shapes = new Map(model.namedParameters().map(([n, t]) => [n, [...t.shape]]));
  assignWeights(model, (n) => ({ shape: shapes.get(n)!, data: weights.get(n)!, file: "t" }), "t");
  return { model, weights: (n: string) => weights.get(n)! };
}

/**
 * Teacher-forces `ids` through the fused decoder after a prefill of ids[0], returning the logits
 * of every position (the prefill's first).
 */
async function fusedLogits(model: Llama, ids: number[], plan: DecodePlan) {
  const e = model.engine;
  const cache = model.newCache(1, ids.length);
  const first = model.prefill(e.tensor([ids[0]], [1, 1], "i32"), cache);
  const out = [await first.readF32()];
  first.dispose();
  const d = new FusedDecoder(model, cache, 1, { temperature: 0, topK: 0, seed: 0 }, plan);
  for (const id of ids.slice(1)) {
    d.feed(id);
    d.decode(0);
    out.push(await d.logits());
  }
  d.dispose();
  cache.dispose();
  return out;
}

async function checkAgainstReference(
  model: Llama,
  c: LlamaConfig,
  w: (n: string) => ArrayLike<number>,
  ids: number[],
  plans = PLANS,
) {
  const want = referenceLogits(c, w, ids);
  for (const plan of plans) {
    const got = await fusedLogits(model, ids, plan);
    got.forEach((g, t) => {
      const err = relativeError(g, want[t]);
      assert.ok(err < 1e-4, `${plan.schedule}/${plan.laneRows}: position ${t} error ${err}`);
    });
  }
}

gpuTest(
  "stories260K: fused decoding logits equal the float64 reference (every plan)",
  async (e) => {
    const { config, weights } = parseLlama2c(await Deno.readFile(STORIES), STORIES);
    const model = await loadLlama2c(e, STORIES);
    const ids = [1, ...randomInts(12, 11, 3, 512)];
    await checkAgainstReference(model, config, (n) => weights.get(n)!.data, ids);
    model.dispose();
  },
);

gpuTest(
  "awkward GQA models: fused decoding logits equal the reference (every plan that reads them)",
  async (e) => {
    const four = randomModel(e, AWKWARD4, 4);
    await checkAgainstReference(four.model, AWKWARD4, four.weights, [...randomInts(9, 13, 0, 131)]);
    four.model.dispose();
    // Widths 70, 93 and head width 14: the tokens schedule reads vec4s and refuses them.
    const { model, weights } = randomModel(e, AWKWARD, 5);
    const ids = [...randomInts(9, 12, 0, 131)];
    await checkAgainstReference(model, AWKWARD, weights, ids, PLANS.slice(1));
    const cache = model.newCache(1, 4);
    assert.throws(
      () => new FusedDecoder(model, cache, 1, { temperature: 0, topK: 0, seed: 0 }, PLANS[0]),
      /multiples of 4/,
    );
    cache.dispose();
    if (/llvmpipe/.test(e.gpu.adapterName)) {
      assert.deepEqual(defaultDecodePlan(model), { schedule: "fused", laneRows: true });
    }
    model.dispose();
  },
);

gpuTest("stories260K: fused greedy ids equal the reference and the layer path", async (e) => {
  const { config, weights } = parseLlama2c(await Deno.readFile(STORIES), STORIES);
  const model = await loadLlama2c(e, STORIES);
  const count = 20;
  const want = referenceGreedy(config, (n) => weights.get(n)!.data, [1, 5], count);
  const opts = { maxTokens: count, temperature: 0, topK: 0, seed: 0 };
  const fused = await generate(model, [1, 5], { ...opts, readEvery: 7 });
  assert.equal(fused.path, "fused");
  assert.deepEqual(fused.ids, want);
  const layers = await generate(model, [1, 5], { ...opts, decode: "layers" });
  assert.equal(layers.path, "layers");
  assert.deepEqual(layers.ids, want);
  // The GPU's plan (the default here is llvmpipe's).
  for (const plan of [PLANS[4]]) {
    const cache = model.newCache(1, 2 + count);
    const logits = model.prefill(e.tensor([1, 5], [1, 2], "i32"), cache);
    const d = new FusedDecoder(model, cache, count, opts, plan);
    d.sampleFrom(logits, 0);
    d.decode(1, count - 1);
    assert.deepEqual(await d.readIds(0, count), want, `${plan.schedule}/${plan.laneRows}`);
    d.dispose();
    cache.dispose();
    logits.dispose();
  }
  model.dispose();
});

gpuTest("the GPU sampler draws what sampleToken draws with the same Philox uniforms", async (e) => {
  const { model } = randomModel(e, AWKWARD4, 6);
  const count = 12;
  const settings = [
    { temperature: 0.9, topK: 0, seed: 7 },
    { temperature: 1.3, topK: 5, seed: 8 },
    { temperature: 0.7, topK: 1, seed: 9 },
  ];
  for (const s of settings) {
    for (const plan of [PLANS[0], PLANS[4]]) {
      const cache = model.newCache(1, 1 + count);
      const logits = model.prefill(e.tensor([3], [1, 1], "i32"), cache);
      const d = new FusedDecoder(model, cache, count, s, plan);
      const seen: Float32Array[] = [await logits.readF32()];
      d.sampleFrom(logits, 0);
      const got = [(await d.readIds(0, 1))[0]];
      for (let i = 1; i < count; i++) {
        d.decode(i);
        got.push((await d.readIds(i, 1))[0]);
        seen.push(await d.logits());
      }
      const want = seen.map((l, i) =>
        sampleToken(l, s, () => randomUniform(s.seed, SAMPLE_STREAM, i))
      );
      assert.deepEqual(got, want, JSON.stringify(s));
      if (s.topK === 0) assert.ok(new Set(got).size > 2, "a temperature draw varies");
      d.dispose();
      cache.dispose();
      logits.dispose();
    }
  }
  model.dispose();
});

gpuTest("fused generation: chunked readback, stop token, context and the fallback", async (e) => {
  const { model } = randomModel(e, AWKWARD, 7);
  const opts = { maxTokens: 30, temperature: 0.8, topK: 7, seed: 3 };
  const one = await generate(model, [4, 9], { ...opts, readEvery: 1 });
  const many = await generate(model, [4, 9], { ...opts, readEvery: 13 });
  assert.deepEqual(many.ids, one.ids);
  assert.equal(one.stop, "max_tokens");
  const stopAt = one.ids[5];
  const cut = await generate(model, [4, 9], { ...opts, stopAt });
  assert.deepEqual(cut.ids, one.ids.slice(0, one.ids.indexOf(stopAt) + 1));
  assert.equal(cut.stop, "stop_token");
  const prompt = [...randomInts(40, 3, 0, 131)];
  const full = await generate(model, prompt, { ...opts, maxTokens: 20 });
  assert.equal(full.ids.length, AWKWARD.maxLen - prompt.length + 1);
  assert.equal(full.stop, "context");
  const streamed: number[] = [];
  await generate(model, [4, 9], { ...opts, onToken: (id) => streamed.push(id) });
  assert.deepEqual(streamed, one.ids);
  // A Linear with an input transform (pruning) decodes layer by layer, dense products or not.
  const o = model.layers[1].attn.o;
  o.inputTransform = { product: (x, w) => matmul(x, w, { transB: true }) };
  assert.match(fusedDecodeBlocker(model)!, /model\.layers\.1\.self_attn\.o_proj has an input/);
  const greedy = { maxTokens: 10, temperature: 0, topK: 0, seed: 0 };
  const layered = await generate(model, [4, 9], greedy);
  assert.equal(layered.path, "layers");
  assert.match(layered.fallback!, /input transform/);
  await assert.rejects(generate(model, [4, 9], { ...greedy, decode: "fused" }), /input transform/);
  o.inputTransform = null;
  const fused = await generate(model, [4, 9], greedy);
  assert.deepEqual([fused.path, fused.ids], ["fused", layered.ids]);
  // Top-k at or past the vocabulary draws from every token; in between, past 256, it cannot.
  assert.equal(fusedDecodeBlocker(model, { temperature: 1, topK: 300 }), null);
  model.dispose();
  const wide = new Llama(e, { ...AWKWARD, vocab: 400, layers: 1 }, 1);
  assert.match(fusedDecodeBlocker(wide, { temperature: 1, topK: 300 })!, /top-k 300 is above/);
  wide.dispose();
  if (/llvmpipe/.test(e.gpu.adapterName)) {
    // 200 passes over 40,000 logits would outrun llvmpipe's loop cap in one invocation.
    const big = { ...AWKWARD, vocab: 40000, dim: 6, hidden: 5, heads: 1, kvHeads: 1, layers: 1 };
    const vocab = new Llama(e, big, 1);
    assert.match(fusedDecodeBlocker(vocab, { temperature: 1, topK: 200 })!, /loops past/);
    assert.equal(fusedDecodeBlocker(vocab, { temperature: 0, topK: 0 }), null);
    vocab.dispose();
  }
});

gpuTest("the one-workgroup schedules stay within llvmpipe's loop budget", async (e) => {
  const { config, weights } = parseLlama2c(await Deno.readFile(STORIES), STORIES);
  const model = await loadLlama2c(e, STORIES);
  // Many tokens per readback: several dispatches, each within the budget (llvmpipe silently
  // ended the loops of a single 19-token dispatch, and the ids turned to zeros).
  const want = referenceGreedy(config, (n) => weights.get(n)!.data, [1], 40);
  const greedy = { maxTokens: 40, temperature: 0, topK: 0, seed: 0 };
  assert.deepEqual((await generate(model, [1], greedy)).ids, want);
  const cache = model.newCache(1, 41);
  const d = new FusedDecoder(model, cache, 40, greedy, PLANS[0]);
  const perToken = laneIterations(model, 41, greedy).token;
  assert.ok(d.tokensPerDispatch * perToken <= LOOP_BUDGET && d.tokensPerDispatch >= 2);
  d.dispose();
  cache.dispose();
  model.dispose();
  // Wide layers (not 4-aligned): past the budget in one invocation, refused, and the default
  // spreads them over workgroups.
  const wide = new Llama(e, { ...AWKWARD, dim: 510, hidden: 2046, heads: 3, layers: 1 }, 2);
  assert.ok(laneIterations(wide, 8, greedy).layer > LOOP_BUDGET);
  const small = wide.newCache(1, 8);
  assert.throws(() => new FusedDecoder(wide, small, 4, greedy, PLANS[1]), /over the budget/);
  if (/llvmpipe/.test(e.gpu.adapterName)) {
    assert.deepEqual(defaultDecodePlan(wide, 8), { schedule: "split", laneRows: true });
  }
  small.dispose();
  wide.dispose();
});

gpuTest(
  "the layer path draws on the GPU as the fused path does, or on the host past its top-k",
  async (e) => {
    const { model } = randomModel(e, AWKWARD, 11);
    const opts = { maxTokens: 25, temperature: 0.9, topK: 0, seed: 21 };
    const fused = await generate(model, [4, 9], opts);
    const layers = await generate(model, [4, 9], { ...opts, decode: "layers", readEvery: 6 });
    assert.deepEqual([fused.path, layers.path], ["fused", "layers"]);
    assert.deepEqual(layers.ids, fused.ids);
    assert.ok(new Set(layers.ids).size > 2, "a temperature draw varies");
    for (const decode of ["fused", "layers"] as const) {
      await assert.rejects(
        generate(model, [4, 9], { ...opts, decode, readEvery: 0 }),
        /readEvery must be a positive integer, got 0/,
      );
    }
    model.dispose();
    // Top-k 300 of 400 tokens is past the GPU sampler: the host draws, with the same uniforms.
    const wide = randomModel(e, { ...AWKWARD, vocab: 400, layers: 1 }, 12).model;
    const s = { temperature: 1, topK: 300, seed: 5 };
    assert.match(gpuSamplerBlocker(wide, s)!, /top-k 300 is above/);
    const host = await generate(wide, [3], { ...s, maxTokens: 12 });
    assert.equal(host.path, "layers");
    assert.deepEqual((await generate(wide, [3], { ...s, maxTokens: 12 })).ids, host.ids);
    const cache = wide.newCache(1, 2);
    const logits = wide.prefill(e.tensor([3], [1, 1], "i32"), cache);
    const first = sampleToken(await logits.readF32(), s, () => randomUniform(5, SAMPLE_STREAM, 0));
    assert.equal(host.ids[0], first);
    logits.dispose();
    cache.dispose();
    wide.dispose();
  },
);
