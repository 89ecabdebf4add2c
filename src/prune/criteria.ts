/**
 * Activation-pruning scores (methods.md §3, "Activation pruning"): for a linear layer y = xWᵀ with
 * input X [T, in] and weight W [out, in], a score per input value; pruning keeps the top N of every
 * M consecutive features of a token by score.
 * - magnitude:         |x_tj|
 * - weight-aware:      |x_tj| · ‖W_{:,j}‖₂
 * - variance-weighted: |x_tj| · Var(W_{:,j})            (population variance over the outputs, ours)
 * - CLACT:             |x_tj| · ‖X_{:,j}‖₂ / ‖X_{t,:}‖₂  (column norm over the tokens of the batch)
 * - Amber:             |x_tj| · ‖Ŵ_{:,j}‖₂ / min_k ‖Ŵ_{:,k}‖₂, Ŵ = W clipped to its 0.5 / 99.5%
 *                      quantiles (over all of W, linearly interpolated as numpy does, ours), then
 *                      standardised by its mean and population standard deviation.
 * The weight factors are static, so they are computed once per layer in float64 on the host and
 * uploaded; the scores themselves are computed per batch on the GPU. The float64 host reference
 * of every criterion lives here too: it is what the GPU path is tested against.
 */
import type { Engine } from "../tensor/engine.ts";
import { assertDType, declareKernel, groupsFor } from "../tensor/kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

export const CRITERIA = ["magnitude", "weight-aware", "variance", "clact", "amber"] as const;
export type Criterion = typeof CRITERIA[number];

const SCORES_SHADER = /* wgsl */ `
// Activation-pruning scores of x [tokens, features] (src/prune/criteria.ts).
struct Params { tokens: u32, features: u32, use_factor: u32, clact: u32, first: u32, count: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> factor: array<f32>;
@group(0) @binding(3) var<storage, read_write> col_norms: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_norms: array<f32>;
@group(0) @binding(5) var<storage, read_write> scores: array<f32>;

fn flat(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

// ‖X_{:,j}‖₂ over the tokens, one invocation per feature, tokens [first, first + count) a pass:
// a later pass continues the sum of squares the one before left, the last takes its root.
@compute @workgroup_size(64)
fn columns(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = flat(gid, nwg);
  if (j >= p.features) { return; }
  var s = select(0.0, col_norms[j], p.first > 0u);
  for (var t = p.first; t < min(p.first + p.count, p.tokens); t++) {
    let v = x[t * p.features + j];
    s += v * v;
  }
  col_norms[j] = select(s, sqrt(s), p.first + p.count >= p.tokens);
}

// ‖X_{t,:}‖₂ over the features, one invocation per token.
@compute @workgroup_size(64)
fn rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat(gid, nwg);
  if (t >= p.tokens) { return; }
  var s = 0.0;
  for (var j = 0u; j < p.features; j++) { let v = x[t * p.features + j]; s += v * v; }
  row_norms[t] = sqrt(s);
}

@compute @workgroup_size(64)
fn score(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.tokens * p.features) { return; }
  let t = i / p.features;
  let j = i % p.features;
  var s = abs(x[i]);
  if (p.use_factor == 1u) { s *= factor[j]; }
  // An all-zero token scores 0 everywhere rather than 0/0.
  if (p.clact == 1u) { s = select(0.0, s * col_norms[j] / row_norms[t], row_norms[t] > 0.0); }
  scores[i] = s;
}
`;

const SCORES_KERNEL = declareKernel({
  name: "activation scores",
  source: SCORES_SHADER,
  params: {
    tokens: "u32",
    features: "u32",
    use_factor: "u32",
    clact: "u32",
    first: "u32",
    count: "u32",
  },
  buffers: ["x", "factor", "col_norms", "row_norms", "scores"],
});

export function assertCriterion(c: string): asserts c is Criterion {
  if (!(CRITERIA as readonly string[]).includes(c)) {
    throw new RangeError(`unknown criterion ${c} (one of ${CRITERIA.join(", ")})`);
  }
}

/** The q-quantile of ascending values, linearly interpolated between neighbours (numpy's rule). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

/** Per-column ‖W_{:,j}‖₂ of w [out, in] (the float64 side of columnNorms). */
export function columnNormsHost(w: ArrayLike<number>, out: number, inF: number): Float64Array {
  const n = new Float64Array(inF);
  for (let o = 0; o < out; o++) for (let j = 0; j < inF; j++) n[j] += w[o * inF + j] ** 2;
  return n.map(Math.sqrt);
}

/**
 * The static per-feature factor a criterion multiplies |x| by, from W [out, in] in float64; null
 * for the criteria that use none (magnitude, and CLACT, whose factor comes from X).
 */
export function weightFactor(
  c: Criterion,
  w: ArrayLike<number>,
  out: number,
  inF: number,
): Float64Array | null {
  if (w.length !== out * inF) {
    throw new ShapeError(c, `W has ${w.length} values, not [${out}, ${inF}]`);
  }
  if (c === "weight-aware") return columnNormsHost(w, out, inF);
  if (c === "variance") {
    const mean = new Float64Array(inF);
    for (let o = 0; o < out; o++) for (let j = 0; j < inF; j++) mean[j] += w[o * inF + j] / out;
    const v = new Float64Array(inF);
    for (let o = 0; o < out; o++) {
      for (let j = 0; j < inF; j++) v[j] += (w[o * inF + j] - mean[j]) ** 2 / out;
    }
    return v;
  }
  if (c === "amber") {
    const sorted = Float64Array.from(w).sort();
    const lo = quantileSorted(sorted, 0.005);
    const hi = quantileSorted(sorted, 0.995);
    const clipped = Float64Array.from(w, (v) => Math.min(hi, Math.max(lo, v)));
    const mean = clipped.reduce((a, b) => a + b, 0) / clipped.length;
    const std = Math.sqrt(clipped.reduce((a, b) => a + (b - mean) ** 2, 0) / clipped.length);
    if (!(std > 0)) throw new RangeError("amber: W is constant after clipping; Ŵ is undefined");
    const norms = columnNormsHost(clipped.map((v) => (v - mean) / std), out, inF);
    const least = norms.reduce((a, b) => Math.min(a, b), Infinity);
    if (!(least > 0)) {
      throw new RangeError("amber: a column of Ŵ has norm 0; the ratio is undefined");
    }
    return norms.map((v) => v / least);
  }
  return null;
}

/** The float64 reference: scores [T, in] of x [T, in] for W [out, in]. */
export function scoresHost(
  c: Criterion,
  x: ArrayLike<number>,
  tokens: number,
  inF: number,
  w: ArrayLike<number>,
  out: number,
): Float64Array {
  const factor = weightFactor(c, w, out, inF);
  const s = Float64Array.from(x, Math.abs);
  if (factor) { for (let i = 0; i < s.length; i++) s[i] *= factor[i % inF]; }
  if (c === "clact") {
    const cols = new Float64Array(inF);
    const rows = new Float64Array(tokens);
    for (let t = 0; t < tokens; t++) {
      for (let j = 0; j < inF; j++) {
        cols[j] += x[t * inF + j] ** 2;
        rows[t] += x[t * inF + j] ** 2;
      }
    }
    for (let t = 0; t < tokens; t++) {
      const r = Math.sqrt(rows[t]);
      for (let j = 0; j < inF; j++) {
        s[t * inF + j] = r > 0 ? (s[t * inF + j] * Math.sqrt(cols[j])) / r : 0;
      }
    }
  }
  return s;
}

/**
 * Scores a layer's inputs on the GPU by one criterion. The weight factor is computed once, from
 * the weight as it is when the scorer is made (pruning is applied to a trained, frozen model).
 */
export class ActivationScorer {
  readonly factor: Tensor | null;

  private constructor(
    readonly criterion: Criterion,
    readonly inFeatures: number,
    factor: Float64Array | null,
    e: Engine,
  ) {
    this.factor = factor
      ? e.tensor(Float32Array.from(factor), [inFeatures], "f32", `${criterion} factor`)
      : null;
    // The factor lives as long as the scorer, whatever tidy scope made it.
    if (this.factor) e.keep(this.factor);
  }

  /** Reads W [out, in] back once to compute the criterion's static factor. */
  static async create(c: Criterion, weight: Tensor): Promise<ActivationScorer> {
    assertCriterion(c);
    assertDType(`${c} scorer`, weight, "f32");
    if (weight.rank !== 2) {
      throw new ShapeError(`${c} scorer`, `W must be [out, in], got ${shapeString(weight.shape)}`);
    }
    const [out, inF] = weight.shape;
    const factor = c === "weight-aware" || c === "variance" || c === "amber"
      ? weightFactor(c, await weight.read(), out, inF)
      : null;
    return new ActivationScorer(c, inF, factor, weight.engine);
  }

  /**
   * Scores of x [T, in], or null for magnitude, whose score is |x| and which the prune kernel
   * computes itself.
   */
  scores(x: Tensor): Tensor | null {
    const op = `${this.criterion} scores`;
    assertDType(op, x, "f32");
    if (x.rank !== 2 || x.shape[1] !== this.inFeatures) {
      throw new ShapeError(
        op,
        `x must be [tokens, ${this.inFeatures}], got ${shapeString(x.shape)}`,
      );
    }
    if (this.criterion === "magnitude") return null;
    return computeScores(op, x, this.factor, this.criterion === "clact");
  }

  dispose(): void {
    this.factor?.dispose();
  }
}

/** |x|·factor[j], times ‖X_{:,j}‖/‖X_{t,:}‖ with `clact`, for x [rows, features]. */
function computeScores(op: string, x: Tensor, factor: Tensor | null, clact: boolean): Tensor {
  const e = x.engine;
  const [tokens, features] = x.shape;
  // The row norms loop over a token's features in one invocation.
  if (clact && features > LOOP_BUDGET) {
    throw new ShapeError(op, `${shapeString(x.shape)}: rows too long for one norm loop`);
  }
  const params = {
    tokens,
    features,
    use_factor: factor ? 1 : 0,
    clact: clact ? 1 : 0,
    first: 0,
    count: 0,
  };
  const scores = e.empty(x.shape, "f32", op);
  // The score entry binds every buffer it names: the norms exist (unfilled) without CLACT, and x
  // stands in for a missing factor (both read-only, never read when use_factor is 0).
  const cols = clact ? columnNorms(x) : e.empty([features], "f32", "unused column norms");
  const rows = e.empty([tokens], "f32", "clact row norms");
  if (clact) {
    SCORES_KERNEL.dispatch(e.gpu, {
      label: "clact row norms",
      entry: "rows",
      params,
      buffers: { x: x.storage, row_norms: rows.storage },
      workgroups: groupsFor(e, tokens, 64),
    });
  }
  SCORES_KERNEL.dispatch(e.gpu, {
    label: op,
    entry: "score",
    params,
    buffers: {
      x: x.storage,
      factor: (factor ?? x).storage,
      col_norms: cols.storage,
      row_norms: rows.storage,
      scores: scores.storage,
    },
    workgroups: groupsFor(e, tokens * features, 64),
  });
  cols.dispose();
  rows.dispose();
  return scores;
}

/**
 * Tokens one pass of a per-feature loop over the tokens walks (columnNorms, columnAbsMax): all of
 * them on a GPU adapter, at most LOOP_BUDGET on a software one (llvmpipe cut a loop over 70,000
 * tokens short).
 */
export function tokenPassLength(e: Engine, tokens: number): number {
  return e.gpu.isSoftware ? Math.min(Math.max(1, tokens), LOOP_BUDGET) : Math.max(1, tokens);
}

/**
 * ‖X_{:,j}‖₂ over the rows of x [rows, features] → [features], in passes of tokenPassLength
 * tokens that continue one sum in the same order: one pass's result, bit for bit.
 */
export function columnNorms(x: Tensor): Tensor {
  const op = "column norms";
  assertDType(op, x, "f32");
  if (x.rank !== 2) throw new ShapeError(op, `x must be 2-D, got ${shapeString(x.shape)}`);
  const [tokens, features] = x.shape;
  const e = x.engine;
  const cols = e.empty([features], "f32", op);
  const count = tokenPassLength(e, tokens);
  // One pass at least: no tokens give norms of 0.
  let first = 0;
  do {
    SCORES_KERNEL.dispatch(e.gpu, {
      label: op,
      entry: "columns",
      params: { tokens, features, use_factor: 0, clact: 0, first, count },
      buffers: { x: x.storage, col_norms: cols.storage },
      workgroups: groupsFor(e, features, 64),
    });
    first += count;
  } while (first < tokens);
  return cols;
}

/** |v_ij|·factor[j] for v [rows, features] and factor [features] (Wanda's score of W). */
export function scaledMagnitude(v: Tensor, factor: Tensor): Tensor {
  const op = "scaled magnitude";
  assertDType(op, v, "f32");
  assertDType(op, factor, "f32");
  if (v.rank !== 2 || factor.rank !== 1 || factor.shape[0] !== v.shape[1]) {
    throw new ShapeError(
      op,
      `v ${shapeString(v.shape)} and factor ${shapeString(factor.shape)} do not match`,
    );
  }
  return computeScores(op, v, factor, false);
}
