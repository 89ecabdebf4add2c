/**
 * Incremental decoding's attention: the keys and values of every position decoded so far live in
 * a per-layer cache, and each step attends one new query per sequence to them. Inference only:
 * these ops record nothing on the tape and refuse inputs that need a gradient.
 */
import shader from "../../../shaders/attention_cache.wgsl" with { type: "text" };
import { LOOP_BUDGET } from "../../gpu/device.ts";
import { assertDType, declareKernel, groupsFor } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";

const CACHE_KERNEL = declareKernel({
  name: "attention over a kv cache",
  source: shader,
  params: {
    n: "u32",
    heads: "u32",
    kv_heads: "u32",
    dh: "u32",
    max_len: "u32",
    len: "u32",
    pos: "u32",
    rows: "u32",
    scale: "f32",
    start: "u32",
    stop: "u32",
  },
  buffers: ["src", "q", "cache", "scores", "out", "state"],
});

const WG = 64;
/** The longest cache attendToCache takes (and Llama.newCache allocates). */
export const MAX_CACHE_LENGTH = 32768;
/**
 * Positions one pass of the `top` and `mix` kernels walks: a loop of k trips counts k + 1 on
 * llvmpipe, and nothing else in those invocations loops, so a pass stays within LOOP_BUDGET.
 */
export const CACHE_PASS_POSITIONS = LOOP_BUDGET - 1;

/** The position ranges [from, to) of the passes over `length` cached positions. */
export function cachePasses(length: number): [number, number][] {
  const out: [number, number][] = [];
  for (let from = 0; from < length; from += CACHE_PASS_POSITIONS) {
    out.push([from, Math.min(length, from + CACHE_PASS_POSITIONS)]);
  }
  return out;
}

function noGrad(op: string, ...ts: Tensor[]): void {
  const e = ts[0].engine;
  if (e.tape && ts.some((t) => t.requiresGrad)) {
    throw new Error(`${op}: decoding with a kv cache has no backward; run it without a tape`);
  }
}

/**
 * Writes rows [B, n, W] into rows [pos, pos + n) of cache [B, maxLen, W] in place (the keys or
 * values of n new positions).
 */
export function appendToCache(cache: Tensor, rows: Tensor, pos: number): void {
  assertDType("appendToCache", cache, "f32");
  assertDType("appendToCache", rows, "f32");
  noGrad("appendToCache", rows);
  const [B, maxLen, W] = cache.shape;
  if (
    cache.rank !== 3 || rows.rank !== 3 || rows.shape[0] !== B || rows.shape[2] !== W ||
    !(Number.isInteger(pos) && pos >= 0 && pos + rows.shape[1] <= maxLen)
  ) {
    throw new ShapeError(
      "appendToCache",
      `rows ${shapeString(rows.shape)} at position ${pos} do not fit cache ${
        shapeString(cache.shape)
      }`,
    );
  }
  const e = cache.engine;
  if (!rows.size) return;
  CACHE_KERNEL.dispatch(e.gpu, {
    label: "kv cache append",
    entry: "append",
    params: {
      n: rows.size,
      heads: 1,
      kv_heads: 1,
      dh: W,
      max_len: maxLen,
      len: 0,
      pos,
      rows: rows.shape[1],
      scale: 0,
      start: 0,
      stop: 0,
    },
    buffers: { src: rows.storage, cache: cache.storage },
    workgroups: groupsFor(e, rows.size, WG),
  });
}

export interface CacheAttentionOptions {
  heads: number;
  kvHeads: number;
  /** Cached positions to attend to: rows [0, length) of the caches. */
  length: number;
}

/**
 * softmax(q_h · k_hᵀ / sqrt(dh)) v_h over the first `length` cached positions for each query head:
 * q [B, heads · dh] (one query per sequence, the newest position, already in the cache), kCache
 * and vCache [B, maxLen, kvHeads · dh] → [B, heads · dh]. Query head h reads cache head
 * h / (heads / kvHeads).
 */
export function attendToCache(
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  { heads, kvHeads, length }: CacheAttentionOptions,
): Tensor {
  for (const t of [q, kCache, vCache]) assertDType("attendToCache", t, "f32");
  noGrad("attendToCache", q);
  const [B, D] = q.shape;
  const [cb, maxLen, W] = kCache.shape;
  const dh = D / heads;
  if (
    q.rank !== 2 || kCache.rank !== 3 || kCache.shape.join() !== vCache.shape.join() ||
    cb !== B || !Number.isInteger(dh) || heads % kvHeads !== 0 || W !== kvHeads * dh
  ) {
    throw new ShapeError(
      "attendToCache",
      `q ${shapeString(q.shape)} with ${heads} heads, caches ${shapeString(kCache.shape)} and ${
        shapeString(vCache.shape)
      } with ${kvHeads} kv heads do not match`,
    );
  }
  if (!(Number.isInteger(length) && length >= 1 && length <= maxLen)) {
    throw new RangeError(`attendToCache: length ${length} is outside [1, ${maxLen}]`);
  }
  if (maxLen > MAX_CACHE_LENGTH) {
    throw new RangeError(
      `attendToCache: a cache of ${maxLen} positions exceeds ${MAX_CACHE_LENGTH}`,
    );
  }
  const e = q.engine;
  // A score's loop walks the head width (the positions are split into passes below).
  if (e.gpu.isSoftware && dh + 1 > LOOP_BUDGET) {
    throw new ShapeError(
      "attendToCache",
      `a head width of ${dh} loops ${dh + 1} times in one invocation of the score kernel, over ` +
        `the budget of ${LOOP_BUDGET}`,
    );
  }
  const scores = e.empty([B, heads, maxLen], "f32", "cache attention scores");
  const out = e.empty([B, D], "f32", "cache attention");
  // The running max of each row, then the running sum of weights of each output element.
  const state = e.empty([B * heads + out.size], "f32", "cache attention state");
  const params = (n: number, from = 0, to = 0) => ({
    n,
    heads,
    kv_heads: kvHeads,
    dh,
    max_len: maxLen,
    len: length,
    pos: 0,
    rows: 0,
    scale: 1 / Math.sqrt(dh),
    start: from,
    stop: to,
  });
  const scoreCount = B * heads * length;
  CACHE_KERNEL.dispatch(e.gpu, {
    label: "kv cache attention scores",
    entry: "score",
    params: params(scoreCount),
    buffers: { q: q.storage, cache: kCache.storage, scores: scores.storage },
    workgroups: groupsFor(e, scoreCount, WG),
  });
  const passes = cachePasses(length);
  for (const [from, to] of passes) {
    CACHE_KERNEL.dispatch(e.gpu, {
      label: "kv cache attention max",
      entry: "top",
      params: params(B * heads, from, to),
      buffers: { scores: scores.storage, state: state.storage },
      workgroups: groupsFor(e, B * heads, WG),
    });
  }
  for (const [from, to] of passes) {
    CACHE_KERNEL.dispatch(e.gpu, {
      label: "kv cache attention mix",
      entry: "mix",
      params: params(out.size, from, to),
      buffers: {
        cache: vCache.storage,
        scores: scores.storage,
        out: out.storage,
        state: state.storage,
      },
      workgroups: groupsFor(e, out.size, WG),
    });
  }
  scores.dispose();
  state.dispose();
  return out;
}
