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
  splitAttention,
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

/**
 * Logits [vocab] in float64 of one step of a one-layer, tied model at position `pos`, its cache
 * rows [0, pos) holding keys `k` and values `v` [pos, kvHeads · dh] as they are.
 */
function referenceStep(
  c: LlamaConfig,
  w: (n: string) => ArrayLike<number>,
  token: number,
  pos: number,
  k: Float32Array,
  v: Float32Array,
): Float64Array {
  const { dim, heads, kvHeads, hidden, vocab } = c;
  const dh = dim / heads;
  const kv = kvHeads * dh;
  const linear = (m: ArrayLike<number>, x: Float64Array, out: number) =>
    Float64Array.from(
      { length: out },
      (_, o) => x.reduce((a, xi, i) => a + m[o * x.length + i] * xi, 0),
    );
  const norm = (x: Float64Array, g: ArrayLike<number>) => {
    const r = 1 / Math.sqrt(x.reduce((a, xi) => a + xi * xi, 0) / x.length + c.normEps);
    return x.map((xi, i) => xi * r * g[i]);
  };
  const rotate = (x: Float64Array) => {
    for (let i = 0; i < x.length; i += 2) {
      const angle = pos * c.ropeTheta ** (-(i % dh) / dh);
      const [a, b] = [x[i], x[i + 1]];
      x[i] = a * Math.cos(angle) - b * Math.sin(angle);
      x[i + 1] = a * Math.sin(angle) + b * Math.cos(angle);
    }
    return x;
  };
  const p = (n: string) => w(`model.layers.0.${n}`);
  const embed = w("model.embed_tokens.weight");
  const x = Float64Array.from({ length: dim }, (_, i) => embed[token * dim + i]);
  const n1 = norm(x, p("input_layernorm.weight"));
  const q = rotate(linear(p("self_attn.q_proj.weight"), n1, dim));
  const kNew = rotate(linear(p("self_attn.k_proj.weight"), n1, kv));
  const vNew = linear(p("self_attn.v_proj.weight"), n1, kv);
  const keyAt = (s: number, j: number) => s < pos ? k[s * kv + j] : kNew[j];
  const valueAt = (s: number, j: number) => s < pos ? v[s * kv + j] : vNew[j];
  const att = new Float64Array(dim);
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / (heads / kvHeads));
    const scores = Float64Array.from({ length: pos + 1 }, (_, s) => {
      let dot = 0;
      for (let d = 0; d < dh; d++) dot += q[h * dh + d] * keyAt(s, g * dh + d);
      return dot / Math.sqrt(dh);
    });
    const top = scores.reduce((a, b) => Math.max(a, b), -Infinity);
    const e = scores.map((s) => Math.exp(s - top));
    const z = e.reduce((a, b) => a + b, 0);
    for (let s = 0; s <= pos; s++) {
      for (let d = 0; d < dh; d++) att[h * dh + d] += (e[s] / z) * valueAt(s, g * dh + d);
    }
  }
  const o = linear(p("self_attn.o_proj.weight"), att, dim);
  const h1 = x.map((xi, i) => xi + o[i]);
  const n2 = norm(h1, p("post_attention_layernorm.weight"));
  const gate = linear(p("mlp.gate_proj.weight"), n2, hidden);
  const up = linear(p("mlp.up_proj.weight"), n2, hidden);
  const act = gate.map((a, i) => (a / (1 + Math.exp(-a))) * up[i]);
  const out = h1.map((hi, i) => hi + linear(p("mlp.down_proj.weight"), act, dim)[i]);
  return linear(embed, norm(out, w("model.norm.weight")), vocab);
}

gpuTest(
  "split decoding attends over a long cache (head width 128, position 17,000) as float64 does",
  async (e) => {
    // attend_head's invocations loop ⌈len / 64⌉ · (dh + 2) + ⌈dh / 64⌉ · len times: for dh = 128
    // llvmpipe cut them short past ~16,200 positions (57 of 128 attention outputs wrong at
    // 17,000). splitAttention now takes such a cache to an invocation per score and the weighted
    // sum in passes.
    const pos = 17000;
    const c: LlamaConfig = {
      vocab: 16,
      dim: 128,
      hidden: 32,
      layers: 1,
      heads: 1,
      kvHeads: 1,
      maxLen: pos + 1,
      normEps: 1e-5,
      ropeTheta: 10000,
      tied: true,
    };
    const { model, weights } = randomModel(e, c, 7);
    const split = splitAttention(model, pos + 1);
    if (e.gpu.isSoftware) {
      assert.deepEqual(split.passes, [[0, 16382], [16382, pos + 1]]);
      assert.ok(split.loops <= LOOP_BUDGET);
    }
    const k = randomArray(pos * 128, 31, -1, 1);
    // Values away from 0, so that a weighted sum cut short shows.
    const v = randomArray(pos * 128, 32, 0.5, 1.5);
    const want = referenceStep(c, weights, 3, pos, k, v);
    for (const plan of PLANS.slice(3)) {
      const cache = model.newCache(1, pos + 1);
      e.tidy(() => {
        e.gpu.copy(e.tensor(k, [pos, 128]).storage, 0, cache.layers[0].k.storage, 0, k.byteLength);
        e.gpu.copy(e.tensor(v, [pos, 128]).storage, 0, cache.layers[0].v.storage, 0, v.byteLength);
      });
      cache.length = pos;
      const d = new FusedDecoder(model, cache, 1, { temperature: 0, topK: 0, seed: 0 }, plan);
      d.feed(3);
      d.decode(0);
      const err = relativeError(await d.logits(), want);
      assert.ok(err < 1e-4, `split/${plan.laneRows}: error ${err}`);
      d.dispose();
      cache.dispose();
    }
    model.dispose();
  },
);

gpuTest("a 4096-wide, 32-head model's default plan stays within llvmpipe's budget", (e) => {
  // Counted, not run: the weights would take 0.5 GB a layer. The fused schedule does not fit at
  // 16,384 positions and the default is split, whose attention then runs in passes.
  const config: LlamaConfig = {
    vocab: 32000,
    dim: 4096,
    hidden: 11008,
    layers: 32,
    heads: 32,
    kvHeads: 32,
    maxLen: 32768,
    normEps: 1e-5,
    ropeTheta: 10000,
    tied: false,
  };
  // What the plan and the loop counts read of a model (no weights: a binding is never too big).
  const model = {
    config,
    headDim: 128,
    layers: new Array(32),
    engine: e,
    parameters: () => [],
    embed: { size: 0 },
  } as unknown as Llama;
  const greedy = { temperature: 0, topK: 0 };
  for (const length of [16384, 32768]) {
    const loops = laneIterations(model, length, greedy);
    if (e.gpu.isSoftware) {
      assert.deepEqual(defaultDecodePlan(model, length), { schedule: "split", laneRows: true });
      assert.ok(loops.split <= LOOP_BUDGET, `${length}: ${loops.split}`);
      const { passes } = splitAttention(model, length);
      assert.equal(passes?.at(-1)?.[1], length);
    } else {
      assert.equal(splitAttention(model, length).passes, null);
    }
  }
  // Too wide for one invocation even spread: refused before decoding, and generate falls back.
  const wide = { ...model, config: { ...config, dim: 32768, heads: 256 } } as unknown as Llama;
  if (e.gpu.isSoftware) {
    assert.match(
      fusedDecodeBlocker(wide, greedy, 64) ?? "",
      /split schedule would loop \d+ times in one invocation, over the budget of 32768/,
    );
  }
});
