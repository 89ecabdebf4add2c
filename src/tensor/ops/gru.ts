/**
 * The GRU recurrence, fused: one kernel runs a pass of time steps forward with the hidden states
 * in workgroup memory (eight sequences per workgroup), one runs them backward and sums the bias
 * gradients; the recurrent weights' gradient is a matmul over the saved states, which hold live
 * steps only (padding takes no work there). Two kernel pairs, chosen per adapter (GRU_VARIANTS):
 * "lanes" for GPUs, "tiled" for llvmpipe.
 */
import forwardShader from "../../../shaders/gru_forward.wgsl" with { type: "text" };
import backwardShader from "../../../shaders/gru_backward.wgsl" with { type: "text" };
import tiledForwardShader from "../../../shaders/gru_tiled_forward.wgsl" with { type: "text" };
import tiledBackwardShader from "../../../shaders/gru_tiled_backward.wgsl" with { type: "text" };
import { assertDType, declareKernel, generatedKernels } from "../kernel.ts";
import type { Engine } from "../engine.ts";
import type { Binding } from "../../gpu/gpu.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { matmul } from "./matmul.ts";
import { columnSums } from "./reduce.ts";
import { reshape } from "./shape.ts";
import { concat, slice } from "./slice.ts";
import { VariantChoice } from "../variants.ts";
import {
  type BackwardProduct,
  backwardProduct,
  tiledBackwardFunctions,
  tiledConstants,
  tiledForwardFunctions,
  type WeightsBinding,
  weightsBinding,
} from "./gru_tiled.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";

const GRU_PARAMS = { batch: "u32", steps: "u32", hidden: "u32", t0: "u32", t1: "u32" } as const;
const FORWARD_BUFFERS = ["gx", "w_hh", "b_ih", "b_hh", "seqs", "hs", "work", "hprev"] as const;
const BACKWARD_BUFFERS = [
  "w_hh",
  "seqs",
  "work",
  "hprev",
  "dhs",
  "carry",
  "dgx",
  "dgh",
  "dbias",
] as const;

const GRU_FORWARD_KERNEL = declareKernel({
  name: "gru forward",
  source: forwardShader,
  params: GRU_PARAMS,
  buffers: FORWARD_BUFFERS,
});

const GRU_BACKWARD_KERNEL = declareKernel({
  name: "gru backward",
  source: backwardShader,
  params: GRU_PARAMS,
  buffers: BACKWARD_BUFFERS,
});

/**
 * How the recurrence is laid out on the adapter. "lanes": 64 invocations a workgroup, one hidden
 * unit per invocation, 8 sequences (GPU-shaped). "tiled": an invocation owns `units` units of all
 * `seq` sequences of its workgroup, every loaded weight serving the `seq` sequences and every
 * loaded state the 3·units gate outputs (llvmpipe-shaped: it gathers loads lane by lane).
 */
export interface GruVariant {
  name: string;
  layout: "lanes" | "tiled";
  seq: number;
  units: number;
}

export const GRU_VARIANTS: readonly GruVariant[] = [
  { name: "lanes 8", layout: "lanes", seq: 8, units: 1 },
  { name: "tiled 8x8", layout: "tiled", seq: 8, units: 8 },
];

const TILED_SOURCES = {
  forward: { name: "gru tiled forward", text: tiledForwardShader },
  backward: { name: "gru tiled backward", text: tiledBackwardShader },
};

/** Where a kernel reads W_hh from: the tiled kernels a uniform copy where it fits one. */
function weightsFor(e: Engine, v: GruVariant, hidden: number): WeightsBinding {
  return v.layout === "tiled"
    ? weightsBinding(hidden, Number(e.gpu.limits.maxUniformBufferBindingSize))
    : "storage";
}

/**
 * W_hh bound as a kernel reads it: a uniform copy, made in order with the step's other commands
 * (W_hh changes every step), is a window of the weights' bytes, since a pooled buffer may be
 * larger than a uniform binding may; `release` frees it once its dispatches are recorded.
 */
function boundWeights(e: Engine, wHH: Tensor, weights: WeightsBinding) {
  if (weights === "storage") return { binding: wHH.storage as Binding, release: () => {} };
  const bytes = wHH.size * 4;
  const copy = e.gpu.allocator.alloc(bytes, "gru w_hh (uniform)", UNIFORM_COPY);
  e.gpu.copy(wHH.storage, 0, copy, 0, bytes);
  return {
    binding: { alloc: copy, offset: 0, size: bytes } as Binding,
    release: () => e.gpu.release(copy),
  };
}

const UNIFORM_COPY = GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST;

/** A tiled kernel's shape: direction, variant, hidden size, where it reads W_hh from and (the
 * backward) how it forms W_hhᵀ · dgh. */
interface TiledShape {
  direction: "forward" | "backward";
  v: GruVariant;
  hidden: number;
  weights: WeightsBinding;
  product?: BackwardProduct;
}

/**
 * The tiled kernel of a shape, compiled on first use; those at the default shape are declared so
 * that the declaration check reads their sources (other shapes compile the same text with other
 * constants).
 */
const tiledKernel = generatedKernels<TiledShape>(
  ({ direction, v, hidden, weights, product }: TiledShape) => ({
    name: TILED_SOURCES[direction].name,
    source: tiledConstants(v, hidden) +
      (direction === "forward"
        ? tiledForwardFunctions(v, weights)
        : tiledBackwardFunctions(v, weights, product ?? "shared gradients")) +
      TILED_SOURCES[direction].text,
    params: GRU_PARAMS,
    buffers: direction === "forward" ? FORWARD_BUFFERS : BACKWARD_BUFFERS,
  }),
  ({ direction, v, hidden, weights, product }: TiledShape) =>
    `${direction}|${v.name}|${hidden}|${weights}|${product ?? ""}`,
  (["uniform", "storage"] as const).flatMap((weights) => [
    { direction: "forward" as const, v: GRU_VARIANTS[1], hidden: 64, weights },
    ...(["partial sums", "shared gradients"] as const).map((product) => ({
      direction: "backward" as const,
      v: GRU_VARIANTS[1],
      hidden: 64,
      weights,
      product,
    })),
  ]),
);

/** The variant this engine's GRUs run: tiled on a software adapter, lanes on a GPU. */
export const GRU_CHOICE = new VariantChoice("GRU", GRU_VARIANTS, {
  software: GRU_VARIANTS[1].name,
  gpu: GRU_VARIANTS[0].name,
});

/** The kernels' workgroup memory holds at most this many hidden units (4 per thread). */
export const GRU_MAX_HIDDEN = 256;
const WG = 64;
/** Sequences per workgroup of every variant (the lanes of two vec4 in the kernels). */
const SEQ = 8;

/**
 * Time steps per pass, counting the loop iterations of an invocation per step. "lanes": ~units · H
 * (forward) or units · 3H (backward) with units = ⌈H/64⌉. "tiled": its product's loop, ⌈H/4⌉
 * (forward) or at most 3⌈H/4⌉ (backward) iterations of straight-line generated code; the loops
 * run once a pass (lengths, states) fit in the other half of the budget.
 */
export function gruStepsPerPass(
  hidden: number,
  backward: boolean,
  variant: GruVariant = GRU_VARIANTS[0],
): number {
  let perStep: number;
  if (variant.layout === "lanes") {
    const units = Math.ceil(hidden / WG);
    perStep = units * ((backward ? 3 : 1) * hidden + 2) + 2;
  } else {
    perStep = (backward ? 3 : 1) * Math.ceil(hidden / 4) + 4;
  }
  return Math.max(1, Math.floor(LOOP_BUDGET / perStep));
}

/** [batch, steps, hidden] of a call; gx is [B, T, 3H] padded or [Σ lengths, 3H] packed. */
function checkGru(
  gx: Tensor,
  wHH: Tensor,
  [bIH, bHH]: Tensor[],
  lengths: Int32Array,
  packedSteps: number | undefined,
): number[] {
  for (const t of [gx, wHH, bIH, bHH]) assertDType("gru", t, "f32");
  const batch = lengths.length;
  const live = lengths.reduce((a, l) => a + l, 0);
  const threeH = gx.shape[gx.rank - 1];
  const hidden = threeH / 3;
  const steps = gx.rank === 3 ? gx.shape[1] : packedSteps ?? Math.max(1, ...lengths);
  const rowsOk = gx.rank === 3 ? gx.shape[0] === batch : gx.rank === 2 && gx.shape[0] === live;
  const ok = rowsOk && Number.isInteger(hidden) && hidden >= 1 &&
    wHH.rank === 2 && wHH.shape[0] === threeH && wHH.shape[1] === hidden &&
    [bIH, bHH].every((b) => b.rank === 1 && b.shape[0] === threeH);
  if (!ok) {
    throw new ShapeError(
      "gru",
      `want gx [B, T, 3H] or [Σ lengths = ${live}, 3H], w_hh [3H, H], b_ih and b_hh [3H], ` +
        `lengths [B]; got gx ${shapeString(gx.shape)}, w_hh ${shapeString(wHH.shape)}, b_ih ${
          shapeString(bIH.shape)
        }, b_hh ${shapeString(bHH.shape)}, ${batch} lengths`,
    );
  }
  if (hidden > GRU_MAX_HIDDEN) {
    throw new RangeError(`gru: hidden ${hidden} is over the kernels' ${GRU_MAX_HIDDEN}`);
  }
  if (Math.ceil(batch / SEQ) > gx.engine.gpu.limits.maxComputeWorkgroupsPerDimension) {
    throw new RangeError(`gru: batch ${batch} is over the adapter's workgroups per dimension`);
  }
  lengths.forEach((l, i) => {
    if (!(Number.isInteger(l) && l >= 0 && l <= steps)) {
      throw new RangeError(`gru: length ${l} of sequence ${i} is outside [0, ${steps}]`);
    }
  });
  return [batch, steps, hidden];
}

/**
 * Per sequence b (length, first gx row, first saved row, b), longest first: the kernels run the
 * products of a workgroup's sequences up to the longest of them, so sorted, the eight of a group
 * have nearly one length and few products run on padding (as PyTorch's packed sequences shrink
 * the batch step by step). The saved tensors hold the live steps of sequence after sequence in
 * that order; gx holds them in the order of b when packed, else it has `steps` rows a sequence.
 */
function sequenceRows(lengths: Int32Array, steps: number, packed: boolean): Int32Array {
  const seqs = new Int32Array(4 * lengths.length);
  let first = 0;
  const gxRows = lengths.map((l, b) => {
    const row = packed ? first : b * steps;
    first += l;
    return row;
  });
  const order = [...lengths.keys()].sort((a, b) => lengths[b] - lengths[a] || a - b);
  let saved = 0;
  order.forEach((b, i) => {
    seqs.set([lengths[b], gxRows[b], saved, b], 4 * i);
    saved += lengths[b];
  });
  return seqs;
}

/** [t0, t1) passes covering `steps` steps, `per` at a time. */
function passes(steps: number, per: number): [number, number][] {
  const out: [number, number][] = [];
  for (let t0 = 0; t0 < steps; t0 += per) out.push([t0, Math.min(steps, t0 + per)]);
  return out;
}

export interface GruOptions {
  /** Packed gx only: the steps of the output (the longest length, at least 1, when omitted). */
  steps?: number;
  /** Time steps per pass, forward and backward (the iteration budget's when omitted). */
  stepsPerPass?: number;
  /** A variant by name (the engine's, see GRU_CHOICE, when omitted). */
  variant?: string;
}

/** The variant a call runs: the tiled layout needs its states and gate gradients to fit. */
function variantFor(e: Engine, hidden: number, opts: GruOptions): GruVariant {
  const v = opts.variant ? GRU_CHOICE.named(opts.variant) : GRU_CHOICE.of(e);
  const bytes = 3 * hidden * v.seq * 4;
  return v.layout === "tiled" && bytes > e.gpu.limits.maxComputeWorkgroupStorageSize
    ? GRU_VARIANTS[0]
    : v;
}

/** `t` [rows, n] with `pad` zero columns appended (the zeros take no gradient). */
function padColumns(t: Tensor, pad: number): Tensor {
  const zeros = t.engine.zeros([t.shape[0], pad], "f32", "gru padding");
  return concat([t, zeros], 1);
}

/**
 * The tiled kernels read every tensor as vec4 along the hidden units: a hidden size that is not a
 * multiple of 4 runs padded with zero units (whose states stay zero: their gates see zero inputs
 * and weights, so h' = ½·0 + ½·h = 0), the states sliced back; the gradients flow through the
 * padding and slicing ops.
 */
function paddedGru(
  gx: Tensor,
  wHH: Tensor,
  [bIH, bHH]: Tensor[],
  lengths: Int32Array,
  variant: GruVariant,
  opts: GruOptions,
): Tensor {
  const hidden = gx.shape[gx.rank - 1] / 3;
  const pad = (4 - (hidden % 4)) % 4;
  const wide = hidden + pad;
  const rows = gx.size / (3 * hidden);
  const gxP = reshape(
    padColumns(reshape(gx, [rows * 3, hidden]), pad),
    [...gx.shape.slice(0, -1), 3 * wide],
  );
  const wCols = reshape(padColumns(wHH, pad), [3, hidden * wide]);
  const wP = reshape(padColumns(wCols, pad * wide), [3 * wide, wide]);
  const padBias = (b: Tensor) => reshape(padColumns(reshape(b, [3, hidden]), pad), [3 * wide]);
  const hs = gruSequence(gxP, wP, padBias(bIH), padBias(bHH), lengths, {
    ...opts,
    variant: variant.name,
  });
  return slice(hs, 2, 0, hidden);
}

/**
 * Every hidden state of a GRU over variable-length sequences, h₀ = 0. gx is the input projection
 * x·W_ihᵀ without its bias (gates r, z, n), either padded [B, T, 3H] (row b·T + t) or packed
 * [Σ lengths, 3H] (each sequence's live steps after the previous sequence's); w_hh [3H, H], b_ih
 * and b_hh [3H]. Returns hs [B, T, H] (T of a packed gx: opts.steps); past lengths[b] the state
 * is carried, so hs[b, T-1] is the last valid one.
 */
export function gruSequence(
  gx: Tensor,
  wHH: Tensor,
  bIH: Tensor,
  bHH: Tensor,
  lengths: Int32Array,
  opts: GruOptions = {},
): Tensor {
  const [batch, steps, hidden] = checkGru(gx, wHH, [bIH, bHH], lengths, opts.steps);
  const e = gx.engine;
  const variant = variantFor(e, hidden, opts);
  const tiled = variant.layout === "tiled";
  if (tiled && hidden % 4 !== 0) return paddedGru(gx, wHH, [bIH, bHH], lengths, variant, opts);
  const live = lengths.reduce((a, l) => a + l, 0);
  // The kernels write every saved row; with no live step one zero row stands in (for the matmul).
  const saved = (cols: number, what: string) =>
    live > 0 ? e.empty([live, cols], "f32", what) : e.zeros([1, cols], "f32", what);
  const hs = e.empty([batch, steps, hidden], "f32", "gru states");
  const work = saved(4 * hidden, "gru gates");
  const hprev = saved(hidden, "gru previous states");
  const seqs = e.tensor(
    sequenceRows(lengths, steps, gx.rank === 2),
    [batch, 4],
    "i32",
    "gru sequences",
  );
  const params = { batch, steps, hidden };
  const weights = weightsFor(e, variant, hidden);
  const kernel = tiled
    ? tiledKernel({ direction: "forward", v: variant, hidden, weights })
    : GRU_FORWARD_KERNEL;
  const per = opts.stepsPerPass ?? gruStepsPerPass(hidden, false, variant);
  if (batch * steps > 0) {
    const w = boundWeights(e, wHH, weights);
    for (const [t0, t1] of passes(steps, per)) {
      kernel.dispatch(e.gpu, {
        params: { ...params, t0, t1 },
        buffers: {
          gx: gx.storage,
          w_hh: w.binding,
          b_ih: bIH.storage,
          b_hh: bHH.storage,
          seqs: seqs.storage,
          hs: hs.storage,
          work: work.storage,
          hprev: hprev.storage,
        },
        workgroups: [Math.ceil(batch / variant.seq)],
      });
    }
    w.release();
  }
  // The saved gates and states live in the enclosing scope, which also runs the backward.
  return e.record({
    op: "gruSequence",
    inputs: [gx, wHH, bIH, bHH],
    output: hs,
    backward: (dhs) =>
      gruBackward(gx, [wHH, bIH, bHH], [work, hprev, seqs], dhs, {
        ...params,
        live,
        stepsPerPass: opts.stepsPerPass,
        variant,
      }),
  });
}

function gruBackward(
  gx: Tensor,
  [wHH, bIH, bHH]: Tensor[],
  [work, hprev, seqs]: Tensor[],
  dhs: Tensor,
  { batch, steps, hidden, live, stepsPerPass, variant }: {
    batch: number;
    steps: number;
    hidden: number;
    live: number;
    stepsPerPass?: number;
    variant: GruVariant;
  },
): (Tensor | null)[] {
  const e = gx.engine;
  const groups = Math.ceil(batch / variant.seq);
  const carry = e.zeros([batch, hidden], "f32", "gru carried gradient");
  // The kernel writes live steps only: all rows of a packed gx and of the saved tensors (unless
  // there are none), not the padding of a padded gx.
  const packed = gx.rank === 2;
  const dgx = packed ? e.empty(gx.shape, "f32", "gru dgx") : e.zeros(gx.shape, "f32", "gru dgx");
  const dgh = live > 0
    ? e.empty([live, 3 * hidden], "f32", "gru dgh")
    : e.zeros([1, 3 * hidden], "f32", "gru dgh");
  const dbias = e.zeros([Math.max(groups, 1), 6 * hidden], "f32", "gru bias gradient partials");
  const tiled = variant.layout === "tiled";
  const weights = weightsFor(e, variant, hidden);
  const maxShared = Number(e.gpu.limits.maxComputeWorkgroupStorageSize);
  const kernel = tiled
    ? tiledKernel({
      direction: "backward",
      v: variant,
      hidden,
      weights,
      product: backwardProduct(variant, hidden, maxShared),
    })
    : GRU_BACKWARD_KERNEL;
  if (batch * steps > 0) {
    const w = boundWeights(e, wHH, weights);
    for (
      const [t0, t1] of passes(steps, stepsPerPass ?? gruStepsPerPass(hidden, true, variant))
        .reverse()
    ) {
      kernel.dispatch(e.gpu, {
        params: { batch, steps, hidden, t0, t1 },
        buffers: {
          w_hh: w.binding,
          seqs: seqs.storage,
          work: work.storage,
          hprev: hprev.storage,
          dhs: dhs.storage,
          carry: carry.storage,
          dgx: dgx.storage,
          dgh: dgh.storage,
          dbias: dbias.storage,
        },
        workgroups: [groups],
      });
    }
    w.release();
  }
  carry.dispose();
  const dW = wHH.requiresGrad ? matmul(dgh, hprev, { transA: true }) : null;
  dgh.dispose();
  const db = bIH.requiresGrad || bHH.requiresGrad ? columnSums(dbias) : null;
  dbias.dispose();
  const dbIH = bIH.requiresGrad ? slice(db!, 0, 0, 3 * hidden) : null;
  const dbHH = bHH.requiresGrad ? slice(db!, 0, 3 * hidden, 6 * hidden) : null;
  db?.dispose();
  if (!gx.requiresGrad) dgx.dispose();
  return [gx.requiresGrad ? dgx : null, dW, dbIH, dbHH];
}
