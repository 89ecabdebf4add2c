/**
 * A Llama decoder layer: x + o(attention(rope(q(n1 x)), rope(k(n1 x)), v(n1 x))), then
 * h + down(silu(gate(n2 h)) · up(n2 h)), with RMSNorm n1, n2, grouped-query causal attention and
 * no biases. Children carry Hugging Face's names (self_attn.q_proj, mlp.gate_proj, …), so a
 * model's parameter names are those of a Hugging Face checkpoint.
 */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { causalAttention } from "../tensor/ops/attention.ts";
import { appendToCache, attendToCache } from "../tensor/ops/attention_cache.ts";
import { rope } from "../tensor/ops/rope.ts";
import { siluGate } from "../tensor/ops/swiglu.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { Linear } from "./linear.ts";
import { Module } from "./module.ts";
import { RMSNorm } from "./rmsnorm.ts";

export interface DecoderLayerOptions {
  dim: number;
  /** Width of the SwiGLU feed-forward (intermediate_size). */
  hidden: number;
  heads: number;
  /** Key-value heads; heads / kvHeads query heads share each. */
  kvHeads: number;
  normEps: number;
}

/** Where the rows of one forward sit: their positions, and the rotary table they index. */
export interface Positions {
  /** i32 [rows] made with engine.tensor: the position of every row of x. */
  ids: Tensor;
  /** rotaryTable(…) of the model. */
  table: Tensor;
}

/** One layer's cached keys and values: [B, maxLen, kvHeads · headDim] each. */
export interface LayerCache {
  k: Tensor;
  v: Tensor;
}

export class RotaryAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly headDim: number;
  readonly heads: number;
  readonly kvHeads: number;

  constructor(engine: Engine, o: DecoderLayerOptions, random: () => number, name: string) {
    super();
    if (o.dim % o.heads !== 0 || o.heads % o.kvHeads !== 0) {
      throw new RangeError(
        `${name}: dim ${o.dim} with ${o.heads} heads and ${o.kvHeads} kv heads does not divide`,
      );
    }
    this.headDim = o.dim / o.heads;
    this.heads = o.heads;
    this.kvHeads = o.kvHeads;
    const kvDim = this.headDim * o.kvHeads;
    const linear = (i: number, out: number, n: string) =>
      new Linear(engine, i, out, random, { bias: false, name: `${name}.${n}` });
    this.q = linear(o.dim, o.dim, "q_proj");
    this.k = linear(o.dim, kvDim, "k_proj");
    this.v = linear(o.dim, kvDim, "v_proj");
    this.o = linear(o.dim, o.dim, "o_proj");
    this.children = { q_proj: this.q, k_proj: this.k, v_proj: this.v, o_proj: this.o };
  }

  /**
   * residual + attention(x) for x [B, T, dim], every sequence from position 0 (residual shaped
   * as x; the output projection adds onto it); fills `cache` from row 0 when given.
   */
  forward(residual: Tensor, x: Tensor, pos: Positions, cache?: LayerCache): Tensor {
    const q = rope(this.q.forward(x), pos.ids, pos.table);
    const k = rope(this.k.forward(x), pos.ids, pos.table);
    const v = this.v.forward(x);
    if (cache) {
      appendToCache(cache.k, k, 0);
      appendToCache(cache.v, v, 0);
    }
    const a = causalAttention(q, k, v, { heads: this.heads, kvHeads: this.kvHeads });
    return this.o.forwardOnto(residual, a);
  }

  /**
   * One new position per sequence: x [B, 1, dim] at position `at` (pos.ids holds it for every
   * row); its key and value join the cache, and the query attends to positions [0, at].
   */
  step(x: Tensor, pos: Positions, cache: LayerCache, at: number): Tensor {
    const [B, , dim] = x.shape;
    const q = rope(this.q.forward(x), pos.ids, pos.table);
    appendToCache(cache.k, rope(this.k.forward(x), pos.ids, pos.table), at);
    appendToCache(cache.v, this.v.forward(x), at);
    const a = attendToCache(reshape(q, [B, dim]), cache.k, cache.v, {
      heads: this.heads,
      kvHeads: this.kvHeads,
      length: at + 1,
    });
    return this.o.forward(reshape(a, [B, 1, dim]));
  }
}

export class GatedFeedForward extends Module {
  readonly gate: Linear;
  readonly up: Linear;
  readonly down: Linear;

  constructor(engine: Engine, dim: number, hidden: number, random: () => number, name: string) {
    super();
    const linear = (i: number, out: number, n: string) =>
      new Linear(engine, i, out, random, { bias: false, name: `${name}.${n}` });
    this.gate = linear(dim, hidden, "gate_proj");
    this.up = linear(dim, hidden, "up_proj");
    this.down = linear(hidden, dim, "down_proj");
    this.children = { gate_proj: this.gate, up_proj: this.up, down_proj: this.down };
  }

  /** residual + down(silu(gate(x)) · up(x)): the down projection adds onto the residual. */
  forward(residual: Tensor, x: Tensor): Tensor {
    return this.down.forwardOnto(residual, siluGate(this.gate.forward(x), this.up.forward(x)));
  }
}

export class DecoderLayer extends Module {
  readonly inputNorm: RMSNorm;
  readonly attn: RotaryAttention;
  readonly postNorm: RMSNorm;
  readonly mlp: GatedFeedForward;

  constructor(
    engine: Engine,
    options: DecoderLayerOptions,
    random: () => number,
    name: string,
  ) {
    super();
    const { dim, hidden, normEps } = options;
    this.inputNorm = new RMSNorm(engine, dim, `${name}.input_layernorm`, normEps);
    this.attn = new RotaryAttention(engine, options, random, `${name}.self_attn`);
    this.postNorm = new RMSNorm(engine, dim, `${name}.post_attention_layernorm`, normEps);
    this.mlp = new GatedFeedForward(engine, dim, hidden, random, `${name}.mlp`);
    this.children = {
      input_layernorm: this.inputNorm,
      self_attn: this.attn,
      post_attention_layernorm: this.postNorm,
      mlp: this.mlp,
    };
  }

  /** x [B, T, dim] from position 0 of every sequence; fills `cache` when given. */
  forward(x: Tensor, pos: Positions, cache?: LayerCache): Tensor {
    const h = this.attn.forward(x, this.inputNorm.forward(x), pos, cache);
    return this.mlp.forward(h, this.postNorm.forward(h));
  }

  /** x [B, 1, dim]: the next position `at` of every sequence, through the cache. */
  step(x: Tensor, pos: Positions, cache: LayerCache, at: number): Tensor {
    const h = add(x, this.attn.step(this.inputNorm.forward(x), pos, cache, at));
    return this.mlp.forward(h, this.postNorm.forward(h));
  }
}
