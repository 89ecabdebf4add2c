/**
 * Weight pruning at the activation pruning's sparsity (methods.md §3, "Weight pruning"): the same
 * N:M groups (or the top k of a row) along each row of W [out, in], by
 * - magnitude: |W_ij|
 * - Wanda:     |W_ij| · ‖X_{:,j}‖₂, X [T, in] the layer's inputs on calibration data;
 * kept compressed and multiplied by sparseWeightMatmul. The 8:16 paper's additions (WeightSpec):
 * salient outliers in their own N:M tensor, SmoothQuant-like equalisation before pruning,
 * variance correction of the output. Storage is reported in bits per element
 * of the dense W, metadata included (methods.md §3, "Storage").
 */
import type { LinearInputTransform } from "../nn/linear.ts";
import type { Module } from "../nn/module.ts";
import {
  metadataBitsPerElement,
  type NmLayout,
  type NmPattern,
  NmTensor,
  patternName,
} from "../sparse/format.ts";
import { pruneHost, pruneUnstructuredHost } from "../sparse/host.ts";
import { sparseWeightMatmul } from "../sparse/matmul.ts";
import { pruneNm, pruneUnstructured } from "../sparse/prune.ts";
import { addBias } from "../tensor/ops/bias.ts";
import { add, scale, sub } from "../tensor/ops/elementwise.ts";
import { assertDType } from "../tensor/kernel.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import {
  checkSpec,
  keptUnstructured,
  type LayerRole,
  linearLayers,
  smoothScalesHost,
  type Sparsity,
} from "./activation.ts";
import { scaledMagnitude } from "./criteria.ts";
import { InputStatsRecorder, OutputMomentsRecorder } from "./weight_calibration.ts";

export const WEIGHT_CRITERIA = ["magnitude", "wanda"] as const;
export type WeightCriterion = typeof WEIGHT_CRITERIA[number];

export interface WeightSpec {
  sparsity: Sparsity;
  criterion: WeightCriterion;
  /**
   * The 8:16 paper's salient weights: the top N_o of every M_o of each row by the criterion's
   * score are kept beside the main pattern in their own N_o:M_o tensor, and the main pattern
   * chooses among the others.
   */
  outliers?: NmPattern | null;
  /**
   * SmoothQuant-like equalisation before pruning: W·diag(s) is pruned, s_j = sqrt(max|x_j| /
   * max_o |W_oj|) from calibration inputs, and the kept weights are scaled back by 1/s (so the
   * layer's input is unchanged). Pruning W·diag(s) by magnitude is pruning W by |W_ij|·s_j; for
   * Wanda it changes nothing (|W_ij s_j|·‖X_j / s_j‖ is Wanda's score).
   */
  equalize?: boolean;
  /**
   * Variance correction of the layer output: per output o, y_o ← a_o·y_o + b_o with
   * a_o = σ_dense,o / σ_pruned,o and b_o = μ_dense,o − a_o·μ_pruned,o over calibration tokens
   * (before the bias), so that each output's mean and variance are the dense layer's.
   */
  correctVariance?: boolean;
}

/** Whether a spec needs calibration batches (Wanda, equalisation, variance correction). */
export const weightNeedsCalibration = (s: WeightSpec) =>
  s.criterion === "wanda" || !!s.equalize || !!s.correctVariance;

/** "wanda+o1:16+eq+vc": a spec's criterion and additions, as a table names it. */
export function weightSpecName(s: WeightSpec): string {
  return [
    s.criterion,
    ...(s.outliers ? [`o${patternName(s.outliers)}`] : []),
    ...(s.equalize ? ["eq"] : []),
    ...(s.correctVariance ? ["vc"] : []),
  ].join("+");
}

function checkWeightSpec(spec: WeightSpec, inFeatures: number, layer: string): void {
  if (!(WEIGHT_CRITERIA as readonly string[]).includes(spec.criterion)) {
    throw new RangeError(
      `unknown weight criterion ${spec.criterion} (one of ${WEIGHT_CRITERIA.join(", ")})`,
    );
  }
  // The groups and their checks are the activation pruning's, along W's input dimension.
  const check = (sparsity: Sparsity, what: string) =>
    checkSpec({ sparsity, criterion: "magnitude", mitigation: "none" }, inFeatures, what);
  check(spec.sparsity, layer);
  if (spec.outliers) check({ pattern: spec.outliers }, `${layer} outliers`);
  if ("unstructured" in spec.sparsity && spec.sparsity.unstructured === 0) {
    throw new RangeError(
      `${layer}: weight pruning at ratio 0 keeps W dense; leave the layer alone`,
    );
  }
}

/** What calibration measured of a layer's inputs: ‖X_{:,j}‖ (Wanda) and max|X_{:,j}| (eq). */
export interface InputStats {
  norms?: ArrayLike<number> | null;
  absMax?: ArrayLike<number> | null;
}

/** The per-column factor the score |W_ij|·f_j multiplies by, in float64; null: plain |W|. */
export function scoreFactorHost(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  spec: WeightSpec,
  stats: InputStats,
): Float64Array | null {
  let f: Float64Array | null = null;
  if (spec.criterion === "wanda") {
    if (!stats.norms) throw new RangeError("wanda needs the column norms of the layer's inputs");
    f = Float64Array.from(stats.norms);
  } else if (spec.equalize) {
    if (!stats.absMax) throw new RangeError("equalisation needs the inputs' column maxima");
    f = smoothScalesHost(stats.absMax, w, out, inF);
  }
  return f;
}

/** The two parts of a pruned W [out, in], each W with the rest zeroed, in float64. */
export interface WeightPartsHost {
  main: Float64Array;
  outliers: Float64Array | null;
}

/**
 * The float64 reference: W [out, in] pruned by `spec` into the main pattern and the salient
 * outliers (null without outliers). Equal scores keep the lower position.
 */
export function pruneWeightPartsHost(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  spec: WeightSpec,
  stats: InputStats = {},
): WeightPartsHost {
  checkWeightSpec(spec, inF, "host reference");
  const f = scoreFactorHost(w, out, inF, spec, stats);
  const scores = Float64Array.from(w, (v, i) => Math.abs(v) * (f ? f[i % inF] : 1));
  let rest = Float64Array.from(w);
  let outliers: Float64Array | null = null;
  if (spec.outliers) {
    outliers = pruneHost(w, [out, inF], 1, spec.outliers, "combinatorial", scores).masked;
    // The main pattern chooses among the rest: salient places score below every other.
    rest = Float64Array.from(w, (v, i) => (outliers![i] !== 0 ? 0 : v));
    outliers.forEach((v, i) => {
      if (v !== 0) scores[i] = -1;
    });
  }
  const s = spec.sparsity;
  const main = "pattern" in s
    ? pruneHost(rest, [out, inF], 1, s.pattern, "combinatorial", scores).masked
    : pruneUnstructuredHost(rest, [out, inF], 1, keptUnstructured(inF, s.unstructured), scores)
      .masked;
  return { main, outliers };
}

/** The float64 reference of the pruned W: the main pattern plus the outliers. */
export function pruneWeightHost(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  spec: WeightSpec,
  xNorms: ArrayLike<number> | null = null,
  absMax: ArrayLike<number> | null = null,
): Float64Array {
  const { main, outliers } = pruneWeightPartsHost(w, out, inF, spec, { norms: xNorms, absMax });
  return outliers ? main.map((v, i) => v + outliers[i]) : main;
}

/**
 * The variance correction (a, b) per output from dense and pruned outputs [T, out] in float64:
 * a = σ_d/σ_p (1 where σ_p = 0), b = μ_d − a·μ_p, population statistics over the T tokens.
 */
export function varianceCorrectionHost(
  dense: ArrayLike<number>,
  pruned: ArrayLike<number>,
  tokens: number,
  out: number,
): { scale: Float64Array; shift: Float64Array } {
  const moments = (y: ArrayLike<number>) => {
    const sum = new Float64Array(out);
    const squares = new Float64Array(out);
    for (let i = 0; i < tokens * out; i++) {
      sum[i % out] += y[i];
      squares[i % out] += y[i] * y[i];
    }
    return { sum, squares };
  };
  return correctionFromMoments(moments(dense), moments(pruned), tokens);
}

/** Per-output sums of y and y² over `tokens` tokens. */
export interface OutputMoments {
  sum: Float64Array;
  squares: Float64Array;
}

/** a and b of the variance correction from the dense and pruned outputs' moments. */
export function correctionFromMoments(
  dense: OutputMoments,
  pruned: OutputMoments,
  tokens: number,
): { scale: Float64Array; shift: Float64Array } {
  const out = dense.sum.length;
  const scale = new Float64Array(out);
  const shift = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    const md = dense.sum[o] / tokens;
    const mp = pruned.sum[o] / tokens;
    const vd = Math.max(0, dense.squares[o] / tokens - md * md);
    const vp = Math.max(0, pruned.squares[o] / tokens - mp * mp);
    scale[o] = vp > 0 ? Math.sqrt(vd / vp) : 1;
    shift[o] = md - scale[o] * mp;
  }
  return { scale, shift };
}

/** A pruned W on the GPU: the main pattern and the salient outliers. */
export interface WeightParts {
  main: NmTensor;
  outliers: NmTensor | null;
}

/**
 * W [out, in] pruned on the GPU into compressed tensors (combinatorial codes for N:M, positions
 * for unstructured). `factor` [in] multiplies the score |W_ij| (Wanda's ‖X_j‖, equalisation's
 * s_j; scoreFactorHost computes it); plain magnitude ignores it.
 */
export function pruneWeightParts(
  weight: Tensor,
  spec: WeightSpec,
  factor: Tensor | null = null,
  layer = "linear",
): WeightParts {
  assertDType(layer, weight, "f32");
  if (weight.rank !== 2) {
    throw new ShapeError(layer, `W must be [out, in], got ${shapeString(weight.shape)}`);
  }
  const [out, inF] = weight.shape;
  checkWeightSpec(spec, inF, layer);
  const scaled = spec.criterion === "wanda" || !!spec.equalize;
  if (!factor && scaled) {
    throw new RangeError(`${layer}: ${weightSpecName(spec)} needs calibrated input statistics`);
  }
  const e = weight.engine;
  return e.tidy(() => {
    let scores: Tensor | undefined = scaled ? scaledMagnitude(weight, factor!) : undefined;
    let rest = weight;
    let outliers: NmTensor | null = null;
    if (spec.outliers) {
      scores ??= scaledMagnitude(weight, e.full([inF], 1, "ones"));
      const o = pruneNm(weight, spec.outliers, { scores, masked: true });
      outliers = o.nm;
      rest = sub(weight, o.masked!);
      // Salient places score below every other (scores are ≥ 0): ones where an outlier sits.
      const salient = pruneNm(e.full([out, inF], 1, "ones"), spec.outliers, {
        scores,
        masked: true,
      });
      salient.nm.dispose();
      scores = sub(scores, scale(salient.masked!, 2 ** 100));
    }
    const s = spec.sparsity;
    const { nm } = "pattern" in s
      ? pruneNm(rest, s.pattern, { scores })
      : pruneUnstructured(rest, keptUnstructured(inF, s.unstructured), { scores });
    return { main: nm, outliers };
  });
}

/** W [out, in] pruned into one compressed tensor (no outliers), as pruneWeightParts does. */
export function pruneWeight(
  weight: Tensor,
  spec: WeightSpec,
  factor: Tensor | null = null,
  layer = "linear",
): NmTensor {
  if (spec.outliers) throw new RangeError(`${layer}: outliers make two tensors (pruneWeightParts)`);
  return pruneWeightParts(weight, spec, factor, layer).main;
}

export interface StorageBits {
  /** Kept values per dense element, at `valueBits` each. */
  values: number;
  /** The format's metadata per dense element (methods.md §3's figures). */
  metadata: number;
  /** The metadata as stored: each lane padded to whole 32-bit words. */
  metadataStored: number;
  /** values + metadataStored. */
  total: number;
}

/** Bits per element of the dense tensor a compressed layout stores, metadata included. */
export function storageBits(l: NmLayout, valueBits = 32): StorageBits {
  const elements = l.lanes * l.d;
  const values = (l.lanes * l.kept * valueBits) / elements;
  const metadataStored = (l.lanes * l.words * 32) / elements;
  return {
    values,
    metadata: metadataBitsPerElement(l.pattern, l.encoding),
    metadataStored,
    total: values + metadataStored,
  };
}

/** Bits per element of the dense W a pruned layer stores: main pattern plus outliers. */
export function partsStorageBits(parts: WeightParts, valueBits = 32): StorageBits {
  const a = storageBits(parts.main.layout, valueBits);
  if (!parts.outliers) return a;
  const b = storageBits(parts.outliers.layout, valueBits);
  return {
    values: a.values + b.values,
    metadata: a.metadata + b.metadata,
    metadataStored: a.metadataStored + b.metadataStored,
    total: a.total + b.total,
  };
}

/**
 * A layer whose product runs on its pruned, compressed weight: x·P(W)ᵀ + x·Oᵀ (O the outliers),
 * then a ⊙ y + b once a variance correction is set (a folded into the compressed values).
 */
export class WeightPruned implements LinearInputTransform {
  private parts: WeightParts;
  /** The variance correction's b [out], once set. */
  private shift: Tensor | null = null;

  constructor(parts: WeightParts | NmTensor, readonly layer = "linear") {
    this.parts = "main" in parts ? parts : { main: parts, outliers: null };
    const { main, outliers } = this.parts;
    // The compressed weight lives as long as the transform, whatever tidy scope made it.
    main.engine.keep(main.values, main.meta, ...(outliers ? [outliers.values, outliers.meta] : []));
  }

  /** The main pattern's compressed weight. */
  get nm(): NmTensor {
    return this.parts.main;
  }

  get outliers(): NmTensor | null {
    return this.parts.outliers;
  }

  storage(valueBits = 32): StorageBits {
    return partsStorageBits(this.parts, valueBits);
  }

  product(x: Tensor, weight: Tensor): Tensor {
    const [out, inF] = this.nm.shape;
    if (x.shape[x.rank - 1] !== inF || weight.shape[0] !== out) {
      throw new ShapeError(this.layer, `x ${shapeString(x.shape)} does not end in ${inF}`);
    }
    const lead = x.shape.slice(0, -1);
    const x2 = reshape(x, [x.size / inF, inF]);
    let y = sparseWeightMatmul(x2, this.nm);
    if (this.outliers) y = add(y, sparseWeightMatmul(x2, this.outliers));
    if (this.shift) y = addBias(y, this.shift);
    return reshape(y, [...lead, out]);
  }

  /** Sets the variance correction: the rows of both parts scaled by a, b added after. */
  async setCorrection(scale: ArrayLike<number>, shift: ArrayLike<number>): Promise<void> {
    const rescale = async (nm: NmTensor) => {
      const v = await nm.values.read();
      const per = v.length / scale.length;
      const scaled = Float32Array.from(v, (x, i) => x * scale[Math.floor(i / per)]);
      const values = nm.engine.tensor(scaled, nm.values.shape, "f32", `${this.layer} a·values`);
      nm.engine.keep(values);
      nm.values.dispose();
      return new NmTensor(nm.layout, values, nm.meta);
    };
    this.parts = {
      main: await rescale(this.parts.main),
      outliers: this.parts.outliers ? await rescale(this.parts.outliers) : null,
    };
    this.shift?.dispose();
    this.shift = this.nm.engine.tensor(Float32Array.from(shift), [shift.length], "f32", "b");
    this.nm.engine.keep(this.shift);
  }

  dispose(): void {
    this.parts.main.dispose();
    this.parts.outliers?.dispose();
    this.shift?.dispose();
  }
}

export interface WeightPruningConfig extends WeightSpec {
  layers: readonly LayerRole[];
}

type Chosen = ReturnType<typeof linearLayers>;

/**
 * Runs `calibrate` with every chosen layer behind a recorder, and puts the layers back on the
 * dense product (or on `after`) whatever happens.
 */
async function withRecorders<R extends LinearInputTransform>(
  chosen: Chosen,
  make: (l: Chosen[number]) => R,
  calibrate: () => Promise<void>,
  after: Map<string, LinearInputTransform> = new Map(),
): Promise<R[]> {
  const recorders = chosen.map(make);
  chosen.forEach((l, i) => (l.layer.inputTransform = recorders[i]));
  try {
    await calibrate();
  } finally {
    for (const l of chosen) l.layer.inputTransform = after.get(l.name) ?? null;
  }
  return recorders;
}

/**
 * Prunes the weights of the chosen layers of `model`. Wanda and equalisation first run
 * `calibrate` (forward passes of calibration batches) with every chosen layer recording its
 * inputs' statistics; variance correction runs it once more, every layer dense, comparing each
 * layer's pruned output with its dense one on the same inputs. Every layer is checked before
 * any is changed.
 */
export async function applyWeightPruning(
  model: Module,
  config: WeightPruningConfig,
  calibrate: (() => Promise<void>) | null = null,
): Promise<Map<string, WeightPruned>> {
  const chosen = linearLayers(model).filter((l) => config.layers.includes(l.role));
  if (!chosen.length) throw new RangeError(`no layer of the model is one of ${config.layers}`);
  for (const l of chosen) checkWeightSpec(config, l.layer.inFeatures, l.name);
  if (weightNeedsCalibration(config) && !calibrate) {
    throw new RangeError(`${weightSpecName(config)} needs calibration batches`);
  }
  const stats = new Map<string, InputStats>();
  if (config.criterion === "wanda" || config.equalize) {
    const recorders = await withRecorders(chosen, () => new InputStatsRecorder(), calibrate!);
    for (const [i, l] of chosen.entries()) stats.set(l.name, await recorders[i].stats());
  }
  const pruned = new Map<string, WeightPruned>();
  for (const l of chosen) {
    const w = l.layer.weight;
    const [out, inF] = w.shape;
    const st = stats.get(l.name) ?? {};
    const f = st.norms || st.absMax
      ? scoreFactorHost(config.equalize ? await w.read() : [], out, inF, config, st)
      : null;
    const e = w.engine;
    const factor = f
      ? e.tensor(Float32Array.from(f), [inF], "f32", `${l.name} score factor`)
      : null;
    pruned.set(l.name, new WeightPruned(pruneWeightParts(w, config, factor, l.name), l.name));
    factor?.dispose();
  }
  if (config.correctVariance) {
    const recorders = await withRecorders(
      chosen,
      (l) => new OutputMomentsRecorder(pruned.get(l.name)!),
      calibrate!,
    );
    for (const [i, l] of chosen.entries()) {
      const m = await recorders[i].moments();
      const c = correctionFromMoments(m.dense, m.pruned, m.tokens);
      await pruned.get(l.name)!.setCorrection(c.scale, c.shift);
    }
  }
  for (const l of chosen) l.layer.inputTransform = pruned.get(l.name)!;
  return pruned;
}

/** Puts the layers back on their dense weights and frees the compressed ones. */
export function removeWeightPruning(model: Module, pruned: Map<string, WeightPruned>): void {
  for (const l of linearLayers(model)) {
    if (pruned.has(l.name)) l.layer.inputTransform = null;
  }
  pruned.forEach((p) => p.dispose());
}
