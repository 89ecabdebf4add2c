/**
 * Peak GPU memory of event-sequence SSL training (CoLES, generative, MLEM; GRU or transformer
 * encoder), estimated from the configuration before anything is allocated, so that a
 * configuration that cannot fit is refused with the estimate (recommender's memory.ts: the same
 * slack and runtime allowance). Activations are counted in floats per event: every tensor a step
 * creates stays alive until the step's scope closes, so the forward's intermediates all count, plus
 * the gradients in flight at the backward's widest point. A GRU encoder takes its events packed
 * (valid events only), the transformer and the decoder take padded rows (rows × steps).
 */
import type { EventEncoderConfig } from "../models/event_encoder.ts";
import { F32, withSlack } from "./memory.ts";

export interface SslMemoryShape {
  encoder: EventEncoderConfig;
  objective: { decoder: boolean; teacher: boolean };
  /** The frozen CoLES encoder (MLEM). */
  teacher: EventEncoderConfig | null;
  /** The GRUs run the tiled kernels, which pad a hidden size to a multiple of 4. */
  tiledGru: boolean;
  /** Rows and padded steps of the largest training batch, and its valid events. */
  trainRows: number;
  trainSteps: number;
  trainEvents: number;
  /** Rows and padded steps of the largest embedding pass (whole sequences, no tape), and events. */
  embedRows: number;
  embedSteps: number;
  embedEvents: number;
}

export interface SslMemoryEstimate {
  parameters: number;
  optimizer: number;
  gradients: number;
  activations: number;
  objective: number;
  evaluation: number;
  /** Peak of a training step, with the size-class slack and the runtime's buffers. */
  step: number;
  /** The larger of a training step and an embedding pass. */
  total: number;
}

/**
 * Floats per event a transformer block of this encoder (feed-forward 2d wide, no dropout) keeps
 * per unit of width: its norms, q, k, v, attention output, projections with their biases,
 * feed-forward and residual sums. Measured with the allocator: 23.6 (d = 64, 12,800 events).
 */
const SAVED_PER_BLOCK = 24;

function featureWidth(c: EventEncoderConfig): number {
  return c.vocabs.length * c.categoryDim + c.numericDim;
}

/** Parameters of a GRU from `input` to `hidden` units (weights and biases of three gates). */
function gruParameters(input: number, hidden: number): number {
  return 3 * hidden * (input + hidden + 2);
}

/** GRU units as its kernels run them: the tiled ones pad to a multiple of 4. */
function gruWidth(h: number, tiled: boolean): number {
  return tiled ? Math.ceil(h / 4) * 4 : h;
}

/**
 * Floats per event of a GRU's forward: its input projection (3H; the kernels add the biases), then
 * states, gates and previous states (6H). Padded units run on copies: the padded projection
 * beside its zero columns, wider states, and the states sliced back.
 */
function gruForward(h: number, tiled: boolean): number {
  const wide = gruWidth(h, tiled);
  const pad = wide - h;
  return 3 * h + 6 * wide + (pad ? 3 * wide + 3 * pad + h : 0);
}

/** The GRU backward's gradients in flight: of the states, input and recurrent gates (7H). */
function gruBackward(h: number, tiled: boolean): number {
  const wide = gruWidth(h, tiled);
  return 7 * wide + (wide > h ? 4 * h : 0);
}

/** Parameters of the event encoder: field tables, numeric projection and sequence encoder. */
export function encoderParameters(c: EventEncoderConfig): number {
  const d = c.hidden;
  const features = c.vocabs.reduce((a, v) => a + v * c.categoryDim, 0) +
    (c.numericInputs + 1) * c.numericDim;
  if (c.encoder === "gru") return features + gruParameters(featureWidth(c), d);
  // Per block: q, k, v, o (d² + d each), two norms, a d → 2d → d feed-forward.
  const block = 4 * (d * d + d) + 4 * d + (2 * d * d + 2 * d) + (2 * d * d + d);
  return features + (featureWidth(c) + 1) * d + c.maxLen * d + c.layers * block + 2 * d;
}

/** Parameters of the generative decoder: a GRU fed embedding and step, a head per field. */
export function decoderParameters(c: EventEncoderConfig): number {
  const h = c.hidden;
  return gruParameters(h + c.maxLen, h) +
    c.vocabs.reduce((a, v) => a + (h + 1) * v, 0) + (h + 1) * c.numericInputs;
}

/**
 * Floats per event of the encoder's forward: ids, numeric inputs, their projection (before and
 * after its bias), field embeddings and the concatenation; then the GRU, or the transformer's input projection,
 * position ids and embeddings, blocks, final norm and the mean-pooling matrix (`rows` per event).
 */
function encoderForward(c: EventEncoderConfig, rows: number, tiled: boolean): number {
  const features = c.vocabs.length + c.numericInputs + c.numericDim + 2 * featureWidth(c);
  if (c.encoder === "gru") return features + gruForward(c.hidden, tiled);
  return features + 3 + (4 + SAVED_PER_BLOCK * c.layers) * c.hidden + rows;
}

/** Floats per event of the gradients in flight at the encoder's widest backward point. */
function encoderBackward(c: EventEncoderConfig, tiled: boolean): number {
  // A transformer block's: measured at 2–4d.
  return c.encoder === "gru" ? gruBackward(c.hidden, tiled) : 4 * c.hidden;
}

/**
 * Floats per event of the decoder's forward and its reconstruction loss: the repeat matrix
 * (`rows` per event), the repeated embedding, step one-hot and their concatenation, its GRU,
 * each head's logits before and after the bias, and the targets, mask and squared errors.
 */
function decoderForward(c: EventEncoderConfig, rows: number, tiled: boolean): number {
  const h = c.hidden;
  const logits = c.vocabs.reduce((a, v) => a + 2 * v, 0);
  return rows + 2 * h + 2 * c.maxLen + gruForward(h, tiled) + logits + 7 * c.numericInputs +
    3 * c.vocabs.length;
}

/** The decoder's widest backward point: its GRU's, the heads' summed state gradient, logits'. */
function decoderBackward(c: EventEncoderConfig, tiled: boolean): number {
  return gruBackward(c.hidden, tiled) + c.hidden + c.vocabs.reduce((a, v) => a + v, 0) +
    c.numericInputs;
}

/**
 * Floats of a batch's row-level objective buffers: the normalised embeddings and their
 * gradients, and the similarity matrix with its gradient (CoLES's pairs, MLEM's SigLIP).
 */
function objectiveFloats(s: SslMemoryShape): number {
  const r = s.trainRows;
  const pairs = 2 * r * r + 3 * r * s.encoder.hidden;
  if (s.teacher) return pairs + r * s.teacher.hidden;
  return s.objective.decoder ? 0 : pairs;
}

export function estimateSslMemory(s: SslMemoryShape): SslMemoryEstimate {
  const enc = s.encoder;
  const trained = encoderParameters(enc) + (s.objective.decoder ? decoderParameters(enc) : 0) +
    (s.objective.teacher ? 2 : 0);
  const frozen = s.teacher ? encoderParameters(s.teacher) : 0;
  const parameters = (trained + frozen) * F32;
  const optimizer = 2 * trained * F32;
  // A parameter's gradient may meet a second copy while it accumulates.
  const gradients = 2 * trained * F32;
  const padded = s.trainRows * s.trainSteps;
  const eventsOf = (c: EventEncoderConfig) => c.encoder === "gru" ? s.trainEvents : padded;
  const tiled = s.tiledGru;
  let floats = eventsOf(enc) * encoderForward(enc, s.trainRows, tiled);
  let backward = eventsOf(enc) * encoderBackward(enc, tiled);
  if (s.objective.decoder) {
    floats += padded * decoderForward(enc, s.trainRows, tiled);
    backward = Math.max(backward, padded * decoderBackward(enc, tiled));
  }
  if (s.teacher) floats += eventsOf(s.teacher) * encoderForward(s.teacher, s.trainRows, tiled);
  const activations = (floats + backward) * F32;
  const objective = objectiveFloats(s) * F32;
  // The final evaluation embeds with the trained encoder beside a random one of its shape, with
  // the optimiser's moments still held.
  const embedded = enc.encoder === "gru" ? s.embedEvents : s.embedRows * s.embedSteps;
  const evaluation = (encoderParameters(enc) + embedded * encoderForward(enc, s.embedRows, tiled)) *
    F32;
  const step = withSlack(parameters + optimizer + gradients + activations + objective);
  const total = Math.max(step, withSlack(parameters + optimizer + evaluation));
  return { parameters, optimizer, gradients, activations, objective, evaluation, step, total };
}
