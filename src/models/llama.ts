/**
 * A Llama-style decoder language model: token embedding → layers of RMSNorm, grouped-query causal
 * attention with rotary position embeddings and a SwiGLU feed-forward → final RMSNorm → output
 * head (tied to the embedding or its own). Parameter names are those of a Hugging Face Llama
 * checkpoint (model.layers.N.self_attn.q_proj.weight, …; lm_head.weight only when untied).
 *
 * Rotary pairs are adjacent features (llama2.c's and Meta's order): Hugging Face checkpoints
 * rotate half-split pairs, and src/train/hf.ts permutes their q and k rows on the way in and out.
 */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { gatherRows } from "../tensor/ops/gather.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { rotaryTable } from "../tensor/ops/rope.ts";
import { MAX_CACHE_LENGTH } from "../tensor/ops/attention_cache.ts";
import { seededRandom } from "../tensor/random.ts";
import { normalInit } from "../nn/init.ts";
import { Module } from "../nn/module.ts";
import { RMSNorm } from "../nn/rmsnorm.ts";
import { DecoderLayer, type LayerCache, type Positions } from "../nn/decoder.ts";

export interface LlamaConfig {
  vocab: number;
  dim: number;
  /** SwiGLU width (Hugging Face's intermediate_size, llama2.c's hidden_dim). */
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** Longest sequence: the rotary table's and a cache's length. */
  maxLen: number;
  normEps: number;
  ropeTheta: number;
  /** The output head is the token embedding. */
  tied: boolean;
}

/** The configuration's problems, or an error naming the first. */
export function checkLlamaConfig(c: LlamaConfig): void {
  const positive = ["vocab", "dim", "hidden", "layers", "heads", "kvHeads", "maxLen"] as const;
  for (const k of positive) {
    if (!(Number.isInteger(c[k]) && c[k] >= 1)) {
      throw new RangeError(`llama config: ${k} must be a positive integer, got ${c[k]}`);
    }
  }
  if (c.dim % c.heads !== 0 || (c.dim / c.heads) % 2 !== 0) {
    throw new RangeError(`llama config: dim ${c.dim} over ${c.heads} heads is not an even width`);
  }
  if (c.heads % c.kvHeads !== 0) {
    throw new RangeError(`llama config: ${c.heads} heads do not share ${c.kvHeads} kv heads`);
  }
  if (!(c.normEps > 0) || !(c.ropeTheta > 0)) {
    throw new RangeError("llama config: normEps and ropeTheta must be positive");
  }
}

/** Cached keys and values of every layer for `batch` sequences, and how many positions it holds. */
export class KvCache {
  length = 0;

  constructor(readonly layers: LayerCache[], readonly batch: number, readonly maxLen: number) {}

  dispose(): void {
    for (const l of this.layers) {
      l.k.dispose();
      l.v.dispose();
    }
  }
}

export class Llama extends Module {
  readonly embed: Tensor;
  /** The output head [vocab, dim]: the embedding itself when tied. */
  readonly head: Tensor;
  readonly layers: DecoderLayer[];
  readonly norm: RMSNorm;
  /** cos and sin of every position and frequency (not a parameter). */
  readonly rotary: Tensor;

  constructor(readonly engine: Engine, readonly config: LlamaConfig, seed = 0) {
    super();
    checkLlamaConfig(config);
    const { vocab, dim, layers, maxLen, heads } = config;
    const random = seededRandom(seed);
    // GPT-2 and Hugging Face's initializer_range: N(0, 0.02²) for the embedding and head.
    this.embed = engine.parameter(
      normalInit(vocab * dim, 0.02, random),
      [vocab, dim],
      "model.embed_tokens.weight",
    );
    this.layers = Array.from({ length: layers }, (_, i) =>
      new DecoderLayer(
        engine,
        {
          dim,
          hidden: config.hidden,
          heads,
          kvHeads: config.kvHeads,
          normEps: config.normEps,
        },
        random,
        `model.layers.${i}`,
      ));
    this.norm = new RMSNorm(engine, dim, "model.norm", config.normEps);
    this.params = { "model.embed_tokens.weight": this.embed };
    this.head = this.embed;
    if (!config.tied) {
      this.head = engine.parameter(
        normalInit(vocab * dim, 0.02, random),
        [vocab, dim],
        "lm_head.weight",
      );
      this.params["lm_head.weight"] = this.head;
    }
    this.layers.forEach((l, i) => (this.children[`model.layers.${i}`] = l));
    this.children["model.norm"] = this.norm;
    this.rotary = rotaryTable(engine, maxLen, dim / heads, config.ropeTheta);
    engine.keep(this.rotary);
  }

  get headDim(): number {
    return this.config.dim / this.config.heads;
  }

  /**
   * Hidden states [B, T, dim] after the final norm for token ids i32 [B, T] (made with
   * engine.tensor), every sequence starting at position 0. With `cache` (empty, for B
   * sequences), the keys and values of all T positions are kept for decoding on from T.
   */
  forward(ids: Tensor, cache?: KvCache): Tensor {
    const [B, T] = ids.shape;
    if (ids.rank !== 2 || T > this.config.maxLen) {
      throw new RangeError(
        `llama: ids [${ids.shape}] must be [B, T] with T ≤ maxLen ${this.config.maxLen}`,
      );
    }
    if (cache && (cache.length !== 0 || cache.batch !== B)) {
      throw new RangeError(
        `llama: a prefill needs an empty cache for ${B} sequences (it holds ${cache.length} ` +
          `positions of ${cache.batch})`,
      );
    }
    const e = this.engine;
    const positions = Int32Array.from({ length: B * T }, (_, i) => i % T);
    const pos: Positions = {
      ids: e.tensor(positions, [B * T], "i32", "positions"),
      table: this.rotary,
    };
    let x = embedding(this.embed, ids);
    this.layers.forEach((layer, i) => {
      const input = x;
      // Without a tape no layer's intermediates outlive it.
      x = e.tape
        ? layer.forward(input, pos, cache?.layers[i])
        : e.tidy(() => layer.forward(input, pos, cache?.layers[i]));
    });
    if (cache) cache.length = T;
    return this.norm.forward(x);
  }

  /** Logits [N, vocab] of hidden states [N, dim]. */
  logits(hidden: Tensor): Tensor {
    return matmul(hidden, this.head, { transB: true });
  }

  /** An empty cache for `batch` sequences of up to `maxLen` positions (default: the model's). */
  newCache(batch: number, maxLen = this.config.maxLen): KvCache {
    if (maxLen > this.config.maxLen || maxLen > MAX_CACHE_LENGTH) {
      throw new RangeError(
        `llama: a cache of ${maxLen} positions exceeds maxLen ${this.config.maxLen}`,
      );
    }
    const width = this.headDim * this.config.kvHeads;
    const e = this.engine;
    const layers = this.layers.map((_, i) => {
      const k = e.zeros([batch, maxLen, width], "f32", `cache ${i} k`);
      const v = e.zeros([batch, maxLen, width], "f32", `cache ${i} v`);
      e.keep(k, v);
      return { k, v };
    });
    return new KvCache(layers, batch, maxLen);
  }

  /** Logits [B, vocab] of the last position of each prompt ids [B, T]; fills the empty cache. */
  prefill(ids: Tensor, cache: KvCache): Tensor {
    const e = this.engine;
    return e.noGrad(() =>
      e.tidy(() => {
        const [B, T] = ids.shape;
        const h = this.forward(ids, cache);
        const last = Int32Array.from({ length: B }, (_, b) => b * T + T - 1);
        return this.logits(gatherRows(reshape(h, [B * T, this.config.dim]), last));
      })
    );
  }

  /** Logits [B, vocab] after one more token per sequence (ids i32 [B, 1]), through the cache. */
  step(ids: Tensor, cache: KvCache): Tensor {
    const [B] = ids.shape;
    const at = cache.length;
    if (ids.rank !== 2 || ids.shape[1] !== 1 || B !== cache.batch || at >= cache.maxLen) {
      throw new RangeError(
        `llama: step takes ids [${cache.batch}, 1] while the cache has room (${at} of ${cache.maxLen})`,
      );
    }
    const e = this.engine;
    const logits = e.noGrad(() =>
      e.tidy(() => {
        const pos: Positions = {
          ids: e.tensor(new Int32Array(B).fill(at), [B], "i32", "position"),
          table: this.rotary,
        };
        let x = embedding(this.embed, ids);
        this.layers.forEach((layer, i) => {
          const input = x;
          x = e.tidy(() => layer.step(input, pos, cache.layers[i], at));
        });
        return this.logits(reshape(this.norm.forward(x), [B, this.config.dim]));
      })
    );
    cache.length = at + 1;
    return logits;
  }

  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
  }
}

/** A tensor as a file holds it: its shape, float data and the file it came from. */
export interface StoredWeight {
  shape: number[];
  data: Float32Array;
  file: string;
}

/** A loader's complaint about one tensor: its name, the file, and both shapes where known. */
export class WeightError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WeightError";
  }
}

/**
 * Uploads every parameter of `model` from `lookup` (Hugging Face names); a tensor that is
 * missing (`missingFrom` names where it was looked for) or has another shape is an error naming
 * the tensor, the file and both shapes.
 */
export function assignWeights(
  model: Llama,
  lookup: (name: string) => StoredWeight | undefined,
  missingFrom: string,
): void {
  for (const [name, t] of model.namedParameters()) {
    const w = lookup(name);
    if (!w) {
      throw new WeightError(
        `tensor ${name} is missing from ${missingFrom} (the model expects [${t.shape.join(", ")}])`,
      );
    }
    if (w.shape.join() !== t.shape.join() || w.data.length !== t.size) {
      throw new WeightError(
        `tensor ${name} in ${w.file} is [${w.shape.join(", ")}], the model expects [${
          t.shape.join(", ")
        }]`,
      );
    }
    t.engine.gpu.upload(t.storage, w.data);
  }
}
