/** Fused causal multi-head self-attention with a key-padding mask. */
import scalarElements from "../../../shaders/attention_scalar.wgsl" with { type: "text" };
import vec4Elements from "../../../shaders/attention_vec4.wgsl" with { type: "text" };
import common from "../../../shaders/attention_common.wgsl" with { type: "text" };
import forwardBody from "../../../shaders/attention_forward.wgsl" with { type: "text" };
import backwardBody from "../../../shaders/attention_backward.wgsl" with { type: "text" };
import type { Binding } from "../../gpu/gpu.ts";
import type { Engine } from "../engine.ts";
import {
  assertDType,
  assertSameShape,
  groupsFor,
  params,
  type RowWindow,
  rowWindows,
} from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { withRandom } from "../random.ts";
import { dropoutThreshold } from "./dropout.ts";
import { assertCounterWord } from "./random.ts";

/**
 * Each kernel in two element types: vec4 loads when the head dimension allows them. The random
 * generator is always prepended: without dropout the override constant HAS_DROPOUT leaves it
 * unused.
 */
const SHADERS = {
  scalar: {
    forward: withRandom(scalarElements + common + forwardBody),
    backward: withRandom(scalarElements + common + backwardBody),
  },
  vec4: {
    forward: withRandom(vec4Elements + common + forwardBody),
    backward: withRandom(vec4Elements + common + backwardBody),
  },
};

/** Must match QR, KR and WG in attention_common.wgsl. */
const QUERY_ROWS = 16;
const KEY_ROWS = 16;
const WG = 64;

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
  /** Dropout of the attention probabilities (as nn.MultiheadAttention's `dropout`). */
  dropout?: AttentionDropout;
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
  headDim: number;
  shaders: { forward: string; backward: string };
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
  assertSameShape(op, q, k);
  assertSameShape(op, q, v);
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
  const shaders = headDim % 4 === 0 ? SHADERS.vec4 : SHADERS.scalar;
  const dropout = opts.dropout && opts.dropout.p > 0 ? opts.dropout : undefined;
  if (opts.dropout) checkDropout(opts.dropout, batches * heads * T * T);
  return { batches, T, D, heads, headDim, shaders, dropout, segments: opts.segments?.offsets };
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

const win = (t: Tensor, w: RowWindow): Binding => ({
  alloc: t.storage,
  offset: w.offset,
  size: w.size,
});

/** The uniform parameters of one batch window. */
function windowParams(g: Geometry, w: RowWindow): ArrayBuffer {
  const d = g.dropout;
  return params(
    w.rows,
    g.T,
    g.D,
    g.heads,
    g.headDim,
    w.row,
    { f32: 1 / Math.sqrt(g.headDim) },
    d?.seed ?? 0,
    d?.step ?? 0,
    d ? dropoutThreshold(d.p) : 0,
    { f32: d ? 1 / (1 - d.p) : 1 },
  );
}

function kernelConstants(g: Geometry, mask: Tensor | undefined): Record<string, number> {
  return { HAS_MASK: mask ? 1 : 0, HAS_DROPOUT: g.dropout ? 1 : 0, PACKED: g.segments ? 1 : 0 };
}

/** Binding 12 (segment offsets) after a kernel's bindings 1..n; a stand-in when not packed. */
function withSegments(g: Geometry, w: RowWindow, q: Tensor, bindings: (Binding | null)[]) {
  const padded: (Binding | null)[] = [...bindings];
  while (padded.length < 11) padded.push(null);
  padded.push(g.segments ? g.segments.storage : win(q, w));
  return padded;
}

/**
 * Windows of whole sequences under the binding limit: [B, T, D] is cut by batches; packed rows
 * are one window (the offsets index them directly).
 */
function sequenceWindows(e: Engine, g: Geometry, q: Tensor): RowWindow[] {
  if (q.size === 0) return [];
  if (!g.segments) return rowWindows(e, g.batches, g.T * g.D * 4);
  const bytes = q.size * 4;
  if (bytes > e.gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(
      "causalAttention",
      `packed q ${shapeString(q.shape)} (${bytes} bytes) exceeds one storage binding: ` +
        "use fewer tokens per batch",
    );
  }
  return [{ row: 0, rows: g.batches, offset: 0, size: bytes }];
}

/** Workgroups for one invocation per block of `rowsPerBlock` rows of each (batch, head). */
function grid(e: Engine, g: Geometry, w: RowWindow, rowsPerBlock: number): [number, number] {
  return groupsFor(e, w.rows * g.heads * Math.ceil(g.T / rowsPerBlock), WG);
}

/**
 * softmax(q_h k_hᵀ / sqrt(D / heads) + causal and key mask) v_h for every head h, concatenated:
 * q, k, v are f32 [B, T, D] (already projected; head h is the column slice [h·D/heads,
 * (h+1)·D/heads), as in PyTorch's batch_first nn.MultiheadAttention); the result is [B, T, D].
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
  const out = e.zeros(q.shape, "f32", "attention");
  const lse = e.empty([g.batches, g.heads, g.T], "f32", "attention lse");
  for (const w of windows) {
    e.gpu.dispatch({
      kernel: "causal attention forward",
      shader: g.shaders.forward,
      entry: "forward",
      constants,
      params: windowParams(g, w),
      bindings: withSegments(g, w, q, [
        win(q, w),
        win(k, w),
        win(v, w),
        mask ? mask.storage : win(q, w),
        win(out, w),
        lse.storage,
      ]),
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
  windows: RowWindow[],
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
  const dq = wantQ ? e.zeros(q.shape, "f32", "attention dq") : null;
  const dk = wantKV ? e.zeros(q.shape, "f32", "attention dk") : null;
  const dv = wantKV ? e.zeros(q.shape, "f32", "attention dv") : null;
  for (const w of windows) {
    const inputs = [win(q, w), win(k, w), win(v, w), mask ? mask.storage : win(q, w)];
    const dispatch = (entry: string, rowsPerBlock: number, bindings: (Binding | null)[]) =>
      e.gpu.dispatch({
        kernel: `causal attention backward ${entry}`,
        shader: g.shaders.backward,
        entry,
        constants,
        params: windowParams(g, w),
        bindings: withSegments(g, w, q, bindings),
        workgroups: grid(e, g, w, rowsPerBlock),
      });
    const gradOut = win(dout, w);
    dispatch("delta", 1, [
      null,
      null,
      null,
      null,
      gradOut,
      win(out, w),
      lse.storage,
      stats.storage,
    ]);
    if (dq) {
      dispatch("dq_rows", QUERY_ROWS, [...inputs, gradOut, null, null, stats.storage, win(dq, w)]);
    }
    if (dk && dv) {
      dispatch("dkv_rows", KEY_ROWS, [
        ...inputs,
        gradOut,
        null,
        null,
        stats.storage,
        null,
        win(dk, w),
        win(dv, w),
      ]);
    }
  }
  stats.dispose();
  // dk and dv come from one kernel; a gradient nobody asked for is freed here.
  if (!k.requiresGrad) dk?.dispose();
  if (!v.requiresGrad) dv?.dispose();
  return [dq, k.requiresGrad ? dk : null, v.requiresGrad ? dv : null];
}
