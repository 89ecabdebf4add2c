/**
 * Choosing GIFT-SW's salient input columns (methods.md §4) and its noise scale.
 * - column statistics of a layer's calibration inputs X [T, in]: max_t |X_tj| and Σ_t |X_tj|^ρ,
 *   on the GPU (ColumnStatsRecorder, a Linear input transform that records and multiplies densely);
 * - scores: "max" s_j = max_t |X_tj|, or "general" s_j = ‖D_{:,j}‖_τ · ‖X_{:,j}‖_ρ^γ with D a
 *   weight perturbation (pruning or quantisation error);
 * - the k columns of highest score (ties to the lower column), sorted;
 * - Δ_r = α_r / (2^(b−1) − 1) per output row, α_r = max_j |W_rj| or, with the grid search, the
 *   fraction of it whose b-bit symmetric round-to-nearest quantisation of the row errs least.
 * Float64 host references sit beside each.
 */
import columnsShader from "../../shaders/gift_columns.wgsl" with { type: "text" };
import type { LinearInputTransform } from "../nn/linear.ts";
import { declareKernel, groupsFor } from "../tensor/kernel.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

const COLUMNS_KERNEL = declareKernel({
  name: "gift-sw column stats",
  source: columnsShader,
  params: { tokens: "u32", cols: "u32", first: "u32", count: "u32", rho: "f32" },
  buffers: ["x", "stats"],
});

/** Tokens one pass of the column loop walks. */
const TOKENS_PER_PASS = LOOP_BUDGET;

/** Per input column: the largest |x| and Σ|x|^ρ over every token seen. */
export interface ColumnStats {
  maxAbs: Float64Array;
  powerSum: Float64Array;
  rho: number;
}

/** The float64 reference of the column statistics of x [T, in]. */
export function columnStatsHost(
  x: ArrayLike<number>,
  tokens: number,
  inF: number,
  rho: number,
): ColumnStats {
  const maxAbs = new Float64Array(inF);
  const powerSum = new Float64Array(inF);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < inF; j++) {
      const a = Math.abs(x[t * inF + j]);
      maxAbs[j] = Math.max(maxAbs[j], a);
      powerSum[j] += a ** rho;
    }
  }
  return { maxAbs, powerSum, rho };
}

/** [in, 2] f32 statistics of x [T, in] on the GPU, added into `stats` (zeros to start). */
export function accumulateColumnStats(x: Tensor, stats: Tensor, rho: number): void {
  const [tokens, cols] = x.shape;
  if (x.rank !== 2 || stats.size !== 2 * cols) {
    throw new ShapeError("column stats", `x ${shapeString(x.shape)}, stats [${stats.size}]`);
  }
  const e = x.engine;
  for (let first = 0; first < tokens; first += TOKENS_PER_PASS) {
    COLUMNS_KERNEL.dispatch(e.gpu, {
      params: { tokens, cols, first, count: TOKENS_PER_PASS, rho },
      buffers: { x: x.storage, stats: stats.storage },
      workgroups: groupsFor(e, cols, 64),
    });
  }
}

/**
 * Records a layer's column statistics over calibration batches while computing its product (the
 * dense one, or the transform it stands in front of, so that a pruned model calibrates as pruned
 * downstream of this layer).
 */
export class ColumnStatsRecorder implements LinearInputTransform {
  private stats: Tensor | null = null;

  constructor(readonly rho: number, private readonly inner: LinearInputTransform | null) {
    if (!(rho > 0 && Number.isFinite(rho))) throw new RangeError(`ρ must be > 0, got ${rho}`);
  }

  product(x: Tensor, weight: Tensor): Tensor {
    const inF = weight.shape[1];
    const x2 = reshape(x, [x.size / inF, inF]);
    const e = x.engine;
    if (!this.stats) {
      this.stats = e.zeros([inF, 2], "f32", "column stats");
      e.keep(this.stats);
    }
    accumulateColumnStats(x2, this.stats, this.rho);
    if (this.inner) return this.inner.product(x, weight);
    return reshape(matmul(x2, weight, { transB: true }), [
      ...x.shape.slice(0, -1),
      weight.shape[0],
    ]);
  }

  /** The statistics over every batch seen (an error when none was). */
  async result(): Promise<ColumnStats> {
    if (!this.stats) throw new Error("no calibration batch reached the layer");
    const s = await this.stats.read();
    this.stats.dispose();
    this.stats = null;
    const inF = s.length / 2;
    const maxAbs = new Float64Array(inF);
    const powerSum = new Float64Array(inF);
    for (let j = 0; j < inF; j++) {
      maxAbs[j] = s[2 * j];
      powerSum[j] = s[2 * j + 1];
    }
    return { maxAbs, powerSum, rho: this.rho };
  }
}

export const SALIENT_SCORES = ["max", "general"] as const;
export type SalientScore = typeof SALIENT_SCORES[number];

/** The general score's exponents: ‖D_{:,j}‖_τ · ‖X_{:,j}‖_ρ^γ. */
export interface GeneralScore {
  tau: number;
  gamma: number;
}

/** ‖v‖_p of column j of D [out, in] (p = Infinity: the largest |v|). */
function columnNorm(d: ArrayLike<number>, out: number, inF: number, j: number, p: number) {
  let acc = 0;
  for (let r = 0; r < out; r++) {
    const a = Math.abs(d[r * inF + j]);
    acc = p === Infinity ? Math.max(acc, a) : acc + a ** p;
  }
  return p === Infinity ? acc : acc ** (1 / p);
}

/**
 * Scores per input column: "max" is max_t |X_tj|; "general" needs D [out, in] and is
 * ‖D_{:,j}‖_τ · (Σ_t |X_tj|^ρ)^(γ/ρ).
 */
export function salientScores(
  kind: SalientScore,
  stats: ColumnStats,
  perturbation: { d: ArrayLike<number>; out: number } | null = null,
  general: GeneralScore = { tau: 2, gamma: 1 },
): Float64Array {
  if (kind === "max") return Float64Array.from(stats.maxAbs);
  if (!perturbation) throw new RangeError("the general salience score needs a perturbation D");
  const inF = stats.maxAbs.length;
  const { d, out } = perturbation;
  if (d.length !== out * inF) {
    throw new RangeError(`D has ${d.length} values, not [${out}, ${inF}]`);
  }
  return Float64Array.from({ length: inF }, (_, j) => {
    const xNorm = stats.powerSum[j] ** (1 / stats.rho);
    return columnNorm(d, out, inF, j, general.tau) * xNorm ** general.gamma;
  });
}

/** The k highest-scoring columns (ties to the lower column), in increasing order. */
export function topColumns(scores: ArrayLike<number>, k: number): Int32Array {
  const n = scores.length;
  if (!(Number.isInteger(k) && k >= 1 && k <= n)) {
    throw new RangeError(`cannot choose ${k} salient columns of ${n}`);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((a, b) =>
    scores[b] - scores[a] || a - b
  );
  return Int32Array.from(order.slice(0, k)).sort();
}

/** k for a layer of width inF: a count (capped at the width) or a fraction in (0, 1]. */
export function salientCount(spec: number, inF: number): number {
  if (!(spec > 0)) throw new RangeError(`salient columns must be > 0, got ${spec}`);
  if (spec < 1) return Math.max(1, Math.round(spec * inF));
  if (!Number.isInteger(spec)) {
    throw new RangeError(`salient columns must be a whole count or a fraction, got ${spec}`);
  }
  return Math.min(spec, inF);
}

/** The largest level of b-bit symmetric quantisation: 2^(b−1) − 1. */
export function quantLevels(bits: number): number {
  if (!(Number.isInteger(bits) && bits >= 2 && bits <= 16)) {
    throw new RangeError(`noise bits must be an integer in [2, 16], got ${bits}`);
  }
  return 2 ** (bits - 1) - 1;
}

/** Row r of W [out, in] quantised to b bits at range α: round(w/Δ) clamped, times Δ. */
function quantiseRow(w: ArrayLike<number>, at: number, inF: number, alpha: number, bits: number) {
  const levels = quantLevels(bits);
  const delta = alpha / levels;
  const q = new Float64Array(inF);
  if (delta === 0) return q;
  for (let j = 0; j < inF; j++) {
    q[j] = Math.max(-levels, Math.min(levels, Math.round(w[at + j] / delta))) * delta;
  }
  return q;
}

/** W − Q_b(W) for W [out, in] at per-row ranges α: the quantisation perturbation D. */
export function quantisationErrorHost(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  alpha: ArrayLike<number>,
  bits: number,
): Float64Array {
  const d = new Float64Array(out * inF);
  for (let r = 0; r < out; r++) {
    const q = quantiseRow(w, r * inF, inF, alpha[r], bits);
    for (let j = 0; j < inF; j++) d[r * inF + j] = w[r * inF + j] - q[j];
  }
  return d;
}

/** The fractions of max|W_r| the grid search tries: 1, 0.95, …, 0.5. */
export const ALPHA_GRID: readonly number[] = Array.from({ length: 11 }, (_, i) => 1 - 0.05 * i);

/**
 * α_r per row of W [out, in]: max_j |W_rj|, or with `grid` the grid fraction of it whose b-bit
 * quantisation of the row has the least squared error (ties to the larger α).
 */
export function rowRanges(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  bits: number,
  grid = false,
): Float64Array {
  return Float64Array.from({ length: out }, (_, r) => {
    let max = 0;
    for (let j = 0; j < inF; j++) max = Math.max(max, Math.abs(w[r * inF + j]));
    if (!grid || max === 0) return max;
    let best = max;
    let bestErr = Infinity;
    for (const f of ALPHA_GRID) {
      const q = quantiseRow(w, r * inF, inF, f * max, bits);
      let err = 0;
      for (let j = 0; j < inF; j++) err += (w[r * inF + j] - q[j]) ** 2;
      if (err < bestErr) [best, bestErr] = [f * max, err];
    }
    return best;
  });
}

/** Δ_r / 2 = α_r / (2 · (2^(b−1) − 1)): the noise's standard deviation per row. */
export function halfDeltas(alpha: ArrayLike<number>, bits: number): Float64Array {
  const levels = quantLevels(bits);
  return Float64Array.from(alpha, (a) => a / levels / 2);
}
