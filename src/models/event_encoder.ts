/**
 * Event-sequence encoders (CoLES, MLEM): an event encoder (an embedding table per categorical
 * field; the standardised numeric fields and time gap projected by a linear layer; the two
 * concatenated per event) feeding a sequence encoder: a GRU whose last valid state is the
 * client's embedding, or the engine's transformer blocks whose states are mean-pooled over the
 * valid events. The generative decoder rebuilds a sequence's events from its embedding.
 */
import { type EventBatch, packedEvents } from "../data/event_batches.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { concat } from "../tensor/ops/slice.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { seededRandom } from "../tensor/random.ts";
import { normalInit } from "../nn/init.ts";
import { Gru } from "../nn/gru.ts";
import { LayerNorm } from "../nn/layernorm.ts";
import { Linear } from "../nn/linear.ts";
import { EVAL, type ForwardContext, Module } from "../nn/module.ts";
import { TransformerBlock } from "../nn/transformer.ts";

export type SequenceEncoderKind = "gru" | "transformer";

export interface EventEncoderConfig {
  /** Vocabulary size of each categorical field. */
  vocabs: number[];
  /** Numeric inputs per event: numeric fields + 1 (the time gap). */
  numericInputs: number;
  categoryDim: number;
  numericDim: number;
  encoder: SequenceEncoderKind;
  /** The embedding's size: GRU hidden units or transformer width. */
  hidden: number;
  /** Transformer only. */
  layers: number;
  heads: number;
  /** Longest sequence the transformer's position table covers. */
  maxLen: number;
}

/** Floats per event that EventFeatures produces: every field's embedding, then the numerics. */
export function eventFeatureWidth(c: EventEncoderConfig): number {
  return c.vocabs.length * c.categoryDim + c.numericDim;
}

/** Per event: field embeddings and projected numerics, concatenated → [rows · steps, width]. */
export class EventFeatures extends Module {
  readonly tables: Tensor[];
  readonly numeric: Linear;
  readonly width: number;

  constructor(engine: Engine, c: EventEncoderConfig, random: () => number, name = "events") {
    super();
    this.tables = c.vocabs.map((v, k) =>
      engine.parameter(
        normalInit(v * c.categoryDim, 1 / Math.sqrt(c.categoryDim), random),
        [v, c.categoryDim],
        `${name}.field${k}`,
      )
    );
    this.numeric = new Linear(engine, c.numericInputs, c.numericDim, random, {
      name: `${name}.numeric`,
    });
    this.tables.forEach((t, k) => (this.params[`field${k}`] = t));
    this.children = { numeric: this.numeric };
    this.width = eventFeatureWidth(c);
  }

  /**
   * Padded: [rows · steps, width] (row r · steps + t). Packed: [Σ lengths, width], the valid events
   * only, each row's after the previous row's (for the GRU, which takes either).
   */
  forward(b: EventBatch, layout: "padded" | "packed" = "padded"): Tensor {
    const e = this.numeric.weight.engine;
    const { events: n, categorical, numeric } = layout === "packed"
      ? packedEvents(b)
      : { events: b.rows * b.steps, categorical: b.categorical, numeric: b.numeric };
    const fields = this.tables.map((t, k) =>
      embedding(t, e.tensor(categorical[k], [n], "i32", `field ${k} ids`))
    );
    const inputs = e.tensor(numeric, [n, numeric.length / n], "f32", "numeric inputs");
    return concat([...fields, this.numeric.forward(inputs)], 1);
  }
}

/** One embedding per row of a batch: [rows, hidden]. */
export class EventEncoder extends Module {
  readonly features: EventFeatures;
  private readonly gru: Gru | null = null;
  private readonly input: Linear | null = null;
  private readonly blocks: TransformerBlock[] = [];
  private readonly norm: LayerNorm | null = null;
  private readonly positions: Tensor | null = null;

  constructor(
    readonly engine: Engine,
    readonly config: EventEncoderConfig,
    seed: number,
    name = "encoder",
  ) {
    super();
    const random = seededRandom(seed);
    this.features = new EventFeatures(engine, config, random, `${name}.events`);
    this.children = { events: this.features };
    if (config.encoder === "gru") {
      this.gru = new Gru(engine, this.features.width, config.hidden, random, `${name}.gru`);
      this.children.gru = this.gru;
      return;
    }
    const d = config.hidden;
    this.input = new Linear(engine, this.features.width, d, random, { name: `${name}.input` });
    this.positions = engine.parameter(
      normalInit(config.maxLen * d, 1 / Math.sqrt(d), random),
      [config.maxLen, d],
      `${name}.positions`,
    );
    this.params.positions = this.positions;
    for (let l = 0; l < config.layers; l++) {
      const block = new TransformerBlock(
        engine,
        { dim: d, heads: config.heads, hidden: 2 * d, dropout: 0 },
        random,
        `${name}.block${l}`,
      );
      this.blocks.push(block);
      this.children[`block${l}`] = block;
    }
    this.norm = new LayerNorm(engine, d, `${name}.norm`);
    Object.assign(this.children, { input: this.input, norm: this.norm });
  }

  forward(b: EventBatch, ctx: ForwardContext = EVAL): Tensor {
    if (this.gru) {
      return this.gru.last(this.features.forward(b, "packed"), b.rows, b.steps, b.lengths);
    }
    return this.pooledTransformer(this.features.forward(b), b, ctx);
  }

  private pooledTransformer(x: Tensor, b: EventBatch, ctx: ForwardContext): Tensor {
    const e = this.engine;
    const d = this.config.hidden;
    if (b.steps > this.config.maxLen) {
      throw new RangeError(
        `transformer encoder: ${b.steps} events over its maxLen ${this.config.maxLen}`,
      );
    }
    const n = b.rows * b.steps;
    const posIds = Int32Array.from({ length: n }, (_, i) => i % b.steps);
    let h = add(
      this.input!.forward(x),
      embedding(this.positions!, e.tensor(posIds, [n], "i32", "positions")),
    );
    const mask = new Int32Array(n);
    b.lengths.forEach((len, r) => mask.fill(1, r * b.steps, r * b.steps + len));
    const keyMask = e.tensor(mask, [b.rows, b.steps], "i32", "event mask");
    h = reshape(h, [b.rows, b.steps, d]);
    for (const block of this.blocks) h = block.forward(h, ctx, { keyMask });
    h = this.norm!.forward(reshape(h, [n, d]));
    return matmul(e.tensor(meanPoolMatrix(b), [b.rows, n], "f32", "mean pool"), h);
  }
}

/** [rows, rows · steps]: row r averages its valid events. */
function meanPoolMatrix(b: EventBatch): Float32Array {
  const n = b.rows * b.steps;
  const m = new Float32Array(b.rows * n);
  b.lengths.forEach((len, r) => {
    for (let t = 0; t < len; t++) m[r * n + r * b.steps + t] = 1 / len;
  });
  return m;
}

/** [rows · steps, rows]: every event row of sequence r copies the sequence's embedding. */
function repeatMatrix(rows: number, steps: number): Float32Array {
  const m = new Float32Array(rows * steps * rows);
  for (let r = 0; r < rows; r++) for (let t = 0; t < steps; t++) m[(r * steps + t) * rows + r] = 1;
  return m;
}

/** What the decoder predicts per event: logits per categorical field, numerics and time gap. */
export interface Reconstruction {
  logits: Tensor[];
  numeric: Tensor;
}

/**
 * Rebuilds events from an embedding: a GRU reads, at every step, the embedding and a one-hot of
 * the step (so all it knows of the sequence comes through the embedding), then linear heads
 * predict each categorical field and the numeric inputs.
 */
export class EventDecoder extends Module {
  private readonly gru: Gru;
  private readonly heads: Linear[];
  private readonly numeric: Linear;

  constructor(
    readonly engine: Engine,
    readonly config: EventEncoderConfig,
    readonly embeddingDim: number,
    seed: number,
    name = "decoder",
  ) {
    super();
    const random = seededRandom(seed);
    const h = config.hidden;
    this.gru = new Gru(engine, embeddingDim + config.maxLen, h, random, `${name}.gru`);
    this.heads = config.vocabs.map((v, k) =>
      new Linear(engine, h, v, random, { name: `${name}.field${k}` })
    );
    this.numeric = new Linear(engine, h, config.numericInputs, random, { name: `${name}.numeric` });
    this.children = { gru: this.gru, numeric: this.numeric };
    this.heads.forEach((l, k) => (this.children[`field${k}`] = l));
  }

  forward(z: Tensor, b: EventBatch): Reconstruction {
    const e = this.engine;
    const n = b.rows * b.steps;
    if (b.steps > this.config.maxLen) {
      throw new RangeError(
        `event decoder: ${b.steps} events over its maxLen ${this.config.maxLen}`,
      );
    }
    const repeated = matmul(
      e.tensor(repeatMatrix(b.rows, b.steps), [n, b.rows], "f32", "repeat"),
      z,
    );
    const step = new Float32Array(n * this.config.maxLen);
    for (let i = 0; i < n; i++) step[i * this.config.maxLen + (i % b.steps)] = 1;
    const x = concat([repeated, e.tensor(step, [n, this.config.maxLen], "f32", "step one-hot")], 1);
    const hs = reshape(this.gru.states(x, b.rows, b.steps, b.lengths), [n, this.config.hidden]);
    return { logits: this.heads.map((l) => l.forward(hs)), numeric: this.numeric.forward(hs) };
  }
}
