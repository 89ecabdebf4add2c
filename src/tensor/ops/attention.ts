/** Fused causal multi-head (or grouped-query) self-attention with a key-padding mask. */
import scalarElements from "../../../shaders/attention_scalar.wgsl" with { type: "text" };
import vec4Elements from "../../../shaders/attention_vec4.wgsl" with { type: "text" };
import common from "../../../shaders/attention_common.wgsl" with { type: "text" };
import forwardBody from "../../../shaders/attention_forward.wgsl" with { type: "text" };
import backwardBody from "../../../shaders/attention_backward.wgsl" with { type: "text" };
import forwardRegsBody from "../../../shaders/attention_forward_regs.wgsl" with { type: "text" };
import dkvBody from "../../../shaders/attention_dkv.wgsl" with { type: "text" };
import dkvRegsBody from "../../../shaders/attention_dkv_regs.wgsl" with { type: "text" };
import type { Binding } from "../../gpu/gpu.ts";
import type { Engine } from "../engine.ts";
import { assertDType, assertSameShape, declareKernel, groupsFor } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { withRandom } from "../random.ts";
import { dropoutThreshold } from "./dropout.ts";
import { assertCounterWord } from "./random.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";

/** attention_common.wgsl's uniform. */
const ATTENTION_PARAMS = {
  batches: "u32",
  T: "u32",
  D: "u32",
  heads: "u32",
  dh: "u32",
  b0: "u32",
  scale: "f32",
  seed: "u32",
  step: "u32",
  threshold: "u32",
  keepScale: "f32",
  kvHeads: "u32",
  partStride: "u32",
} as const;
/**
 * attention_common.wgsl's inputs; keyMask and segments are bound (to anything) even without a
 * mask or packing.
 */
const INPUTS = ["q", "k", "v", "keyMask", "segments"] as const;

/**
 * The forward and backward kernels of one element type: vec4 loads when the head dimension
 * allows them. The random generator is always prepended: without dropout the override constant
 * HAS_DROPOUT leaves it unused.
 */
function kernels(elements: string, type: string) {
  return {
    forward: declareKernel({
      name: `causal attention forward (${type})`,
      source: withRandom(elements + common + forwardBody),
      params: ATTENTION_PARAMS,
      buffers: [...INPUTS, "out", "lse"],
    }),
    backward: declareKernel({
      name: `causal attention backward (${type})`,
      source: withRandom(elements + common + backwardBody + dkvBody),
      params: ATTENTION_PARAMS,
      buffers: [...INPUTS, "dout", "out", "lse", "stats", "dq", "dk", "dv", "dq_parts"],
    }),
  };
}

/**
 * The forward and dk/dv kernels for one head dimension (vec4 elements), which keep a block's
 * rows in registers (attention_forward_regs.wgsl, attention_dkv_regs.wgsl).
 */
function registerKernels(headDim: number) {
  const pre = vec4Elements + `const DV: u32 = ${headDim / 4}u;\n` + common;
  return {
    forward: declareKernel({
      name: `causal attention forward (dh ${headDim})`,
      source: withRandom(pre + forwardRegsBody),
      params: ATTENTION_PARAMS,
      buffers: [...INPUTS, "out", "lse"],
    }),
    backward: declareKernel({
      name: `causal attention backward (dh ${headDim})`,
      source: withRandom(pre + backwardBody + dkvRegsBody),
      params: ATTENTION_PARAMS,
      buffers: [...INPUTS, "dout", "out", "lse", "stats", "dq", "dk", "dv", "dq_parts"],
    }),
  };
}

const KERNELS = { scalar: kernels(scalarElements, "scalar"), vec4: kernels(vec4Elements, "vec4") };

/**
 * Head dimensions with register kernels. Each is its own shader whose unrolled code grows with
 * the head dimension: on llvmpipe LLVM compiles them in ~2.5 s (forward) and ~5 s (backward) at
 * 16, about as long as the generic ones; at 32 it took ~7 s and ~21 s for a forward and backward
 * only 1.07× faster.
 */
export const REGISTER_HEAD_DIMS: readonly number[] = [8, 16];
const REGISTER_KERNELS = new Map(REGISTER_HEAD_DIMS.map((dh) => [dh, registerKernels(dh)]));

/**
 * Which kernels run. "registers": a block's rows stay in registers across key tiles, one shader
 * per head dimension in REGISTER_HEAD_DIMS (llvmpipe gathers every storage access lane by lane,
 * so forward + backward run ~1.7× faster there); "generic": the head dimension is a run-time
 * parameter.
 */
export type AttentionKernels = "registers" | "generic";

/** What sets how long an invocation's loops run. */
export interface AttentionLoopShape {
  T: number;
  /** Query heads per kv head. */
  group: number;
  headDim: number;
  dropout: boolean;
  /** A key mask (HAS_MASK). */
  masked: boolean;
}

/** Keys per tile of the register forward (RC) and queries per step of its dk/dv (RQ). */
const REGISTER_KEY_TILE = 4;
const REGISTER_QUERY_STEP = 4;

/**
 * The most loop iterations one invocation runs as llvmpipe counts them: it silently ends an
 * invocation's loops past ~65,535 in all. NIR unrolls the loops over a tile's rows and keys, so
 * what counts are the walks over tiles, the two walks over the head dimension in each tile of the
 * generic kernels, and with dropout keep_bits_*'s one iteration per query or key of the tile (16
 * more with a key mask). The forward's last query block walks every key tile; the dk/dv kernel's
 * first key block every query step of its group's heads. Measured on llvmpipe (generic forward):
 * at head dim 16 with dropout, right at T = 32,768 and cut short at 49,152 (25 a tile: 51k and
 * 77k); at head dim 64 without, right at 16,384 and cut at 32,768 (33 a tile: 34k and 68k); the
 * register forward with dropout, right at 32,768 and cut at 65,536 (5 a tile: 41k and 82k).
 */
export function attentionLoops(s: AttentionLoopShape, kernels: AttentionKernels): number {
  const draws = (n: number) => (s.dropout ? n + (s.masked ? QUERY_ROWS : 0) : 0);
  const tiles = Math.ceil(s.T / QUERY_ROWS);
  const vecWidth = kernels === "registers" || s.headDim % 4 === 0 ? 4 : 1;
  const tile = 1 + (2 * s.headDim) / vecWidth + draws(QUERY_ROWS);
  if (kernels === "generic") return s.group * tiles * tile;
  const forward = Math.ceil(s.T / REGISTER_KEY_TILE) * (1 + (s.dropout ? REGISTER_KEY_TILE : 0));
  const dkv = s.group * Math.ceil(s.T / REGISTER_QUERY_STEP) * (1 + draws(REGISTER_QUERY_STEP));
  // The register backward computes dq with the generic dq_rows.
  return Math.max(forward, dkv, tiles * tile);
}

/** Why `kernels` cannot run this shape on llvmpipe within its loop budget, or null. */
function loopBlocker(s: AttentionLoopShape, kernels: AttentionKernels): string | null {
  const loops = attentionLoops(s, kernels);
  if (loops <= LOOP_BUDGET) return null;
  return `the ${kernels} kernels would loop ${loops} times in an invocation (T = ${s.T}, head ` +
    `dimension ${s.headDim}, ${s.group} heads a kv head${s.dropout ? ", dropout" : ""}${
      s.masked ? ", key mask" : ""
    }), over llvmpipe's budget of ${LOOP_BUDGET}`;
}

/** Why the register kernels cannot run this shape, or null. */
function registerBlocker(s: AttentionLoopShape): string | null {
  if (!REGISTER_KERNELS.has(s.headDim)) {
    return `no register kernels for head dimension ${s.headDim} (only ${
      REGISTER_HEAD_DIMS.join(", ")
    })`;
  }
  return loopBlocker(s, "registers");
}

/** The default for this shape: registers on a software adapter when they can run it. */
export function defaultAttentionKernels(e: Engine, s: AttentionLoopShape): AttentionKernels {
  return e.gpu.isSoftware && registerBlocker(s) === null ? "registers" : "generic";
}

/**
 * Why causalAttention, with the kernels it picks by default, would refuse this shape on `e` (a
 * software adapter's loop budget), or null: for a trainer to check before a run starts.
 */
export function attentionBlocker(e: Engine, s: AttentionLoopShape): string | null {
  if (!e.gpu.isSoftware || defaultAttentionKernels(e, s) === "registers") return null;
  return loopBlocker(s, "generic");
}

/** Must match QR, KR and WG in attention_common.wgsl. */
const QUERY_ROWS = 16;
const KEY_ROWS = 16;
const WG = 64;
/**
 * The most bytes of dq parts (one copy of dq per block of KEY_ROWS keys) the backward allocates
 * to compute dS once for dq, dk and dv; longer sequences recompute it for dq (dq_rows).
 */
const MAX_DQ_PARTS_BYTES = 16 * 1024 * 1024;

/**
 * Sequences packed back to back without padding: sequence s owns rows [offsets[s],
 * offsets[s + 1]) of q, k, v [rows, D] and attends only within them.
 */
export interface PackedSegments {
  /** i32 [S + 1], made with engine.tensor (its host copy is checked): 0, …, rows. */
  offsets: Tensor;
  /** The longest sequence (at least the longest offsets span). */
  maxLength: number;
}

/** How rows form sequences: [B, T, D] with an optional key-padding mask, or packed. */
export interface AttentionLayout {
  /** i32 or u32 [B, T]: nonzero marks a real token, 0 padding. */
  keyMask?: Tensor;
  segments?: PackedSegments;
}

export interface CausalAttentionOptions extends AttentionLayout {
  heads: number;
  /**
   * Key and value heads (grouped-query attention): k and v have kvHeads · D / heads columns and
   * each of their heads serves heads / kvHeads consecutive query heads. Default: heads.
   */
  kvHeads?: number;
  /** Dropout of the attention probabilities (as nn.MultiheadAttention's `dropout`). */
  dropout?: AttentionDropout;
  /**
   * Default: defaultAttentionKernels. "registers" needs a head dimension in REGISTER_HEAD_DIMS
   * and sequences short enough for llvmpipe's loop budget.
   */
  kernels?: AttentionKernels;
}

/**
 * Probability P[b, h, i, j] is zeroed when randomU32(seed, step, ((b·heads + h)·T + i)·T + j) <
 * dropoutThreshold(p) and scaled by 1 / (1 − p) otherwise; no mask is stored, the backward draws
 * it again.
 */
export interface AttentionDropout {
  p: number;
  seed: number;
  step: number;
}

interface Geometry {
  /** Sequences: B, or S packed ones. */
  batches: number;
  /** Positions per sequence: T, or the longest packed one. */
  T: number;
  D: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Floats per element of the kernels' arrays (their Vec). */
  vecWidth: number;
  kernels: typeof KERNELS.scalar;
  /** The register kernels: out is written whole, so it need not be cleared. */
  registers: boolean;
  dropout?: AttentionDropout;
  segments?: Tensor;
}

/** Sequences and their longest length from packed offsets, or an error naming what is wrong. */
function checkSegments(q: Tensor, segments: PackedSegments): { batches: number; T: number } {
  const op = "causalAttention";
  if (q.rank !== 2) {
    throw new ShapeError(op, `packed q ${shapeString(q.shape)} is not [rows, D]`);
  }
  const offsets = segments.offsets.host as Int32Array | null;
  if (!offsets || segments.offsets.rank !== 1 || offsets.length < 2) {
    throw new ShapeError(op, "segment offsets must be an i32 [S + 1] tensor made with a host copy");
  }
  const rows = q.shape[0];
  let longest = 0;
  for (let s = 0; s + 1 < offsets.length; s++) {
    longest = Math.max(longest, offsets[s + 1] - offsets[s]);
    if (offsets[s + 1] < offsets[s]) {
      throw new ShapeError(
        op,
        `segment offsets decrease at ${s + 1}: ${offsets[s]} → ${offsets[s + 1]}`,
      );
    }
  }
  if (offsets[0] !== 0 || offsets[offsets.length - 1] !== rows) {
    throw new ShapeError(
      op,
      `segment offsets run ${offsets[0]}..${offsets[offsets.length - 1]}, q has ${rows} rows`,
    );
  }
  if (longest > segments.maxLength) {
    throw new ShapeError(
      op,
      `the longest segment has ${longest} rows, over maxLength ${segments.maxLength}`,
    );
  }
  return { batches: offsets.length - 1, T: Math.max(segments.maxLength, 1) };
}

function checkInputs(q: Tensor, k: Tensor, v: Tensor, opts: CausalAttentionOptions): Geometry {
  const op = "causalAttention";
  for (const t of [q, k, v]) assertDType(op, t, "f32");
  if (opts.segments && opts.keyMask) {
    throw new ShapeError(
      op,
      "packed sequences have no padding: give segments or keyMask, not both",
    );
  }
  if (!opts.segments && q.rank !== 3) {
    throw new ShapeError(op, `q ${shapeString(q.shape)} is not [B, T, D]`);
  }
  const { batches, T } = opts.segments
    ? checkSegments(q, opts.segments)
    : { batches: q.shape[0], T: q.shape[1] };
  const D = q.shape[q.rank - 1];
  const { heads, keyMask } = opts;
  if (!Number.isInteger(heads) || heads < 1 || D % heads !== 0) {
    throw new ShapeError(
      op,
      `D = ${D} of ${shapeString(q.shape)} is not divisible by ${heads} heads`,
    );
  }
  const kvHeads = opts.kvHeads ?? heads;
  if (!Number.isInteger(kvHeads) || kvHeads < 1 || heads % kvHeads !== 0) {
    throw new ShapeError(op, `${heads} query heads do not form groups of ${kvHeads} kv heads`);
  }
  const kvShape = [...q.shape.slice(0, -1), (D / heads) * kvHeads];
  if (k.shape.join() !== kvShape.join()) {
    throw new ShapeError(
      op,
      `q ${shapeString(q.shape)} and k ${shapeString(k.shape)} do not match with ${heads} ` +
        `heads and ${kvHeads} kv heads (want k ${shapeString(kvShape)})`,
    );
  }
  assertSameShape(op, k, v);
  if (keyMask) {
    if (keyMask.dtype === "f32") {
      throw new ShapeError(op, `keyMask must be i32 or u32, got f32 ${shapeString(keyMask.shape)}`);
    }
    if (keyMask.rank !== 2 || keyMask.shape[0] !== batches || keyMask.shape[1] !== T) {
      throw new ShapeError(
        op,
        `keyMask ${shapeString(keyMask.shape)} does not match q ${
          shapeString(q.shape)
        } (want [B, T])`,
      );
    }
  }
  const headDim = D / heads;
  const vecWidth = headDim % 4 === 0 ? 4 : 1;
  const group = heads / kvHeads;
  const loopShape = {
    T,
    group,
    headDim,
    dropout: (opts.dropout?.p ?? 0) > 0,
    masked: keyMask !== undefined,
  };
  const choice = opts.kernels ?? defaultAttentionKernels(q.engine, loopShape);
  const registers = choice === "registers";
  // A GPU runs loops to the end; llvmpipe would cut the generic ones short, silently.
  const blocker = registers
    ? registerBlocker(loopShape)
    : q.engine.gpu.isSoftware
    ? loopBlocker(loopShape, "generic")
    : null;
  if (blocker) {
    throw new ShapeError(op, registers ? blocker : `${blocker}: use shorter sequences or a GPU`);
  }
  const kernels = registers
    ? REGISTER_KERNELS.get(headDim)!
    : vecWidth === 4
    ? KERNELS.vec4
    : KERNELS.scalar;
  const dropout = opts.dropout && opts.dropout.p > 0 ? opts.dropout : undefined;
  if (opts.dropout) checkDropout(opts.dropout, batches * heads * T * T);
  return {
    batches,
    T,
    D,
    heads,
    kvHeads,
    headDim,
    vecWidth,
    kernels,
    registers,
    dropout,
    segments: opts.segments?.offsets,
  };
}

function checkDropout({ p, seed, step }: AttentionDropout, pairs: number): void {
  const op = "causalAttention";
  if (!(p >= 0 && p < 1)) throw new RangeError(`${op}: dropout p must be in [0, 1), got ${p}`);
  assertCounterWord(op, "dropout seed", seed);
  assertCounterWord(op, "dropout step", step);
  // The mask is indexed by one u32 counter word per (batch, head, query, key).
  if (p > 0 && pairs > 2 ** 32) {
    throw new RangeError(
      `${op}: dropout draws one number per (batch, head, query, key), ${pairs} of them, over 2^32`,
    );
  }
}

/** A window of whole sequences: batches [row, row + rows) (packed sequences: all of them). */
interface SequenceWindow {
  row: number;
  rows: number;
}

/** The window's part of t, whatever t's width: q's [B, T, D] or k's [B, T, kvHeads · dh]. */
function win(g: Geometry, t: Tensor, w: SequenceWindow): Binding {
  if (g.segments) return { alloc: t.storage, offset: 0, size: Math.max(t.size * 4, 4) };
  const perBatch = (t.size / g.batches) * 4;
  return { alloc: t.storage, offset: w.row * perBatch, size: w.rows * perBatch };
}

/** The uniform parameters of one batch window. */
function windowParams(g: Geometry, w: SequenceWindow) {
  const d = g.dropout;
  return {
    batches: w.rows,
    T: g.T,
    D: g.D,
    heads: g.heads,
    dh: g.headDim,
    b0: w.row,
    scale: 1 / Math.sqrt(g.headDim),
    seed: d?.seed ?? 0,
    step: d?.step ?? 0,
    threshold: d ? dropoutThreshold(d.p) : 0,
    keepScale: d ? 1 / (1 - d.p) : 1,
    kvHeads: g.kvHeads,
    partStride: 0,
  };
}

/** The packed offsets, or q standing in for them: block_of reads them only when PACKED. */
function segmentsOf(g: Geometry, q: Tensor, w: SequenceWindow): Binding {
  return g.segments ? g.segments.storage : win(g, q, w);
}

/** q, k, v, key mask and segments of a window (q stands in for a missing mask). */
function inputs(
  g: Geometry,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | undefined,
  w: SequenceWindow,
) {
  return {
    q: win(g, q, w),
    k: win(g, k, w),
    v: win(g, v, w),
    keyMask: mask ? mask.storage : win(g, q, w),
    segments: segmentsOf(g, q, w),
  };
}

function kernelConstants(g: Geometry, mask: Tensor | undefined): Record<string, number> {
  return { HAS_MASK: mask ? 1 : 0, HAS_DROPOUT: g.dropout ? 1 : 0, PACKED: g.segments ? 1 : 0 };
}

/**
 * Windows of whole sequences under the binding limit: [B, T, D] is cut by batches, at batch
 * offsets aligned for q's width and for k's; packed rows are one window (the offsets index them
 * directly).
 */
function sequenceWindows(e: Engine, g: Geometry, q: Tensor): SequenceWindow[] {
  if (q.size === 0) return [];
  if (!g.segments) {
    const { maxStorageBufferBindingSize: maxBind, minStorageBufferOffsetAlignment: align } =
      e.gpu.limits;
    const qBytes = g.T * g.D * 4;
    if (g.batches * qBytes <= maxBind) return [{ row: 0, rows: g.batches }];
    // Every window starts at a batch whose byte offset is aligned in q and in k.
    const kvBytes = g.T * g.kvHeads * g.headDim * 4;
    const aligned = lcm(align / gcd(align, qBytes), align / gcd(align, kvBytes));
    let step = Math.floor(maxBind / qBytes);
    step -= step % aligned;
    if (step <= 0) {
      throw new ShapeError(
        "causalAttention",
        `one sequence of q ${shapeString(q.shape)} does not fit a storage binding`,
      );
    }
    const out: SequenceWindow[] = [];
    for (let row = 0; row < g.batches; row += step) {
      out.push({ row, rows: Math.min(step, g.batches - row) });
    }
    return out;
  }
  const bytes = q.size * 4;
  if (bytes > e.gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(
      "causalAttention",
      `packed q ${shapeString(q.shape)} (${bytes} bytes) exceeds one storage binding: ` +
        "use fewer tokens per batch",
    );
  }
  return [{ row: 0, rows: g.batches }];
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}

/**
 * Workgroups for one invocation per block of `rowsPerBlock` rows of each (batch, head): `heads`
 * query heads, or key-value heads for the dk/dv kernel.
 */
function grid(
  e: Engine,
  g: Geometry,
  w: SequenceWindow,
  rowsPerBlock: number,
  heads = g.heads,
): [number, number] {
  return groupsFor(e, w.rows * heads * Math.ceil(g.T / rowsPerBlock), WG);
}

/**
 * softmax(q_h k_hᵀ / sqrt(D / heads) + causal and key mask) v_h for every head h, concatenated:
 * q, k, v are f32 [B, T, D] (already projected; head h is the column slice [h·D/heads,
 * (h+1)·D/heads), as in PyTorch's batch_first nn.MultiheadAttention); the result is [B, T, D].
 * With kvHeads < heads (grouped-query attention, Llama 2/3), k and v are [B, T, kvHeads·D/heads]
 * and query head h uses their head h / (heads / kvHeads).
 * Query t attends to the keys s ≤ t whose keyMask[b, s] is nonzero. A query with no such key
 * (with left padding: exactly the padded queries) outputs zeros and passes no gradient.
 *
 * With `dropout`, the probabilities are dropped after the softmax (their row sums are those of
 * the undropped softmax), as in PyTorch's nn.MultiheadAttention.
 *
 * Fused: the forward keeps only the per-row log-sum-exp [B, heads, T]; the backward recomputes
 * the probabilities and the dropout mask. Deterministic (no atomics).
 */
export function causalAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: CausalAttentionOptions,
): Tensor {
  const g = checkInputs(q, k, v, opts);
  const e = q.engine;
  const mask = opts.keyMask;
  const constants = kernelConstants(g, mask);
  // Empty tensors need no kernel (and a vec4 binding cannot be smaller than one vec4).
  const windows = sequenceWindows(e, g, q);
  const out = (g.registers ? e.empty : e.zeros).call(e, q.shape, "f32", "attention");
  const lse = e.empty([g.batches, g.heads, g.T], "f32", "attention lse");
  for (const w of windows) {
    g.kernels.forward.dispatch(e.gpu, {
      label: "causal attention forward",
      entry: "forward",
      constants,
      params: windowParams(g, w),
      buffers: {
        ...inputs(g, q, k, v, mask, w),
        out: win(g, out, w),
        lse: lse.storage,
      },
      workgroups: grid(e, g, w, QUERY_ROWS),
    });
  }
  e.record({
    op: "causalAttention",
    inputs: [q, k, v],
    output: out,
    backward: (dout) => {
      const grads = attentionBackward(g, windows, q, k, v, mask, out, lse, dout);
      lse.dispose();
      return grads;
    },
  });
  if (!out.requiresGrad) lse.dispose();
  return out;
}

function attentionBackward(
  g: Geometry,
  windows: SequenceWindow[],
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | undefined,
  out: Tensor,
  lse: Tensor,
  dout: Tensor,
): [Tensor | null, Tensor | null, Tensor | null] {
  const e = q.engine;
  const constants = kernelConstants(g, mask);
  const stats = e.empty([g.batches, g.heads, g.T, 2], "f32", "attention stats");
  const wantQ = q.requiresGrad;
  const wantKV = k.requiresGrad || v.requiresGrad;
  // Floats of a window of q (packed: all of q); the dq parts hold one copy per block of keys.
  const qFloats = (w: SequenceWindow) => g.segments ? q.size : w.rows * g.T * g.D;
  const keyBlocks = Math.ceil(g.T / KEY_ROWS);
  const partsBytes = keyBlocks * Math.max(0, ...windows.map(qFloats)) * 4;
  const parts = wantQ && wantKV && partsBytes > 0 &&
      partsBytes <= Math.min(MAX_DQ_PARTS_BYTES, e.gpu.limits.maxStorageBufferBindingSize)
    ? e.gpu.alloc(partsBytes, "attention dq parts")
    : null;
  // dq_sum writes every element of dq; dq_rows only those of rows with an allowed key.
  const dq = wantQ ? (parts ? e.empty : e.zeros).call(e, q.shape, "f32", "attention dq") : null;
  // Without a key mask every key row is written, and so is every dq part that dq_sum reads but
  // those of key blocks past the end of a packed sequence: no clearing.
  const keysWritten = !mask;
  const partsWritten = !mask && !g.segments;
  const dk = wantKV
    ? (keysWritten ? e.empty : e.zeros).call(e, k.shape, "f32", "attention dk")
    : null;
  const dv = wantKV
    ? (keysWritten ? e.empty : e.zeros).call(e, v.shape, "f32", "attention dv")
    : null;
  for (const w of windows) {
    type Buffers = Parameters<typeof g.kernels.backward.dispatch>[1]["buffers"];
    const partStride = parts ? qFloats(w) / g.vecWidth : 0;
    const dispatch = (
      entry: string,
      rowsPerBlock: number,
      buffers: Buffers,
      heads = g.heads,
      workgroups = grid(e, g, w, rowsPerBlock, heads),
    ) =>
      g.kernels.backward.dispatch(e.gpu, {
        label: `causal attention backward ${entry}`,
        entry,
        constants: { ...constants, DQ_PARTS: parts ? 1 : 0 },
        params: { ...windowParams(g, w), partStride },
        buffers,
        workgroups,
      });
    const gradOut = win(g, dout, w);
    dispatch("delta", 1, {
      segments: segmentsOf(g, q, w),
      dout: gradOut,
      out: win(g, out, w),
      lse: lse.storage,
      stats: stats.storage,
    });
    if (dq && !parts) {
      dispatch("dq_rows", QUERY_ROWS, {
        ...inputs(g, q, k, v, mask, w),
        dout: gradOut,
        stats: stats.storage,
        dq: win(g, dq, w),
      });
    }
    const partsBinding = parts
      ? { alloc: parts, offset: 0, size: partStride * g.vecWidth * 4 * Math.ceil(g.T / KEY_ROWS) }
      : null;
    if (partsBinding && !partsWritten) e.gpu.clear(parts!, 0, partsBinding.size);
    if (dk && dv) {
      dispatch("dkv_rows", KEY_ROWS, {
        ...inputs(g, q, k, v, mask, w),
        dout: gradOut,
        stats: stats.storage,
        dk: win(g, dk, w),
        dv: win(g, dv, w),
        // lse (not bound here) stands in when dq_rows computes dq.
        dq_parts: partsBinding ?? lse.storage,
      }, g.kvHeads);
    }
    if (dq && partsBinding) {
      dispatch(
        "dq_sum",
        1,
        { dq_parts: partsBinding, dq: win(g, dq, w) },
        g.heads,
        groupsFor(e, partStride, WG),
      );
    }
  }
  if (parts) e.gpu.release(parts);
  stats.dispose();
  // dk and dv come from one kernel; a gradient nobody asked for is freed here.
  if (!k.requiresGrad) dk?.dispose();
  if (!v.requiresGrad) dv?.dispose();
  return [dq, k.requiresGrad ? dk : null, v.requiresGrad ? dv : null];
}
