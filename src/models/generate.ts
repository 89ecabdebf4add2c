/**
 * Text generation with a kv cache: one prefill of the prompt, then one cached step per token.
 *
 * Two paths draw the same way: token i with the Philox uniform of (seed, i), on the GPU, reading
 * back only ids, `readEvery` tokens at a time. The fused path (src/models/decode.ts) runs a few
 * kernels per token; the layer-by-layer path runs the model's own layers (Linear input transforms
 * of pruning included) and samples with the fused path's sampler (src/models/gpu_sampler.ts), or
 * on the host where that sampler cannot. "auto" takes the fused path unless fusedDecodeBlocker
 * names a reason not to.
 */
import { randomUniform } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { KvCache, Llama } from "./llama.ts";
import { fusedDecodeBlocker, FusedDecoder, gpuSamplerBlocker, SAMPLE_STREAM } from "./decode.ts";
import { GpuSampler } from "./gpu_sampler.ts";
import { sampleToken, type SamplingOptions } from "./sampling.ts";

export type DecodePath = "fused" | "layers";

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  /** Called with each new token as it is chosen (streaming output). */
  onToken?: (id: number) => void;
  /** Stop after this token (e.g. EOS), which is kept. */
  stopAt?: number;
  /** "auto" (the default): fused unless the model or the options rule it out. */
  decode?: DecodePath | "auto";
  /** Tokens decoded on the GPU between readbacks (default 64). */
  readEvery?: number;
}

export interface Generation {
  ids: number[];
  /** Seconds of the prompt's forward (and the first token's choice) and of the decoding after it. */
  prefillSeconds: number;
  decodeSeconds: number;
  /** Why it stopped: the token budget, the stop token, or the model's context length. */
  stop: "max_tokens" | "stop_token" | "context";
  /** The path that decoded, and why it is not the fused one when "auto" fell back. */
  path: DecodePath;
  fallback?: string;
}

/**
 * Default tokens decoded between two readbacks of the fused path: on llvmpipe under load a
 * readback waits for a scheduler round trip that costs as much as dozens of tokens.
 */
export const DEFAULT_READ_EVERY = 64;

function checkPrompt(model: Llama, prompt: readonly number[]): void {
  if (!prompt.length) throw new RangeError("generate: the prompt has no tokens");
  const { maxLen, vocab } = model.config;
  for (const id of prompt) {
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) {
      throw new RangeError(`generate: prompt token ${id} is outside the vocabulary [0, ${vocab})`);
    }
  }
  if (prompt.length >= maxLen) {
    throw new RangeError(
      `generate: a prompt of ${prompt.length} tokens leaves no room in the context of ${maxLen}`,
    );
  }
}

function checkOptions({ temperature, topK, readEvery }: GenerateOptions): void {
  if (!(temperature >= 0)) throw new RangeError(`temperature must be ≥ 0, got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0)) {
    throw new RangeError(`top-k must be a whole number ≥ 0, got ${topK}`);
  }
  if (readEvery !== undefined && !(Number.isInteger(readEvery) && readEvery >= 1)) {
    throw new RangeError(`generate: readEvery must be a positive integer, got ${readEvery}`);
  }
}

export async function generate(
  model: Llama,
  prompt: readonly number[],
  opts: GenerateOptions,
): Promise<Generation> {
  checkPrompt(model, prompt);
  checkOptions(opts);
  const wanted = opts.decode ?? "auto";
  const cacheLength = Math.min(model.config.maxLen, prompt.length + opts.maxTokens);
  const blocker = wanted === "layers" ? null : fusedDecodeBlocker(model, opts, cacheLength);
  if (wanted === "fused" && blocker) throw new Error(`generate: fused decoding: ${blocker}`);
  const path: DecodePath = wanted === "layers" || blocker ? "layers" : "fused";
  const e = model.engine;
  const cache = model.newCache(1, cacheLength);
  try {
    const t0 = performance.now();
    const logits = model.prefill(
      e.tensor(Int32Array.from(prompt), [1, prompt.length], "i32"),
      cache,
    );
    const run = path === "fused" ? decodeFused : decodeLayers;
    const r = await run(model, cache, logits, opts);
    return {
      ids: r.ids,
      stop: r.stop,
      prefillSeconds: (r.firstAt - t0) / 1000,
      decodeSeconds: (performance.now() - r.firstAt) / 1000,
      path,
      ...(wanted === "auto" && blocker ? { fallback: blocker } : {}),
    };
  } finally {
    cache.dispose();
  }
}

interface Decoded {
  ids: number[];
  stop: Generation["stop"];
  /** performance.now() when the first token was known. */
  firstAt: number;
}

/** Tokens that fit: the budget, or what the cache leaves (the last token is never fed back). */
function tokenLimit(cache: KvCache, maxTokens: number): { limit: number; byContext: boolean } {
  const room = cache.maxLen - cache.length + 1;
  return { limit: Math.min(maxTokens, room), byContext: room < maxTokens };
}

/** Appends `next` and reports whether decoding stops there. */
function accept(
  ids: number[],
  next: number,
  opts: GenerateOptions,
  limit: number,
): "stop_token" | "limit" | null {
  ids.push(next);
  opts.onToken?.(next);
  if (next === opts.stopAt) return "stop_token";
  return ids.length >= limit ? "limit" : null;
}

/**
 * A decoder that records tokens on the GPU and reads back only ids: `start` samples token 0 from
 * the prefill's logits, `record(from, count)` decodes tokens [from, from + count).
 */
interface GpuDecoding {
  start(first: Tensor): void;
  record(from: number, count: number): void;
  readIds(from: number, count: number): Promise<number[]>;
  dispose(): void;
}

/** Records `readEvery` tokens at a time and reads their ids back, until a stop. */
async function decodeOnGpu(
  decoder: GpuDecoding,
  first: Tensor,
  limit: number,
  byContext: boolean,
  opts: GenerateOptions,
): Promise<Decoded> {
  const readEvery = opts.readEvery ?? DEFAULT_READ_EVERY;
  try {
    decoder.start(first);
    first.dispose();
    const ids: number[] = [];
    const [token] = await decoder.readIds(0, 1);
    const firstAt = performance.now();
    let end = accept(ids, token, opts, limit);
    while (!end) {
      const from = ids.length;
      const count = Math.min(readEvery, limit - from);
      decoder.record(from, count);
      for (const id of await decoder.readIds(from, count)) {
        end = accept(ids, id, opts, limit);
        if (end) break;
      }
    }
    const stop = end === "stop_token" ? end : byContext ? "context" : "max_tokens";
    return { ids, stop, firstAt };
  } finally {
    decoder.dispose();
  }
}

function decodeFused(
  model: Llama,
  cache: KvCache,
  first: Tensor,
  opts: GenerateOptions,
): Promise<Decoded> {
  const { limit, byContext } = tokenLimit(cache, opts.maxTokens);
  const fused = new FusedDecoder(model, cache, limit, opts);
  return decodeOnGpu(
    {
      start: (logits) => fused.sampleFrom(logits, 0),
      record: (from, count) => fused.decode(from, count),
      readIds: (from, count) => fused.readIds(from, count),
      dispose: () => fused.dispose(),
    },
    first,
    limit,
    byContext,
    opts,
  );
}

/**
 * The model's own layers, one step per token; the GPU sampler draws each token and feeds it to
 * the next step without a readback, unless it cannot (then every token's logits are read and
 * sampled on the host with the same Philox uniforms).
 */
function decodeLayers(
  model: Llama,
  cache: KvCache,
  first: Tensor,
  opts: GenerateOptions,
): Promise<Decoded> {
  if (gpuSamplerBlocker(model, opts)) return decodeLayersOnHost(model, cache, first, opts);
  const { limit, byContext } = tokenLimit(cache, opts.maxTokens);
  const sampler = new GpuSampler(model, limit, opts);
  let token: Tensor | null = null;
  const next = (logits: Tensor, index: number) => {
    token?.dispose();
    token = sampler.sample(logits, index);
    logits.dispose();
  };
  return decodeOnGpu(
    {
      start: (logits) => next(logits, 0),
      record: (from, count) => {
        for (let i = 0; i < count; i++) next(model.step(token!, cache), from + i);
      },
      readIds: (from, count) => sampler.readIds(from, count),
      dispose: () => {
        token?.dispose();
        sampler.dispose();
      },
    },
    first,
    limit,
    byContext,
    opts,
  );
}

async function decodeLayersOnHost(
  model: Llama,
  cache: KvCache,
  first: Tensor,
  opts: GenerateOptions,
): Promise<Decoded> {
  const e = model.engine;
  const { limit, byContext } = tokenLimit(cache, opts.maxTokens);
  const ids: number[] = [];
  let firstAt = 0;
  let logits = first;
  while (true) {
    const index = ids.length;
    const draw = () => randomUniform(opts.seed, SAMPLE_STREAM, index);
    const next = sampleToken(await logits.readF32(), opts, draw);
    logits.dispose();
    if (!ids.length) firstAt = performance.now();
    const end = accept(ids, next, opts, limit);
    if (end === "stop_token") return { ids, stop: end, firstAt };
    if (end === "limit") return { ids, stop: byContext ? "context" : "max_tokens", firstAt };
    const input = e.tensor([next], [1, 1], "i32");
    logits = model.step(input, cache);
    input.dispose();
  }
}
