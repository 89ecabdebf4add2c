/**
 * Fused batch-1 decoding: each new token runs one kernel per layer (or five, spread over
 * workgroups) and one for the output head and the sampler, all recorded into the same command
 * buffer, with the residual stream, the sampled token and its embedding kept on the GPU. Many
 * tokens are decoded between readbacks, and a readback is only their ids.
 *
 * The fused path computes dense products of the model's own weights: a Linear with an input
 * transform (activation or weight pruning, src/prune) is decoded layer by layer instead, and so
 * is anything past the limits `fusedDecodeBlocker` checks.
 */
import paramsShader from "../../shaders/decode_params.wgsl" with { type: "text" };
import layerShader from "../../shaders/decode_layer.wgsl" with { type: "text" };
import sampleShader from "../../shaders/decode_sample.wgsl" with { type: "text" };
import phasesShader from "../../shaders/decode_phases.wgsl" with { type: "text" };
import pickShader from "../../shaders/decode_pick.wgsl" with { type: "text" };
import tokensShader from "../../shaders/decode_tokens.wgsl" with { type: "text" };
import type { GpuAllocation } from "../gpu/allocator.ts";
import type { Engine } from "../tensor/engine.ts";
import { declareKernel } from "../tensor/kernel.ts";
import { withRandom } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Linear } from "../nn/linear.ts";
import type { KvCache, Llama } from "./llama.ts";
import type { SamplingOptions } from "./sampling.ts";
import { DecodedIds } from "./decoded_ids.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

/** The stream of the sampler's Philox draws; decode_sample.wgsl's STREAM. */
export const SAMPLE_STREAM = 0x5a3d;
/** decode_sample.wgsl keeps the top-k candidates in workgroup memory: MAX_TOP_K. */
export const MAX_GPU_TOP_K = 256;
/** Invocations per workgroup of decode_layer.wgsl and decode_sample.wgsl. */
const WG = 64;
/**
 * Invocations of decode_tokens.wgsl's one workgroup: llvmpipe runs it as chunks of 8 on one thread
 * and switches between them at every barrier, so fewer chunks cost less; 32 still gives the widest
 * phases one pass.
 */
const TOKENS_WG = 32;
/** Storage buffers the layer kernel binds. */
const LAYER_BUFFERS = 14;

type LayerBuffer =
  | "x"
  | "work"
  | "kc"
  | "vc"
  | "rot"
  | "n1"
  | "wq"
  | "wk"
  | "wv"
  | "wo"
  | "n2"
  | "wg"
  | "wu"
  | "wd";
type SampleBuffer = "x" | "work" | "nf" | "head_w" | "embed" | "ids";

/** The buffers each entry point reads or writes ("auto" layouts hold only those). */
const LAYER_USES: Record<string, readonly LayerBuffer[]> = {
  qkv: ["x", "work", "kc", "vc", "rot", "n1", "wq", "wk", "wv"],
  attend: ["work", "kc", "vc"],
  attend_scores_long: ["work", "kc"],
  attend_softmax_long: ["work"],
  attend_mix_long: ["work", "vc"],
  out_proj: ["x", "work", "wo"],
  ffn_up: ["x", "work", "n2", "wg", "wu"],
  ffn_down: ["x", "work", "wd"],
};
const SAMPLE_USES: Record<string, readonly SampleBuffer[]> = {
  head: ["x", "work", "nf", "head_w"],
  sample: ["x", "work", "embed", "ids"],
  feed: ["x", "embed"],
};

function pick<B extends string>(
  all: Record<B, GpuAllocation>,
  uses: readonly B[] | undefined,
): Partial<Record<B, GpuAllocation>> {
  if (!uses) return all;
  return Object.fromEntries(uses.map((b) => [b, all[b]])) as Partial<Record<B, GpuAllocation>>;
}

/** decode_params.wgsl's fields, shared by the three kernels. */
export const DECODE_PARAMS = {
  dim: "u32",
  hidden: "u32",
  heads: "u32",
  kv_heads: "u32",
  dh: "u32",
  max_len: "u32",
  stride: "u32",
  layers: "u32",
  vocab: "u32",
  pos: "u32",
  index: "u32",
  count: "u32",
  token: "u32",
  eps: "f32",
  scale: "f32",
  temperature: "f32",
  top_k: "u32",
  seed: "u32",
  q_at: "u32",
  att_at: "u32",
  hid_at: "u32",
  xn_at: "u32",
  scores_at: "u32",
  logits_at: "u32",
  nf_off: "u32",
  head_off: "u32",
  embed_off: "u32",
  start: "u32",
  stop: "u32",
} as const;
export type DecodeParams = Record<keyof typeof DECODE_PARAMS, number>;

const LAYER_KERNEL = declareKernel({
  name: "decode layer",
  source: paramsShader + layerShader + phasesShader,
  params: DECODE_PARAMS,
  buffers: ["x", "work", "kc", "vc", "rot", "n1", "wq", "wk", "wv", "wo", "n2", "wg", "wu", "wd"],
});

export const SAMPLE_KERNEL = declareKernel({
  name: "decode sample",
  source: withRandom(paramsShader + sampleShader + pickShader),
  params: DECODE_PARAMS,
  buffers: ["x", "work", "nf", "head_w", "embed", "ids"],
});

const TOKENS_KERNEL = declareKernel({
  name: "decode tokens",
  source: withRandom(paramsShader + tokensShader + pickShader),
  params: DECODE_PARAMS,
  buffers: ["x", "work", "rot", "wts", "kv", "ids"],
});

/** Tokens one `tokens` dispatch decodes at most. */
export const TOKENS_PER_DISPATCH = 64;
/**
 * Loop iterations of the busiest invocation of the one-workgroup, whole-rows schedules (an upper
 * bound, with `cacheLength` cached positions): per layer of the `fused` schedule, and per token
 * of the `tokens` schedule (every layer, head and sampler of decode_tokens.wgsl). A loop of k
 * trips counts k + 1: llvmpipe's counter also ticks on the pass that leaves it.
 */
export function laneIterations(
  model: Llama,
  cacheLength: number,
  sampling: SamplingOptions,
): { layer: number; head: number; draw: number; token: number; split: number } {
  const { dim, hidden, heads, kvHeads, vocab } = model.config;
  const dh = model.headDim;
  const per = (units: number, wg = WG) => Math.ceil(units / wg);
  // `outer` units spread over a workgroup of wg, each running a loop of `inner` trips.
  const spread = (outer: number, inner: number, wg = WG) => per(outer, wg) * (inner + 2) + 1;
  const layer = 2 * dim + spread((dim + 2 * kvHeads * dh) / 2, dim) +
    spread(heads * cacheLength, dh) + spread(heads * dh, 2 * cacheLength) +
    spread(dim, dim) + spread(hidden, dim) + spread(dim, hidden);
  const head = dim + spread(vocab, dim);
  const { temperature, topK } = sampling;
  const greedy = temperature === 0 || topK === 1;
  // A strided pass and a tree per candidate; the full draw also walks one chunk.
  const drawIn = (wg: number) =>
    greedy
      ? per(vocab, wg) + 8
      : topK === 0 || topK >= vocab
      ? 3 * per(vocab, wg) + 2 * wg
      : (topK + 1) * (per(vocab, wg) + 8) + 2 * topK;
  const draw = drawIn(WG);
  // decode_tokens.wgsl counts in vec4s: 8 rows, 4 positions or 4 features an invocation.
  const [d4, h4, dh4, quads] = [dim / 4, hidden / 4, dh / 4, Math.ceil(cacheLength / 4)];
  const octs = (n: number) => Math.ceil(n / 8);
  // Attention takes the heads of a kv group two at a time.
  const pairs = kvHeads * Math.ceil(heads / kvHeads / 2);
  const lanes = (outer: number, inner: number) => spread(outer, inner, TOKENS_WG);
  const normed = d4 + 1 + lanes(d4, 0);
  const tokenLayer = 2 * normed + lanes(octs(dim + 2 * kvHeads * dh), d4) +
    lanes(pairs * quads, dh4) + lanes(pairs * dh4, quads) + lanes(octs(dim), d4) +
    lanes(octs(hidden), 2 * d4 + 1) + lanes(octs(dim), h4) + 1;
  const token = model.layers.length * tokenLayer + normed + lanes(octs(vocab), d4) +
    drawIn(TOKENS_WG) + lanes(d4, 0) + 2;
  // The split schedule's phases, each its own dispatch over as many workgroups as it has units
  // (up to the adapter's limit): the busiest invocation of any of them.
  const maxGroups = model.engine.gpu.limits.maxComputeWorkgroupsPerDimension;
  const over = (units: number, inner: number) =>
    spread(units, inner, Math.min(per(units), maxGroups) * WG);
  const split = Math.max(
    dim + 1 + over((dim + 2 * kvHeads * dh) / 2, dim),
    over(dim, dim),
    dim + 1 + over(hidden, dim),
    over(dim, hidden),
    dim + 1 + over(vocab, dim),
    draw,
  );
  return {
    layer: margin(layer),
    head: margin(head + draw + per(dim)),
    draw: margin(draw + per(dim)),
    token: margin(token),
    split: Math.max(margin(split), splitAttention(model, cacheLength).loops),
  };
}

/** Loop exits of the sampler's trees and the token loop itself, with room to spare. */
function margin(n: number): number {
  return Math.ceil(n * 1.1) + 64;
}

/**
 * How the split schedule attends over `length` cached positions, and the loops of its busiest
 * invocation (an upper bound, as laneIterations counts). `passes` null: attend_head, a workgroup
 * per head whose invocations each loop ⌈length / 64⌉ · (dh + 2) + ⌈dh / 64⌉ · length times (a GPU,
 * or within llvmpipe's budget). Otherwise (llvmpipe, a longer cache) an invocation per score, a
 * workgroup per head's softmax, and the weighted sum of the values in passes over the positions,
 * [start, stop) each, short enough for the budget.
 */
export function splitAttention(
  model: Llama,
  length: number,
): { passes: [number, number][] | null; loops: number } {
  const { heads } = model.config;
  const dh = model.headDim;
  const maxGroups = model.engine.gpu.limits.maxComputeWorkgroupsPerDimension;
  const per = (units: number, wg = WG) => Math.ceil(units / wg);
  // Per workgroup: ⌈units / groups⌉ units, the groups as many as there are units, up to the limit.
  const each = (units: number, wg: number) => per(units, Math.min(per(units, wg), maxGroups) * wg);
  const tree = 2 * (Math.log2(WG) + 1);
  const perHead = per(length) * (dh + 2) + per(length) + per(dh) * (length + 2) + tree + 3;
  const single = margin(each(heads, 1) * (perHead + 1) + 1);
  if (!model.engine.gpu.isSoftware || single <= LOOP_BUDGET) return { passes: null, loops: single };
  const scores = each(heads * length, WG) * (dh + 2) + 1;
  const softmax = each(heads, 1) * (3 * (per(length) + 1) + tree + 1) + 1;
  // The mix's invocations hold `units` features, each walking a pass's positions once.
  const units = each(heads * dh, WG);
  const chunk = Math.max(1, Math.floor(LOOP_BUDGET / 2 / units) - 2);
  const passes: [number, number][] = [];
  for (let start = 0; start < length; start += chunk) {
    passes.push([start, Math.min(length, start + chunk)]);
  }
  const mix = units * (Math.min(chunk, length) + 2) + 1;
  return { passes, loops: margin(Math.max(scores, softmax, mix)) };
}

/** Whether decode_tokens.wgsl can read every row and head as whole vec4s. */
function fourWide(model: Llama): boolean {
  const { dim, hidden } = model.config;
  return dim % 4 === 0 && hidden % 4 === 0 && model.headDim % 4 === 0;
}

/**
 * How a token's work is laid out: `tokens` decodes up to TOKENS_PER_DISPATCH tokens in one
 * dispatch and one workgroup, from a packed copy of the weights and caches read as vec4s (dim,
 * hidden and the head width multiples of 4; invocations compute 8 rows each); `fused` runs a whole
 * layer in one workgroup (one dispatch per layer, one for head and sampler); `split` gives each
 * of a layer's five phases its own dispatch over many workgroups. `laneRows`: an invocation
 * computes whole rows (llvmpipe: no barriers), else a workgroup computes a row and sums it in a
 * tree (a GPU).
 */
export interface DecodePlan {
  schedule: "tokens" | "fused" | "split";
  laneRows: boolean;
}

/**
 * The plan that pays on this adapter: on a CPU rasteriser, where every dispatch is a round trip
 * through its thread pool, many tokens per dispatch (one per layer when the tokens schedule cannot
 * take the model: widths, bindings, loops); on a GPU, phases spread over workgroups.
 */
export function defaultDecodePlan(
  model: Llama,
  cacheLength = model.config.maxLen,
  sampling: SamplingOptions = { temperature: 0, topK: 0 },
): DecodePlan {
  if (!model.engine.gpu.isSoftware) return { schedule: "split", laneRows: false };
  const loops = laneIterations(model, cacheLength, sampling);
  if (tokensBlocker(model, cacheLength, loops.token) === null) {
    return { schedule: "tokens", laneRows: true };
  }
  // Past the budget a layer's rows are spread over workgroups, a few per invocation (which
  // FusedDecoder refuses where even that loops past the budget: splitBlocker).
  const fits = Math.max(loops.layer, loops.head) <= LOOP_BUDGET;
  return { schedule: fits ? "fused" : "split", laneRows: true };
}

/**
 * Why the split schedule with whole rows per invocation cannot decode `model` on llvmpipe with a
 * cache of `cacheLength` (a phase's busiest invocation loops past the budget), or null.
 */
function splitBlocker(model: Llama, splitLoops: number): string | null {
  if (!model.engine.gpu.isSoftware || splitLoops <= LOOP_BUDGET) return null;
  return `the split schedule would loop ${splitLoops} times in one invocation, over the budget ` +
    `of ${LOOP_BUDGET}`;
}

/** Why the `tokens` schedule cannot decode `model` (its widths, bindings or loops), or null. */
function tokensBlocker(model: Llama, cacheLength: number, tokenLoops: number): string | null {
  if (!fourWide(model)) {
    return "the tokens schedule reads vec4s: dim, hidden and the head width must be multiples of 4";
  }
  const limit = model.engine.gpu.limits.maxStorageBufferBindingSize;
  if (packedBytes(model, cacheLength).some((b) => b > limit)) {
    return "the packed weights or caches exceed one binding";
  }
  if (tokenLoops > LOOP_BUDGET) {
    return `the tokens schedule would loop ${tokenLoops} times in one invocation, over the ` +
      `budget of ${LOOP_BUDGET}`;
  }
  return null;
}

/** Bytes of the packed weights and of the packed caches. */
function packedBytes(model: Llama, cacheLength: number): [number, number] {
  const { kvHeads, layers } = model.config;
  const weights = model.parameters().reduce((n, t) => n + t.size, 0);
  return [weights * 4, layers * 2 * roundUp4(cacheLength) * kvHeads * model.headDim * 4];
}

function linearsOf(model: Llama): [string, Linear][] {
  return model.layers.flatMap((l, i) => {
    const at = `model.layers.${i}`;
    const { q, k, v, o } = l.attn;
    const { gate, up, down } = l.mlp;
    return [
      [`${at}.self_attn.q_proj`, q],
      [`${at}.self_attn.k_proj`, k],
      [`${at}.self_attn.v_proj`, v],
      [`${at}.self_attn.o_proj`, o],
      [`${at}.mlp.gate_proj`, gate],
      [`${at}.mlp.up_proj`, up],
      [`${at}.mlp.down_proj`, down],
    ] as [string, Linear][];
  });
}

/**
 * Why the GPU sampler cannot draw from `model`'s logits with these options, or null: a top-k it
 * does not hold, a draw that loops past llvmpipe's budget, an embedding over one binding.
 */
export function gpuSamplerBlocker(model: Llama, sampling: SamplingOptions): string | null {
  const { topK } = sampling;
  if (topK > MAX_GPU_TOP_K && topK < model.config.vocab) {
    return `top-k ${topK} is above the GPU sampler's ${MAX_GPU_TOP_K}`;
  }
  const software = model.engine.gpu.isSoftware;
  if (software && laneIterations(model, 1, sampling).draw > LOOP_BUDGET) {
    return `top-k ${topK} over ${model.config.vocab} tokens loops past llvmpipe's budget`;
  }
  if (model.embed.size * 4 > model.engine.gpu.limits.maxStorageBufferBindingSize) {
    return `${model.embed.name} is over the adapter's storage binding size`;
  }
  return null;
}

/**
 * Why the fused path cannot decode `model` with these sampling options (the layer-by-layer path
 * can), or null: a pruning input transform or a bias on a Linear, a top-k the GPU sampler does
 * not hold, a tensor past the adapter's binding limits, or (given the cache length) a default
 * plan that loops past llvmpipe's budget.
 */
export function fusedDecodeBlocker(
  model: Llama,
  sampling?: SamplingOptions,
  cacheLength?: number,
): string | null {
  for (const [name, l] of linearsOf(model)) {
    if (l.inputTransform) {
      return `${name} has an input transform (pruning); the fused path multiplies dense weights`;
    }
    if (l.bias) return `${name} has a bias, which the fused path does not add`;
  }
  const sampler = sampling && gpuSamplerBlocker(model, sampling);
  if (sampler) return sampler;
  const limits = model.engine.gpu.limits;
  if (limits.maxStorageBuffersPerShaderStage < LAYER_BUFFERS) {
    return `the adapter binds ${limits.maxStorageBuffersPerShaderStage} storage buffers per ` +
      `stage, the fused layer kernel ${LAYER_BUFFERS}`;
  }
  const big = model.parameters().find((t) => t.size * 4 > limits.maxStorageBufferBindingSize);
  if (big) return `${big.name} is over the adapter's storage binding size`;
  if (cacheLength !== undefined) {
    const s = sampling ?? { temperature: 0, topK: 0 };
    const plan = defaultDecodePlan(model, cacheLength, s);
    if (plan.schedule === "split" && plan.laneRows) {
      return splitBlocker(model, laneIterations(model, cacheLength, s).split);
    }
  }
  return null;
}

/** n rounded up to a multiple of 4: decode_tokens.wgsl reads vectors and rows as vec4s. */
function roundUp4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/**
 * Offsets (in floats, multiples of 4) of the scratch vectors in the work buffer, and the length
 * of a head's row of scores (the cache length rounded up to whole vec4s).
 */
interface WorkLayout {
  q: number;
  att: number;
  hid: number;
  xn: number;
  scores: number;
  stride: number;
  logits: number;
  size: number;
}

function workLayout(model: Llama, cacheLength: number): WorkLayout {
  const { dim, hidden, heads, vocab } = model.config;
  const [d, h, stride] = [roundUp4(dim), roundUp4(hidden), roundUp4(cacheLength)];
  const scores = 3 * d + h;
  const logits = scores + heads * stride;
  return {
    q: 0,
    att: d,
    hid: 2 * d,
    xn: 2 * d + h,
    scores,
    stride,
    logits,
    size: logits + roundUp4(vocab),
  };
}

/** The sampler's settings: a u32 seed and the options of sampleToken. */
export interface GpuSampling extends SamplingOptions {
  seed: number;
}

/**
 * The `tokens` schedule's copies: weights packed in kernel order, every layer's caches (`stride`
 * rows each, zeros past the prefill), and the offsets in vec4s of the final norm, head and
 * embedding.
 */
interface Packed {
  weights: Tensor;
  caches: Tensor;
  nf: number;
  head: number;
  embed: number;
}

/** Copies the model's weights and `cache` (in order with the recorded work) into two buffers. */
function pack(model: Llama, cache: KvCache, stride: number): Packed {
  const e = model.engine;
  const order = model.layers.flatMap((l) => [
    l.inputNorm.weight,
    l.attn.q.weight,
    l.attn.k.weight,
    l.attn.v.weight,
    l.attn.o.weight,
    l.postNorm.weight,
    l.mlp.gate.weight,
    l.mlp.up.weight,
    l.mlp.down.weight,
  ]);
  const tail = model.config.tied ? [model.norm.weight, model.embed] : [
    model.norm.weight,
    model.head,
    model.embed,
  ];
  const all = [...order, ...tail];
  const weights = e.empty([all.reduce((n, t) => n + t.size, 0)], "f32", "decode packed weights");
  const at: number[] = [];
  let offset = 0;
  for (const t of all) {
    at.push(offset / 4);
    e.gpu.copy(t.storage, 0, weights.storage, offset * 4, t.size * 4);
    offset += t.size;
  }
  const width = model.config.kvHeads * model.headDim;
  const layerFloats = stride * width;
  const caches = e.zeros([cache.layers.length * 2 * layerFloats], "f32", "decode packed caches");
  const filled = cache.length * width * 4;
  cache.layers.forEach((c, l) => {
    if (filled === 0) return;
    e.gpu.copy(c.k.storage, 0, caches.storage, 2 * l * layerFloats * 4, filled);
    e.gpu.copy(c.v.storage, 0, caches.storage, (2 * l + 1) * layerFloats * 4, filled);
  });
  e.keep(weights, caches);
  const n = order.length;
  return { weights, caches, nf: at[n], head: at[n + 1], embed: at[all.length - 1] };
}

/**
 * Decodes one sequence on the GPU through `cache` (filled by model.prefill): token `index` is
 * sampled into a GPU list of `capacity` ids, which `readIds` reads back. The `tokens` schedule
 * decodes into its own copy of the cache, made here (the model's cache keeps the prefill and
 * only its length follows); the others append to the model's cache.
 */
export class FusedDecoder {
  private readonly e: Engine;
  private readonly x: Tensor;
  private readonly work: Tensor;
  private readonly ids: DecodedIds;
  private readonly layout: WorkLayout;
  private readonly constants: Record<string, number>;
  private readonly packed: Packed | null;
  /** The `tokens` schedule's tokens per dispatch, within the loop budget. */
  readonly tokensPerDispatch: number;

  constructor(
    readonly model: Llama,
    readonly cache: KvCache,
    readonly capacity: number,
    readonly sampling: GpuSampling,
    readonly plan: DecodePlan = defaultDecodePlan(model, cache.maxLen, sampling),
  ) {
    const blocker = fusedDecodeBlocker(model, sampling);
    if (blocker) throw new Error(`fused decoding: ${blocker}`);
    if (cache.batch !== 1) throw new RangeError("fused decoding: the cache must hold 1 sequence");
    this.e = model.engine;
    const loops = laneIterations(model, cache.maxLen, sampling);
    if (plan.schedule === "tokens") {
      if (!plan.laneRows) throw new RangeError("fused decoding: the tokens schedule is lanes only");
      const why = tokensBlocker(model, cache.maxLen, loops.token);
      if (why) throw new RangeError(`fused decoding: ${why}`);
    }
    const single = Math.max(loops.layer, loops.head);
    if (plan.laneRows && plan.schedule === "fused" && single > LOOP_BUDGET) {
      throw new RangeError(
        `fused decoding: the fused schedule would loop ${single} times in one invocation, ` +
          `over the budget of ${LOOP_BUDGET}`,
      );
    }
    const split = plan.schedule === "split" && plan.laneRows && splitBlocker(model, loops.split);
    if (split) throw new RangeError(`fused decoding: ${split}`);
    this.tokensPerDispatch = Math.max(
      1,
      Math.min(TOKENS_PER_DISPATCH, Math.floor(LOOP_BUDGET / loops.token)),
    );
    this.layout = workLayout(model, cache.maxLen);
    this.ids = new DecodedIds(this.e, capacity, "fused decoding");
    this.x = this.e.zeros([model.config.dim], "f32", "decode residual");
    this.work = this.e.zeros([this.layout.size], "f32", "decode work");
    this.e.keep(this.x, this.work);
    this.constants = { LANE_ROWS: plan.laneRows ? 1 : 0 };
    this.packed = plan.schedule === "tokens" ? pack(model, cache, this.layout.stride) : null;
  }

  /** Samples token `index` from logits [1, vocab] (the prefill's) and embeds it as the input. */
  sampleFrom(logits: Tensor, index: number): void {
    const { vocab } = this.model.config;
    if (logits.size !== vocab) {
      throw new RangeError(`fused decoding: logits of ${logits.size} values, vocabulary ${vocab}`);
    }
    this.ids.check(index, 1);
    this.e.gpu.copy(logits.storage, 0, this.work.storage, this.layout.logits * 4, vocab * 4);
    this.dispatchSample("sample", index, 0, [1]);
  }

  /** Sets the input to the embedding of `token` (chosen on the host). */
  feed(token: number): void {
    if (!(Number.isInteger(token) && token >= 0 && token < this.model.config.vocab)) {
      throw new RangeError(`fused decoding: token ${token} is outside the vocabulary`);
    }
    this.dispatchSample("feed", 0, token, [1]);
  }

  /**
   * Records `count` tokens: the current input goes through every layer at the cache's next
   * position and the head, token `from + i` is sampled and becomes the next input.
   */
  decode(from: number, count = 1): void {
    const at = this.cache.length;
    if (at + count > this.cache.maxLen) {
      throw new RangeError(
        `fused decoding: ${count} more positions do not fit the cache (${at} of ${this.cache.maxLen})`,
      );
    }
    this.ids.check(from, count);
    if (this.packed) {
      const n = this.tokensPerDispatch;
      for (let i = 0; i < count; i += n) {
        this.dispatchTokens(from + i, at + i, Math.min(n, count - i));
      }
    } else {
      for (let i = 0; i < count; i++) this.stepLayers(from + i, at + i);
    }
    this.cache.length = at + count;
  }

  private stepLayers(index: number, at: number): void {
    this.model.layers.forEach((_, i) => this.dispatchLayer(i, at));
    if (this.plan.schedule === "fused") return this.dispatchSample("head_sample", index, 0, [1]);
    this.dispatchSample("head", 0, 0, [this.groups(this.model.config.vocab)]);
    this.dispatchSample("sample", index, 0, [1]);
  }

  /** The logits of the last step, [vocab]. */
  async logits(): Promise<Float32Array> {
    const { vocab } = this.model.config;
    const bytes = await this.e.gpu.read(this.work.storage, this.layout.logits * 4, vocab * 4);
    return new Float32Array(bytes);
  }

  /** Ids [from, from + count) sampled so far; submits the recorded steps. */
  readIds(from: number, count: number): Promise<number[]> {
    return this.ids.read(from, count);
  }

  dispose(): void {
    this.packed?.weights.dispose();
    this.packed?.caches.dispose();
    this.x.dispose();
    this.work.dispose();
    this.ids.dispose();
  }

  /** Workgroups of a split phase over `units` rows, row pairs or heads. */
  private groups(units: number): number {
    const n = this.plan.laneRows ? Math.ceil(units / WG) : units;
    return Math.max(1, Math.min(n, this.e.gpu.limits.maxComputeWorkgroupsPerDimension));
  }

  /** The parameters of every kernel: position `pos`, token `index` (and `count` of them). */
  private params(pos: number, index: number, count = 1, token = 0): DecodeParams {
    const m = this.model;
    const { dim, hidden, heads, kvHeads, normEps, vocab, layers } = m.config;
    const w = this.layout;
    const s = this.sampling;
    return {
      dim,
      hidden,
      heads,
      kv_heads: kvHeads,
      dh: m.headDim,
      max_len: this.cache.maxLen,
      stride: w.stride,
      layers,
      vocab,
      pos,
      index,
      count,
      token,
      eps: normEps,
      scale: 1 / Math.sqrt(m.headDim),
      temperature: s.temperature,
      top_k: s.topK,
      seed: s.seed >>> 0,
      q_at: w.q,
      att_at: w.att,
      hid_at: w.hid,
      xn_at: w.xn,
      scores_at: w.scores,
      logits_at: w.logits,
      nf_off: this.packed?.nf ?? 0,
      head_off: this.packed?.head ?? 0,
      embed_off: this.packed?.embed ?? 0,
      start: 0,
      stop: 0,
    };
  }

  private dispatchLayer(i: number, pos: number): void {
    const m = this.model;
    const { dim, hidden, heads, kvHeads } = m.config;
    const l = m.layers[i];
    const c = this.cache.layers[i];
    const buffers: Record<LayerBuffer, GpuAllocation> = {
      x: this.x.storage,
      work: this.work.storage,
      kc: c.k.storage,
      vc: c.v.storage,
      rot: m.rotary.storage,
      n1: l.inputNorm.weight.storage,
      wq: l.attn.q.weight.storage,
      wk: l.attn.k.weight.storage,
      wv: l.attn.v.weight.storage,
      wo: l.attn.o.weight.storage,
      n2: l.postNorm.weight.storage,
      wg: l.mlp.gate.weight.storage,
      wu: l.mlp.up.weight.storage,
      wd: l.mlp.down.weight.storage,
    };
    const params = this.params(pos, 0);
    const run = (entry: string, units: number) =>
      LAYER_KERNEL.dispatch(this.e.gpu, {
        entry,
        label: `decode ${entry}`,
        constants: this.constants,
        params,
        buffers: pick(buffers, LAYER_USES[entry]),
        workgroups: [this.plan.schedule === "fused" ? 1 : this.groups(units)],
      });
    if (this.plan.schedule === "fused") return run("layer", 1);
    run("qkv", (dim + 2 * kvHeads * m.headDim) / 2);
    const { passes } = splitAttention(m, pos + 1);
    const attend = (entry: string, groups: number, p = params) =>
      LAYER_KERNEL.dispatch(this.e.gpu, {
        entry,
        label: `decode ${entry}`,
        constants: this.constants,
        params: p,
        buffers: pick(buffers, LAYER_USES[entry]),
        workgroups: [Math.min(groups, this.e.gpu.limits.maxComputeWorkgroupsPerDimension)],
      });
    // Whatever laneRows says: heads take a workgroup each (their invocations share the
    // positions), and the passes an invocation per score or feature.
    if (!passes) {
      attend("attend", heads);
    } else {
      attend("attend_scores_long", Math.ceil((heads * (pos + 1)) / WG));
      attend("attend_softmax_long", heads);
      for (const [start, stop] of passes) {
        attend("attend_mix_long", Math.ceil((heads * m.headDim) / WG), { ...params, start, stop });
      }
    }
    run("out_proj", dim);
    run("ffn_up", hidden);
    run("ffn_down", dim);
  }

  private dispatchTokens(index: number, pos: number, count: number): void {
    const packed = this.packed!;
    TOKENS_KERNEL.dispatch(this.e.gpu, {
      entry: "tokens",
      label: "decode tokens",
      params: this.params(pos, index, count),
      buffers: {
        x: this.x.storage,
        work: this.work.storage,
        rot: this.model.rotary.storage,
        wts: packed.weights.storage,
        kv: packed.caches.storage,
        ids: this.ids.tensor.storage,
      },
      workgroups: [1],
    });
  }

  private dispatchSample(entry: string, index: number, token: number, groups: [number]): void {
    const m = this.model;
    SAMPLE_KERNEL.dispatch(this.e.gpu, {
      entry,
      label: `decode ${entry}`,
      constants: this.constants,
      params: this.params(0, index, 1, token),
      buffers: pick<SampleBuffer>({
        x: this.x.storage,
        work: this.work.storage,
        nf: m.norm.weight.storage,
        head_w: m.head.storage,
        embed: m.embed.storage,
        ids: this.ids.tensor.storage,
      }, SAMPLE_USES[entry]),
      workgroups: groups,
    });
  }
}
