/**
 * Causal multi-head self-attention with separate q, k, v projections and an output projection;
 * `dropout` drops attention probabilities inside the fused kernel.
 */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { type AttentionLayout, causalAttention } from "../tensor/ops/attention.ts";
import { Dropout } from "./dropout.ts";
import { Linear } from "./linear.ts";
import { type ForwardContext, Module } from "./module.ts";

export class SelfAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  private drop: Dropout;

  constructor(
    engine: Engine,
    readonly dim: number,
    readonly heads: number,
    random: () => number,
    name = "attn",
    dropout = 0,
  ) {
    super();
    if (dim % heads !== 0) {
      throw new RangeError(`${name}: dim ${dim} is not divisible by ${heads} heads`);
    }
    this.q = new Linear(engine, dim, dim, random, { name: `${name}.q` });
    this.k = new Linear(engine, dim, dim, random, { name: `${name}.k` });
    this.v = new Linear(engine, dim, dim, random, { name: `${name}.v` });
    this.out = new Linear(engine, dim, dim, random, { name: `${name}.out` });
    this.drop = new Dropout(dropout, `${name}.dropout`);
    this.children = { q: this.q, k: this.k, v: this.v, out: this.out };
  }

  /** x [B, T, dim] with an optional key mask, or packed sequences [rows, dim] (see layout). */
  forward(x: Tensor, ctx: ForwardContext, layout: AttentionLayout = {}): Tensor {
    const drop = this.drop;
    const a = causalAttention(this.q.forward(x), this.k.forward(x), this.v.forward(x), {
      heads: this.heads,
      ...layout,
      dropout: drop.active(ctx) ? { p: drop.p, seed: drop.seed(ctx), step: ctx.step } : undefined,
    });
    return this.out.forward(a);
  }
}
