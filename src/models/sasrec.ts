/**
 * SASRec (Kang & McAuley 2018) with tied item embeddings: item + learned position embeddings →
 * pre-LN transformer blocks → final layer norm. Item 0 is padding: its row is never a target,
 * and padded positions are masked out of attention.
 */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { gatherRows } from "../tensor/ops/gather.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { type EvalBatch, type PackedRows, packRows } from "../data/batches.ts";
import type { AttentionLayout } from "../tensor/ops/attention.ts";
import type { Scorer } from "./scorer.ts";
import { normalInit } from "../nn/init.ts";
import { seededRandom } from "../tensor/random.ts";
import { LayerNorm } from "../nn/layernorm.ts";
import { EVAL, type ForwardContext, Module } from "../nn/module.ts";
import { TransformerBlock } from "../nn/transformer.ts";

export interface SasRecConfig {
  /** Number of real items; ids run 1..items, 0 is padding. */
  items: number;
  maxLen: number;
  dim: number;
  blocks: number;
  heads: number;
  dropout: number;
  seed: number;
}

export class SasRec extends Module implements Scorer {
  readonly itemEmbedding: Tensor;
  readonly positionEmbedding: Tensor;
  readonly blocks: TransformerBlock[];
  readonly finalNorm: LayerNorm;

  constructor(readonly engine: Engine, readonly config: SasRecConfig) {
    super();
    const { items, maxLen, dim } = config;
    const random = seededRandom(config.seed);
    const table = normalInit((items + 1) * dim, 1 / Math.sqrt(dim), random);
    table.fill(0, 0, dim);
    this.itemEmbedding = engine.parameter(table, [items + 1, dim], "item_embedding");
    this.positionEmbedding = engine.parameter(
      normalInit(maxLen * dim, 1 / Math.sqrt(dim), random),
      [maxLen, dim],
      "position_embedding",
    );
    this.blocks = Array.from({ length: config.blocks }, (_, i) =>
      new TransformerBlock(
        engine,
        { dim, heads: config.heads, hidden: dim, dropout: config.dropout },
        random,
        `blocks.${i}`,
      ));
    this.finalNorm = new LayerNorm(engine, dim, "final_norm");
    this.params = {
      item_embedding: this.itemEmbedding,
      position_embedding: this.positionEmbedding,
    };
    this.children = { final_norm: this.finalNorm };
    this.blocks.forEach((b, i) => (this.children[`blocks.${i}`] = b));
  }

  get items(): number {
    return this.config.items;
  }

  get seqLen(): number {
    return this.config.maxLen;
  }

  /**
   * Scores of every item after each history: last hidden state · item table. The histories are
   * packed, so only their real positions run through the blocks (every history has one).
   */
  score(batch: EvalBatch): Tensor {
    const { packed } = packRows(batch.inputs, batch.batch, batch.seqLen);
    const h = this.forwardPacked(packed, EVAL);
    const last = Int32Array.from({ length: batch.batch }, (_, u) => {
      if (packed.offsets[u + 1] === packed.offsets[u]) {
        throw new RangeError(`SASRec.score: the history of user ${batch.users[u]} is empty`);
      }
      return packed.offsets[u + 1] - 1;
    });
    return matmul(gatherRows(h, last), this.itemEmbedding, { transB: true });
  }

  /**
   * ids: i32 [B, L] left-padded with 0 (host copy kept), L ≤ maxLen. Returns hidden states
   * [B, L, dim]. A batch may drop leading columns that are padding in every row: the positions
   * count from the right (the last column is always position maxLen − 1), and padded keys are
   * masked, so the result equals that of the full-length batch.
   */
  forward(ids: Tensor, ctx: ForwardContext): Tensor {
    const [batch, len] = ids.shape;
    const { maxLen } = this.config;
    if (len > maxLen) {
      throw new RangeError(`sequence length ${len} exceeds the model's maxLen ${maxLen}`);
    }
    const host = ids.host as Int32Array;
    const positions = new Int32Array(batch * len);
    const mask = new Int32Array(batch * len);
    for (let i = 0; i < host.length; i++) {
      positions[i] = maxLen - len + (i % len);
      mask[i] = host[i] !== 0 ? 1 : 0;
    }
    const e = this.engine;
    const keyMask = e.tensor(mask, [batch, len], "i32", "key mask");
    return this.encode(
      ids,
      e.tensor(positions, [batch, len], "i32", "positions"),
      { keyMask },
      ctx,
    );
  }

  /**
   * The hidden states [rows, dim] of a packed batch: only real positions are computed, each
   * sequence attends within itself, and positions are those of the left-padded rows, so every
   * row equals the padded forward's row for the same position (dropout masks aside).
   */
  forwardPacked(batch: PackedRows, ctx: ForwardContext): Tensor {
    if (batch.seqLen > this.config.maxLen) {
      throw new RangeError(
        `sequence length ${batch.seqLen} exceeds the model's maxLen ${this.config.maxLen}`,
      );
    }
    const e = this.engine;
    const rows = batch.inputs.length;
    const shift = this.config.maxLen - batch.seqLen;
    const positions = shift ? batch.positions.map((p) => p + shift) : batch.positions;
    return this.encode(
      e.tensor(batch.inputs, [rows], "i32", "packed items"),
      e.tensor(positions, [rows], "i32", "packed positions"),
      {
        segments: {
          offsets: e.tensor(batch.offsets, [batch.rows + 1], "i32", "segments"),
          maxLength: batch.maxLength,
        },
      },
      ctx,
    );
  }

  /** Item and position embeddings → blocks → final norm, in either layout. */
  private encode(
    ids: Tensor,
    positions: Tensor,
    layout: AttentionLayout,
    ctx: ForwardContext,
  ): Tensor {
    const e = this.engine;
    let x = add(embedding(this.itemEmbedding, ids), embedding(this.positionEmbedding, positions));
    for (const block of this.blocks) {
      // Without a tape no block's intermediates outlive it: freeing them block by block keeps
      // evaluation at one block's worth of activations instead of the whole model's.
      const input = x;
      x = e.tape
        ? block.forward(input, ctx, layout)
        : e.tidy(() => block.forward(input, ctx, layout));
    }
    return this.finalNorm.forward(x);
  }
}
