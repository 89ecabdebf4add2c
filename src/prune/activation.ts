/**
 * Activation pruning at inference (methods.md §3): the input x [T, in] of a linear layer is pruned
 * per token — top N of every M consecutive features, or the top k of all of them — by a criterion
 * (criteria.ts), and multiplied by W while compressed (src/sparse's prune kernel and
 * sparseActivationMatmul). Error mitigations:
 * - "variance": y_t = c_t · P(x_t)Wᵀ, c_t = sqrt(Var(x_t)/Var(P(x_t))) (variances over the in
 *   features, pruned ones counting as zeros), which is the kept values scaled by c_t;
 * - "median-token": y = (P(x−η) + η)Wᵀ = P(x−η)Wᵀ + η_t·Σ_j W_{:,j}, η_t the median of x_t
 *   (the mean of the two middle values for an even width, as numpy takes it);
 * - "median-static": the same with one η for every token: the per-token medians of the dense
 *   layer's inputs averaged over calibration batches (ours: one scalar per layer);
 * - "smoothquant": y = P(x/s)(W·diag(s))ᵀ, s_j = sqrt(max|x_j| / max|W_{:,j}|), max|x_j| over the
 *   dense layer's inputs on calibration batches (s_j = 1 where either maximum is 0, ours); the
 *   criterion scores x/s against W·diag(s).
 * - "learn-shift", "learn-scale-shift": y = (γ ⊙ P(x − η) + η)Wᵀ with η (and γ) per feature
 *   fitted on calibration batches (learnable.ts).
 * The transform hooks into `Linear` (LinearInputTransform); `applyActivationPruning` walks a
 * model and sets it on the chosen layers. The float64 host reference is here too.
 */
import type { Linear, LinearInputTransform } from "../nn/linear.ts";
import type { Module } from "../nn/module.ts";
import { type NmPattern, type NmTensor, patternName } from "../sparse/format.ts";
import { matmulTransposedHost, pruneHost, pruneUnstructuredHost } from "../sparse/host.ts";
import { sparseActivationGemvTransposed, sparseActivationMatmul } from "../sparse/matmul.ts";
import { pruneNm, pruneUnstructured } from "../sparse/prune.ts";
import type { Engine } from "../tensor/engine.ts";
import { assertDType, declareKernel, groupsFor } from "../tensor/kernel.ts";
import { addBias } from "../tensor/ops/bias.ts";
import { clone } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { transpose } from "../tensor/ops/transpose.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import {
  ActivationScorer,
  assertCriterion,
  type Criterion,
  scoresHost,
  tokenPassLength,
} from "./criteria.ts";
import { fitLearnable, type FitOptions, type Keep, type LearnedMitigation } from "./learnable.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

/** The mitigations fitted from calibration batches, and whether each needs an optimiser. */
const CALIBRATED = ["median-static", "smoothquant", "learn-shift", "learn-scale-shift"];
const isLearnable = (m: string) => m.startsWith("learn-");

export const MITIGATIONS = [
  "none",
  "variance",
  "median-token",
  "median-static",
  "smoothquant",
  "learn-shift",
  "learn-scale-shift",
] as const;
export type Mitigation = typeof MITIGATIONS[number];

/** An N:M pattern, or unstructured pruning of a fraction (0 ≤ ratio < 1) of each token's values. */
export type Sparsity = { pattern: NmPattern } | { unstructured: number };

export interface ActivationSpec {
  sparsity: Sparsity;
  criterion: Criterion;
  mitigation: Mitigation;
}

/** "8:16", or "u50" for unstructured 50%: the names a command line and a table use. */
export const sparsityName = (s: Sparsity) =>
  "pattern" in s ? patternName(s.pattern) : `u${+(s.unstructured * 100).toFixed(4)}`;

/** The inverse of sparsityName; the error says what is accepted. */
export function parseSparsity(text: string): Sparsity {
  const nm = /^(\d+):(\d+)$/.exec(text);
  if (nm) return { pattern: { n: Number(nm[1]), m: Number(nm[2]) } };
  const u = /^u(\d+(?:\.\d+)?)$/.exec(text);
  if (u && Number(u[1]) < 100) return { unstructured: Number(u[1]) / 100 };
  throw new RangeError(
    `sparsity ${text}: expected N:M (e.g. 8:16) or uP, P% unstructured (e.g. u50)`,
  );
}

/**
 * Pruned activations are never stored, so the compact combinatorial code buys nothing; a position
 * per kept value spares every output of the sparse product decoding each group's code again
 * (src/sparse/matmul.ts walks M + N + 1 steps per group with codes, N + 1 with positions).
 */
const ACTIVATION_ENCODING = "indices";

const MITIGATION_SHADER = /* wgsl */ `
// Mitigations of activation pruning (src/prune/activation.ts); x [tokens, features], y [tokens, outs].
struct Params { tokens: u32, features: u32, outs: u32, kept: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> kept_values: array<f32>;
@group(0) @binding(3) var<storage, read> w_sums: array<f32>;
@group(0) @binding(4) var<storage, read_write> medians: array<f32>;
@group(0) @binding(5) var<storage, read_write> shifted: array<f32>;
@group(0) @binding(6) var<storage, read_write> row_scale: array<f32>;
@group(0) @binding(7) var<storage, read_write> y: array<f32>;
@group(0) @binding(8) var<storage, read_write> col_vec: array<f32>;

fn flat(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

// One invocation per value: its rank in its token (ties to the lower position, so ranks are a
// permutation); the one or two middle ranks write the token's median halves [t, 2].
@compute @workgroup_size(64)
fn median_halves(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.tokens * p.features) { return; }
  let t = i / p.features;
  let c = i % p.features;
  let v = x[i];
  var rank = 0u;
  for (var j = 0u; j < p.features; j++) {
    let u = x[t * p.features + j];
    if (u < v || (u == v && j < c)) { rank++; }
  }
  let lo = (p.features - 1u) / 2u;
  let hi = p.features / 2u;
  if (rank == lo) { medians[2u * t] = v; }
  if (rank == hi) { medians[2u * t + 1u] = v; }
}

// x − η_t, η_t the mean of the token's median halves.
@compute @workgroup_size(64)
fn shift(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.tokens * p.features) { return; }
  let t = i / p.features;
  shifted[i] = x[i] - 0.5 * (medians[2u * t] + medians[2u * t + 1u]);
}

// y += η_t · Σ_j W_{o,j}: adds back the shift the pruned product left out.
@compute @workgroup_size(64)
fn add_shift(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.tokens * p.outs) { return; }
  let t = i / p.outs;
  y[i] += 0.5 * (medians[2u * t] + medians[2u * t + 1u]) * w_sums[i % p.outs];
}

// c_t = sqrt(Var(x_t) / Var(P(x_t))) over the features, the pruned ones zeros; 1 when P(x_t) is
// constant (nothing to rescale). Two dispatches, each one loop over the features (the kept values
// ride along while j < kept): variance_means writes the means of x_t and P(x_t) to medians [t, 2],
// variance_scale the deviations. One invocation looping 2·features + 2·kept times ran past
// llvmpipe's loop cap from 21,846 features at 50%.
@compute @workgroup_size(64)
fn variance_means(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat(gid, nwg);
  if (t >= p.tokens) { return; }
  let f = f32(p.features);
  var mx = 0.0;
  var mp = 0.0;
  for (var j = 0u; j < p.features; j++) {
    mx += x[t * p.features + j];
    if (j < p.kept) { mp += kept_values[t * p.kept + j]; }
  }
  medians[2u * t] = mx / f;
  medians[2u * t + 1u] = mp / f;
}

@compute @workgroup_size(64)
fn variance_scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = flat(gid, nwg);
  if (t >= p.tokens) { return; }
  let mx = medians[2u * t];
  let mp = medians[2u * t + 1u];
  var vx = 0.0;
  // The pruned zeros each add mp² to the sum of squared deviations.
  var vp = f32(p.features - p.kept) * mp * mp;
  for (var j = 0u; j < p.features; j++) {
    let d = x[t * p.features + j] - mx;
    vx += d * d;
    if (j < p.kept) { let dp = kept_values[t * p.kept + j] - mp; vp += dp * dp; }
  }
  row_scale[t] = select(1.0, sqrt(vx / vp), vp > 0.0);
}

// x_tj · col_vec[j]: SmoothQuant's x/s, col_vec holding 1/s.
@compute @workgroup_size(64)
fn scale_columns(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.tokens * p.features) { return; }
  shifted[i] = x[i] * col_vec[i % p.features];
}

@compute @workgroup_size(64)
fn scale_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.tokens * p.outs) { return; }
  y[i] *= row_scale[i / p.outs];
}
`;

const MITIGATION_KERNEL = declareKernel({
  name: "activation mitigation",
  source: MITIGATION_SHADER,
  params: { tokens: "u32", features: "u32", outs: "u32", kept: "u32" },
  buffers: [
    "x",
    "kept_values",
    "w_sums",
    "medians",
    "shifted",
    "row_scale",
    "y",
    "col_vec",
  ],
});

const COLUMN_ABSMAX_SHADER = /* wgsl */ `
// max_t |x_tj| of x [tokens, features], one invocation per feature (SmoothQuant's calibration,
// src/prune/activation.ts), over the tokens [first, first + count): a pass after the first carries
// on from the maxima the one before wrote.
struct Params { tokens: u32, features: u32, first: u32, count: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> col_max: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * 64u;
  if (j >= p.features) { return; }
  var m = 0.0;
  if (p.first > 0u) { m = col_max[j]; }
  let last = min(p.first + p.count, p.tokens);
  for (var t = p.first; t < last; t++) { m = max(m, abs(x[t * p.features + j])); }
  col_max[j] = m;
}
`;

const COLUMN_ABSMAX_KERNEL = declareKernel({
  name: "column max |x|",
  source: COLUMN_ABSMAX_SHADER,
  params: { tokens: "u32", features: "u32", first: "u32", count: "u32" },
  buffers: ["x", "col_max"],
});

/** Checks a spec against a layer's input width; the error names the layer, width and pattern. */
export function checkSpec(spec: ActivationSpec, inFeatures: number, layer: string): void {
  assertCriterion(spec.criterion);
  if (!(MITIGATIONS as readonly string[]).includes(spec.mitigation)) {
    throw new RangeError(
      `unknown mitigation ${spec.mitigation} (one of ${MITIGATIONS.join(", ")})`,
    );
  }
  const s = spec.sparsity;
  if ("pattern" in s) {
    const { n, m } = s.pattern;
    if (!(Number.isInteger(n) && Number.isInteger(m) && n >= 1 && n < m && m <= 32)) {
      throw new RangeError(`${layer}: pattern ${patternName(s.pattern)} needs 1 ≤ N < M ≤ 32`);
    }
    if (inFeatures % m !== 0) {
      throw new RangeError(
        `${layer}: input width ${inFeatures} is not a multiple of M = ${m}, so pattern ` +
          `${patternName(s.pattern)} cannot group it`,
      );
    }
  } else if (!(s.unstructured >= 0 && s.unstructured < 1)) {
    throw new RangeError(`${layer}: unstructured ratio ${s.unstructured} is not in [0, 1)`);
  }
  // The variance and median kernels (variance_means, variance_scale, median_halves) loop over a
  // token's features once per invocation; the other mitigations have no such loop.
  const loopsOverFeatures = spec.mitigation === "variance" || spec.mitigation.startsWith("median");
  if (loopsOverFeatures && inFeatures > LOOP_BUDGET) {
    throw new RangeError(
      `${layer}: mitigation ${spec.mitigation} loops over the input width ${inFeatures} per ` +
        `token, more than one invocation's loop budget of ${LOOP_BUDGET}`,
    );
  }
}

/** Values kept per token of width `d` when pruning a fraction `ratio` unstructured. */
export function keptUnstructured(d: number, ratio: number): number {
  return d - Math.round(d * ratio);
}

/** Whether a sparsity prunes nothing (unstructured at ratio 0, or one that rounds to it). */
function prunesNothing(s: Sparsity, d: number): boolean {
  return !("pattern" in s) && keptUnstructured(d, s.unstructured) === d;
}

/** The median of values (the mean of the two middle ones for an even count). */
export function medianHost(v: ArrayLike<number>): number {
  const s = Float64Array.from(v).sort();
  return 0.5 * (s[(s.length - 1) >> 1] + s[s.length >> 1]);
}

/** SmoothQuant's s_j = sqrt(max|x_j| / max_o |W_oj|) (1 where either is 0), in float64. */
export function smoothScalesHost(
  xAbsMax: ArrayLike<number>,
  w: ArrayLike<number>,
  out: number,
  inF: number,
): Float64Array {
  return Float64Array.from({ length: inF }, (_, j) => {
    let wm = 0;
    for (let o = 0; o < out; o++) wm = Math.max(wm, Math.abs(w[o * inF + j]));
    return xAbsMax[j] > 0 && wm > 0 ? Math.sqrt(xAbsMax[j] / wm) : 1;
  });
}

/** What a layer learned from calibration batches: median-static's η, SmoothQuant's s, η and γ. */
export interface Calibration {
  shift?: number;
  smooth?: ArrayLike<number>;
  learned?: LearnedMitigation;
  /** The learnable mitigations' layer MSE on the calibration batches before and after the fit. */
  mse?: { before: number; after: number };
}

/** Whether a mitigation needs calibration batches before the layer can run pruned. */
export const needsCalibration = (m: Mitigation) => CALIBRATED.includes(m);

/**
 * The float64 reference: T(x)·Wᵀ for x [T, in], W [out, in] ([T, out], no bias), with the
 * calibrated values of "median-static" and "smoothquant".
 */
export function activationProductHost(
  x: ArrayLike<number>,
  tokens: number,
  inF: number,
  w: ArrayLike<number>,
  out: number,
  spec: ActivationSpec,
  calibration: Calibration = {},
): Float64Array {
  checkSpec(spec, inF, "host reference");
  const s = spec.sparsity;
  if (prunesNothing(s, inF)) return matmulTransposedHost(x, w, tokens, out, inF);
  if (spec.mitigation === "smoothquant") {
    const sm = calibration.smooth;
    if (!sm) throw new RangeError("smoothquant needs the calibrated scales");
    const xs = Float64Array.from(x, (v, i) => v / sm[i % inF]);
    const ws = Float64Array.from(w, (v, i) => v * sm[i % inF]);
    return activationProductHost(xs, tokens, inF, ws, out, { ...spec, mitigation: "none" });
  }
  if (isLearnable(spec.mitigation)) {
    return learnedProductHost(x, tokens, inF, w, out, spec, calibration.learned);
  }
  const staticShift = calibration.shift ?? 0;
  const median = spec.mitigation.startsWith("median");
  const eta = Array.from(
    { length: tokens },
    (_, t) =>
      spec.mitigation === "median-token"
        ? medianHost(Array.from(x).slice(t * inF, (t + 1) * inF))
        : median
        ? staticShift
        : 0,
  );
  const xs = Float64Array.from(x, (v, i) => v - eta[Math.floor(i / inF)]);
  const scores = scoresHost(spec.criterion, xs, tokens, inF, w, out);
  const masked = "pattern" in s
    ? pruneHost(xs, [tokens, inF], 1, s.pattern, "combinatorial", scores).masked
    : pruneUnstructuredHost(xs, [tokens, inF], 1, keptUnstructured(inF, s.unstructured), scores)
      .masked;
  const y = matmulTransposedHost(masked, w, tokens, out, inF);
  for (let t = 0; t < tokens; t++) {
    let c = 1;
    if (spec.mitigation === "variance") {
      const row = Array.from(x).slice(t * inF, (t + 1) * inF);
      const vp = variance(Array.from(masked).slice(t * inF, (t + 1) * inF));
      c = vp > 0 ? Math.sqrt(variance(row) / vp) : 1;
    }
    for (let o = 0; o < out; o++) {
      let add = 0;
      if (median) { for (let j = 0; j < inF; j++) add += eta[t] * w[o * inF + j]; }
      y[t * out + o] = y[t * out + o] * c + add;
    }
  }
  return y;
}

/** (γ ⊙ P(x − η) + η)·Wᵀ in float64 (γ = 1 when `learned.scale` is null). */
function learnedProductHost(
  x: ArrayLike<number>,
  tokens: number,
  inF: number,
  w: ArrayLike<number>,
  out: number,
  spec: ActivationSpec,
  learned: LearnedMitigation | undefined,
): Float64Array {
  if (!learned) throw new RangeError(`${spec.mitigation} needs the fitted shift`);
  const { shift, scale } = learned;
  const z = Float64Array.from(x, (v, i) => v - shift[i % inF]);
  const scores = scoresHost(spec.criterion, z, tokens, inF, w, out);
  const s = spec.sparsity;
  const masked = "pattern" in s
    ? pruneHost(z, [tokens, inF], 1, s.pattern, "combinatorial", scores).masked
    : pruneUnstructuredHost(z, [tokens, inF], 1, keptUnstructured(inF, s.unstructured), scores)
      .masked;
  const u = Float64Array.from(masked, (v, i) => v * (scale ? scale[i % inF] : 1) + shift[i % inF]);
  return matmulTransposedHost(u, w, tokens, out, inF);
}

function variance(v: number[]): number {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
}

/** The transform one layer runs: activation pruning by a spec, with its criterion's scorer. */
export class ActivationPruner implements LinearInputTransform {
  /** Σ_j W_{o,j} [out], for the median shifts. */
  private readonly wSums: Tensor | null;
  private staticShift: number | null = null;
  /** SmoothQuant once calibrated: 1/s [in], W·diag(s) and the criterion's scorer of it. */
  private smooth: {
    scales: Float64Array;
    inverse: Tensor;
    weight: Tensor;
    scorer: ActivationScorer;
  } | null = null;
  /**
   * While calibrating, per batch: per-token median halves [T, 2] (median-static) or column
   * max |x| [in] (smoothquant).
   */
  private calibration: Tensor[] | null = null;
  /** A learnable mitigation once fitted: −η [in], W·diag(γ) [out, in], ηWᵀ [out]. */
  private learned: { negShift: Tensor; weight: Tensor; bias: Tensor } | null = null;
  /** Wᵀ [in, out] of the weight one-token products last multiplied (sparseProduct). */
  private transposed: { of: Tensor; wt: Tensor } | null = null;

  private constructor(
    readonly spec: ActivationSpec,
    readonly layer: string,
    readonly inFeatures: number,
    private readonly weight: Tensor,
    private readonly scorer: ActivationScorer,
    wSums: Float64Array | null,
    e: Engine,
  ) {
    this.wSums = wSums ? e.tensor(Float32Array.from(wSums), [wSums.length], "f32", "W sums") : null;
    // The sums live as long as the pruner, whatever tidy scope made it.
    if (this.wSums) e.keep(this.wSums);
  }

  /** A pruner for W [out, in]; the spec is checked against the width first. */
  static async create(
    weight: Tensor,
    spec: ActivationSpec,
    layer = "linear",
  ): Promise<ActivationPruner> {
    assertDType(layer, weight, "f32");
    const [out, inF] = weight.shape;
    checkSpec(spec, inF, layer);
    let sums: Float64Array | null = null;
    if (spec.mitigation.startsWith("median")) {
      const w = await weight.read();
      sums = new Float64Array(out);
      for (let o = 0; o < out; o++) for (let j = 0; j < inF; j++) sums[o] += w[o * inF + j];
    }
    const scorer = await ActivationScorer.create(spec.criterion, weight);
    return new ActivationPruner(spec, layer, inF, weight, scorer, sums, weight.engine);
  }

  /** The static shift once calibrated (null before). */
  get shift(): number | null {
    return this.staticShift;
  }

  /** From now until finishCalibration, products are dense and their inputs' statistics kept. */
  startCalibration(): void {
    const m = this.spec.mitigation;
    if (!needsCalibration(m)) {
      throw new Error(`${this.layer}: mitigation ${m} has nothing to calibrate`);
    }
    this.calibration = [];
  }

  /**
   * Sets the static η (the mean over every calibration token of its median), SmoothQuant's s
   * (from the column maxima over every calibration batch) or the learnable mitigation's η and γ
   * (fitted with `fit` on the layer's inputs of every calibration batch), and returns it.
   */
  async finishCalibration(fit?: FitOptions): Promise<Calibration> {
    const seen = this.calibration;
    if (!seen?.length) throw new Error(`${this.layer}: no calibration batch was seen`);
    this.calibration = null;
    if (this.spec.mitigation === "smoothquant") return { smooth: await this.fitSmooth(seen) };
    if (isLearnable(this.spec.mitigation)) {
      try {
        if (!fit) throw new Error(`${this.layer}: ${this.spec.mitigation} needs fit options`);
        return await this.fitLearned(seen, fit);
      } finally {
        seen.forEach((t) => t.dispose());
      }
    }
    let sum = 0;
    let count = 0;
    for (const m of seen) {
      const halves = await m.read();
      for (let t = 0; t < halves.length; t += 2) sum += 0.5 * (halves[t] + halves[t + 1]);
      count += halves.length / 2;
      m.dispose();
    }
    this.staticShift = sum / count;
    return { shift: this.staticShift };
  }

  /** The values the fit keeps per token: this layer's pattern, or its unstructured count. */
  private get keep(): Keep {
    const s = this.spec.sparsity;
    return "pattern" in s
      ? { pattern: s.pattern }
      : { kept: keptUnstructured(this.inFeatures, s.unstructured) };
  }

  private async fitLearned(seen: Tensor[], fit: FitOptions): Promise<Calibration> {
    const withScale = this.spec.mitigation === "learn-scale-shift";
    const r = await fitLearnable(seen, this.weight, this.keep, this.scorer, withScale, fit);
    const { shift, scale } = r.learned;
    const inF = this.inFeatures;
    const w = await this.weight.read();
    const out = w.length / inF;
    const bias = new Float32Array(out);
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let j = 0; j < inF; j++) s += shift[j] * w[o * inF + j];
      bias[o] = s;
    }
    const e = this.weight.engine;
    const scaled = Float32Array.from(w, (v, i) => v * (scale ? scale[i % inF] : 1));
    this.disposeLearned();
    this.learned = {
      negShift: e.tensor(Float32Array.from(shift, (v) => -v), [inF], "f32", "−η"),
      weight: e.tensor(scaled, [out, inF], "f32", `${this.layer} W·diag(γ)`),
      bias: e.tensor(bias, [out], "f32", "ηWᵀ"),
    };
    // They live as long as the pruner, whatever tidy scope calibrated it.
    e.keep(this.learned.negShift, this.learned.weight, this.learned.bias);
    return { learned: r.learned, mse: { before: r.mseBefore, after: r.mseAfter } };
  }

  private disposeLearned(): void {
    if (!this.learned) return;
    this.disposeTransposed();
    for (const t of Object.values(this.learned)) t.dispose();
    this.learned = null;
  }

  private async fitSmooth(seen: Tensor[]): Promise<Float64Array> {
    const inF = this.inFeatures;
    const xMax = new Float64Array(inF);
    for (const m of seen) {
      const batch = await m.read();
      for (let j = 0; j < inF; j++) xMax[j] = Math.max(xMax[j], batch[j]);
      m.dispose();
    }
    const w = await this.weight.read();
    const out = w.length / inF;
    const scales = smoothScalesHost(xMax, w, out, inF);
    const e = this.weight.engine;
    const scaled = Float32Array.from(w, (v, i) => v * scales[i % inF]);
    const weight = e.tensor(scaled, [out, inF], "f32", `${this.layer} W·diag(s)`);
    const inverse = e.tensor(Float32Array.from(scales, (v) => 1 / v), [inF], "f32", "1/s");
    // Both live as long as the pruner, whatever tidy scope calibrated it.
    e.keep(weight, inverse);
    this.disposeTransposed();
    this.smooth?.scorer.dispose();
    this.smooth?.weight.dispose();
    this.smooth?.inverse.dispose();
    const scorer = await ActivationScorer.create(this.spec.criterion, weight);
    this.smooth = { scales, inverse, weight, scorer };
    return scales;
  }

  product(x: Tensor, weight: Tensor): Tensor {
    const op = `${this.layer} activation pruning`;
    assertDType(op, x, "f32");
    const inF = this.inFeatures;
    if (x.rank < 2 || x.shape[x.rank - 1] !== inF || weight.shape[1] !== inF) {
      throw new ShapeError(op, `x ${shapeString(x.shape)} does not end in ${inF} features`);
    }
    const e = x.engine;
    const lead = x.shape.slice(0, -1);
    const out = weight.shape[0];
    const x2 = reshape(x, [x.size / inF, inF]);
    const tokens = x2.shape[0];
    const params = { tokens, features: inF, outs: out, kept: 0 };
    const s = this.spec.sparsity;
    if (this.calibration) this.calibration.push(this.calibrationStatistic(x2, params));
    // Nothing pruned: every mitigation reduces to x·Wᵀ, which the dense kernel computes exactly as
    // an unpruned layer does (so 0% equals dense bit for bit). Calibration sees the dense layer.
    if (this.calibration || prunesNothing(s, inF)) {
      return reshape(matmul(x2, weight, { transB: true }), [...lead, out]);
    }
    const mit = this.spec.mitigation;
    if (isLearnable(mit)) return reshape(this.learnedProduct(x2), [...lead, out]);
    let medians: Tensor | null = null;
    if (mit === "median-token") medians = this.medianHalves(x2, params);
    if (mit === "median-static") {
      if (this.staticShift === null) {
        throw new Error(`${this.layer}: median-static needs calibration batches first`);
      }
      const eta = new Float32Array(2 * tokens).fill(this.staticShift);
      medians = e.tensor(eta, [tokens, 2], "f32", "static median");
    }
    let input = x2;
    let scorer = this.scorer;
    let w = weight;
    if (mit === "smoothquant") {
      if (!this.smooth) {
        throw new Error(`${this.layer}: smoothquant needs calibration batches first`);
      }
      ({ scorer, weight: w } = this.smooth);
      input = e.empty(x2.shape, "f32", "x/s");
      MITIGATION_KERNEL.dispatch(e.gpu, {
        entry: "scale_columns",
        params,
        buffers: { x: x2.storage, col_vec: this.smooth.inverse.storage, shifted: input.storage },
        workgroups: groupsFor(e, tokens * inF, 64),
      });
    }
    if (medians) {
      input = e.empty(x2.shape, "f32", "shifted input");
      MITIGATION_KERNEL.dispatch(e.gpu, {
        entry: "shift",
        params,
        buffers: { x: x2.storage, medians: medians.storage, shifted: input.storage },
        workgroups: groupsFor(e, tokens * inF, 64),
      });
    }
    const scores = scorer.scores(input) ?? undefined;
    const prune = () =>
      "pattern" in s
        ? pruneNm(input, s.pattern, { scores, encoding: ACTIVATION_ENCODING }).nm
        : pruneUnstructured(input, keptUnstructured(inF, s.unstructured), { scores }).nm;
    // Chosen by x alone (no scores of W, no shift or scaling): q, k and v (gate and up) prune one
    // x alike, so the second and third take the first one's compressed form.
    const nm = !scores && input === x2 && !e.tape
      ? sharedPrune(x, sparsityName(s), prune)
      : prune();
    const y = this.sparseProduct(nm, w);
    const all = { ...params, kept: nm.layout.kept };
    if (medians) {
      MITIGATION_KERNEL.dispatch(e.gpu, {
        entry: "add_shift",
        params: all,
        buffers: { medians: medians.storage, w_sums: this.wSums!.storage, y: y.storage },
        workgroups: groupsFor(e, tokens * out, 64),
      });
    }
    if (mit === "variance") {
      const scale = e.empty([tokens], "f32", "variance correction");
      const means = e.empty([tokens, 2], "f32", "variance means");
      const rows = { x: x2.storage, kept_values: nm.values.storage, medians: means.storage };
      MITIGATION_KERNEL.dispatch(e.gpu, {
        entry: "variance_means",
        params: all,
        buffers: rows,
        workgroups: groupsFor(e, tokens, 64),
      });
      MITIGATION_KERNEL.dispatch(e.gpu, {
        entry: "variance_scale",
        params: all,
        buffers: { ...rows, row_scale: scale.storage },
        workgroups: groupsFor(e, tokens, 64),
      });
      means.dispose();
      MITIGATION_KERNEL.dispatch(e.gpu, {
        entry: "scale_rows",
        params: all,
        buffers: { row_scale: scale.storage, y: y.storage },
        workgroups: groupsFor(e, tokens * out, 64),
      });
    }
    return reshape(y, [...lead, out]);
  }

  /** What one calibration batch leaves: median halves, column maxima or the inputs themselves. */
  private calibrationStatistic(x2: Tensor, params: Record<string, number>): Tensor {
    const m = this.spec.mitigation;
    const t = m === "smoothquant"
      ? columnAbsMax(x2)
      : m === "median-static"
      ? this.medianHalves(x2, params)
      : clone(x2);
    x2.engine.keep(t);
    return t;
  }

  /** P(x − η)·(W·diag(γ))ᵀ + ηWᵀ on the sparse kernels. */
  private learnedProduct(x2: Tensor): Tensor {
    if (!this.learned) {
      throw new Error(`${this.layer}: ${this.spec.mitigation} needs calibration batches first`);
    }
    const z = addBias(x2, this.learned.negShift);
    const scores = this.scorer.scores(z) ?? undefined;
    const s = this.spec.sparsity;
    const { nm } = "pattern" in s
      ? pruneNm(z, s.pattern, { scores, encoding: ACTIVATION_ENCODING })
      : pruneUnstructured(z, keptUnstructured(this.inFeatures, s.unstructured), { scores });
    return addBias(this.sparseProduct(nm, this.learned.weight), this.learned.bias);
  }

  /**
   * S(x)·Wᵀ. One token (decoding) multiplies a transposed copy of W, in which a pruned input skips
   * a whole row (sparseActivationGemvTransposed at 8:16: 1.4–1.6× the best dense GEMV on
   * llvmpipe, the kernel on W [out, in] 0.4–0.7×), when out is a multiple of 4 (its vec4 form; the
   * scalar one is not measured against the W kernel) and W is a weight this pruner was made for:
   * the layer's own, or its SmoothQuant or learned copy. The copy is taken from W as it is at the
   * first one-token product and kept, like the criterion's column statistics and the median
   * shift's W sums taken at create: a pruner serves the weights it was made for, and whoever
   * writes a weight in place makes a new one (PrunedBackbone.deploy after a fine-tune's merge;
   * fine-tuning itself trains through src/finetune/activation.ts, not through a pruner). A weight
   * computed per call (Linear.weightTransform) is a new tensor each time, never the one the copy
   * was made of, so it takes the kernel on W [out, in] and is never served stale.
   */
  private sparseProduct(nm: NmTensor, w: Tensor): Tensor {
    const own = w === this.weight || w === this.smooth?.weight || w === this.learned?.weight;
    if (nm.layout.shape[0] !== 1 || w.shape[0] % 4 !== 0 || !own) {
      return sparseActivationMatmul(nm, w);
    }
    if (this.transposed?.of !== w) {
      this.disposeTransposed();
      this.transposed = { of: w, wt: transposeWeight(w) };
    }
    return sparseActivationGemvTransposed(nm, this.transposed.wt);
  }

  private disposeTransposed(): void {
    this.transposed?.wt.dispose();
    this.transposed = null;
  }

  private medianHalves(x2: Tensor, params: Record<string, number>): Tensor {
    const e = x2.engine;
    const tokens = x2.shape[0];
    const halves = e.empty([tokens, 2], "f32", "median halves");
    MITIGATION_KERNEL.dispatch(e.gpu, {
      entry: "median_halves",
      params: params as { tokens: number; features: number; outs: number; kept: number },
      buffers: { x: x2.storage, medians: halves.storage },
      workgroups: groupsFor(e, tokens * this.inFeatures, 64),
    });
    return halves;
  }

  dispose(): void {
    this.scorer.dispose();
    this.wSums?.dispose();
    this.calibration?.forEach((t) => t.dispose());
    this.smooth?.scorer.dispose();
    this.smooth?.weight.dispose();
    this.smooth?.inverse.dispose();
    this.disposeLearned();
    this.disposeTransposed();
  }
}

/** Compressed inputs by input tensor and sparsity, while both the input and they live. */
const SHARED_PRUNES = new WeakMap<Tensor, Map<string, NmTensor>>();

/**
 * `prune()` of x, or what an earlier call made of the same x at the same sparsity while x and it
 * live. Callers share only without a tape: training keeps one compressed input per layer, the
 * form its backward was checked in.
 */
function sharedPrune(x: Tensor, sparsity: string, prune: () => NmTensor): NmTensor {
  let byX = SHARED_PRUNES.get(x);
  if (!byX) SHARED_PRUNES.set(x, byX = new Map());
  const seen = byX.get(sparsity);
  if (seen && !x.isDisposed && !seen.values.isDisposed && !seen.meta.isDisposed) return seen;
  const nm = prune();
  byX.set(sparsity, nm);
  return nm;
}

/** Wᵀ [in, out] of W [out, in], kept past any tidy scope (its owner disposes it). */
function transposeWeight(w: Tensor): Tensor {
  const wt = transpose(w);
  w.engine.keep(wt);
  return wt;
}

/**
 * max_t |x_tj| of x [tokens, features] → [features]: SmoothQuant's calibration statistic (and
 * weight equalisation's), in passes of tokenPassLength tokens; max is exact, so the passes
 * give the one loop's result.
 */
export function columnAbsMax(x2: Tensor): Tensor {
  const op = "column max |x|";
  assertDType(op, x2, "f32");
  if (x2.rank !== 2) throw new ShapeError(op, `x must be 2-D, got ${shapeString(x2.shape)}`);
  const e = x2.engine;
  const [tokens, features] = x2.shape;
  const absMax = e.empty([features], "f32", op);
  const count = tokenPassLength(e, tokens);
  // One pass at least: no tokens leave every maximum 0.
  let first = 0;
  do {
    COLUMN_ABSMAX_KERNEL.dispatch(e.gpu, {
      label: op,
      params: { tokens, features, first, count },
      buffers: { x: x2.storage, col_max: absMax.storage },
      workgroups: groupsFor(e, features, 64),
    });
    first += count;
  } while (first < tokens);
  return absMax;
}

/** The layers a config may name: q, k, v, o, gate, up, down (LM), fc1, fc2 (SASRec). */
export const LAYER_ROLES = ["q", "k", "v", "o", "gate", "up", "down", "fc1", "fc2"] as const;
export type LayerRole = typeof LAYER_ROLES[number];

/** A child's name → its role: the LM's Hugging Face names and SASRec's own. */
const ROLE_OF: Record<string, LayerRole> = {
  q_proj: "q",
  k_proj: "k",
  v_proj: "v",
  o_proj: "o",
  gate_proj: "gate",
  up_proj: "up",
  down_proj: "down",
  q: "q",
  k: "k",
  v: "v",
  out: "o",
  fc1: "fc1",
  fc2: "fc2",
};

/** Every `Linear` of a model with its dotted name (the checkpoint's) and role, in tree order. */
export function linearLayers(model: Module): { name: string; role: LayerRole; layer: Linear }[] {
  const found: { name: string; role: LayerRole; layer: Linear }[] = [];
  const walk = (m: Module, prefix: string) => {
    // Module keeps its tree protected; this walks the same children namedParameters does.
    const children = (m as unknown as { children: Record<string, Module> }).children;
    for (const [k, child] of Object.entries(children)) {
      const role = ROLE_OF[k];
      if (role && "inputTransform" in child) {
        found.push({ name: `${prefix}${k}`, role, layer: child as Linear });
      } else walk(child, `${prefix}${k}.`);
    }
  };
  walk(model, "");
  return found;
}

export interface ActivationPruningConfig extends ActivationSpec {
  layers: readonly LayerRole[];
}

/**
 * Sets an activation-pruning transform on every layer of `model` whose role is in config.layers;
 * every layer is checked before any is changed, so a refused config leaves the model dense.
 * Returns the pruners, by layer name, for calibration and disposal.
 */
export async function applyActivationPruning(
  model: Module,
  config: ActivationPruningConfig,
): Promise<Map<string, ActivationPruner>> {
  for (const r of config.layers) {
    if (!(LAYER_ROLES as readonly string[]).includes(r)) {
      throw new RangeError(`unknown layer ${r} (one of ${LAYER_ROLES.join(", ")})`);
    }
  }
  const chosen = linearLayers(model).filter((l) => config.layers.includes(l.role));
  if (!chosen.length) throw new RangeError(`no layer of the model is one of ${config.layers}`);
  for (const l of chosen) checkSpec(config, l.layer.inFeatures, l.name);
  const pruners = new Map<string, ActivationPruner>();
  for (const l of chosen) {
    const p = await ActivationPruner.create(l.layer.weight, config, l.name);
    l.layer.inputTransform = p;
    pruners.set(l.name, p);
  }
  return pruners;
}

/** Puts every layer of `model` back on the dense path and frees the pruners. */
export function removeActivationPruning(model: Module, pruners: Map<string, ActivationPruner>) {
  for (const l of linearLayers(model)) {
    if (pruners.has(l.name)) l.layer.inputTransform = null;
  }
  pruners.forEach((p) => p.dispose());
}
