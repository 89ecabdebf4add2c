/**
 * Pre-layer-norm transformer block, as in SASRec implementations:
 * x + drop(attn(ln1(x))), then x + drop(ff(ln2(x))) with ff = Linear → GELU → dropout → Linear;
 * attn drops its probabilities with the same p (nn.MultiheadAttention's dropout).
 */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add, gelu } from "../tensor/ops/elementwise.ts";
import type { AttentionLayout } from "../tensor/ops/attention.ts";
import { SelfAttention } from "./attention.ts";
import { Dropout } from "./dropout.ts";
import { LayerNorm } from "./layernorm.ts";
import { Linear } from "./linear.ts";
import { type ForwardContext, Module } from "./module.ts";

export interface BlockOptions {
  dim: number;
  heads: number;
  /** Width of the feed-forward layer (SASRec uses dim). */
  hidden: number;
  dropout: number;
}

export class FeedForward extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private drop: Dropout;

  constructor(
    engine: Engine,
    dim: number,
    hidden: number,
    dropout: number,
    random: () => number,
    name = "ff",
  ) {
    super();
    this.fc1 = new Linear(engine, dim, hidden, random, { name: `${name}.fc1` });
    this.fc2 = new Linear(engine, hidden, dim, random, { name: `${name}.fc2` });
    this.drop = new Dropout(dropout, `${name}.dropout`);
    this.children = { fc1: this.fc1, fc2: this.fc2 };
  }

  forward(x: Tensor, ctx: ForwardContext): Tensor {
    return this.fc2.forward(this.drop.forward(gelu(this.fc1.forward(x)), ctx));
  }
}

export class TransformerBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: SelfAttention;
  readonly ln2: LayerNorm;
  readonly ff: FeedForward;
  private drop1: Dropout;
  private drop2: Dropout;

  constructor(engine: Engine, o: BlockOptions, random: () => number, name = "block") {
    super();
    this.ln1 = new LayerNorm(engine, o.dim, `${name}.ln1`);
    this.attn = new SelfAttention(engine, o.dim, o.heads, random, `${name}.attn`, o.dropout);
    this.ln2 = new LayerNorm(engine, o.dim, `${name}.ln2`);
    this.ff = new FeedForward(engine, o.dim, o.hidden, o.dropout, random, `${name}.ff`);
    this.drop1 = new Dropout(o.dropout, `${name}.dropout1`);
    this.drop2 = new Dropout(o.dropout, `${name}.dropout2`);
    this.children = { ln1: this.ln1, attn: this.attn, ln2: this.ln2, ff: this.ff };
  }

  /** x [B, T, dim] (layout.keyMask marks real positions) or packed [rows, dim]. */
  forward(x: Tensor, ctx: ForwardContext, layout: AttentionLayout = {}): Tensor {
    const h = add(x, this.drop1.forward(this.attn.forward(this.ln1.forward(x), ctx, layout), ctx));
    return add(h, this.drop2.forward(this.ff.forward(this.ln2.forward(h), ctx), ctx));
  }
}
