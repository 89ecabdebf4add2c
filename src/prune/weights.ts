/**
 * Weight pruning at the activation pruning's sparsity (methods.md §3, "Weight pruning"): the same
 * N:M groups (or the top k of a row) along each row of W [out, in], by
 * - magnitude: |W_ij|
 * - Wanda:     |W_ij| · ‖X_{:,j}‖₂, X [T, in] the layer's inputs on calibration data;
 * kept compressed and multiplied by sparseWeightMatmul. Storage is reported in bits per element
 * of the dense W, metadata included (methods.md §3, "Storage").
 */
import type { LinearInputTransform } from "../nn/linear.ts";
import type { Module } from "../nn/module.ts";
import { metadataBitsPerElement, type NmLayout, type NmTensor } from "../sparse/format.ts";
import { pruneHost, pruneUnstructuredHost } from "../sparse/host.ts";
import { sparseWeightMatmul } from "../sparse/matmul.ts";
import { pruneNm, pruneUnstructured } from "../sparse/prune.ts";
import { assertDType } from "../tensor/kernel.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import {
  checkSpec,
  keptUnstructured,
  type LayerRole,
  linearLayers,
  type Sparsity,
} from "./activation.ts";
import { columnNorms, scaledMagnitude } from "./criteria.ts";

export const WEIGHT_CRITERIA = ["magnitude", "wanda"] as const;
export type WeightCriterion = typeof WEIGHT_CRITERIA[number];

export interface WeightSpec {
  sparsity: Sparsity;
  criterion: WeightCriterion;
}

function checkWeightSpec(spec: WeightSpec, inFeatures: number, layer: string): void {
  if (!(WEIGHT_CRITERIA as readonly string[]).includes(spec.criterion)) {
    throw new RangeError(
      `unknown weight criterion ${spec.criterion} (one of ${WEIGHT_CRITERIA.join(", ")})`,
    );
  }
  // The groups and their checks are the activation pruning's, along W's input dimension.
  checkSpec(
    { sparsity: spec.sparsity, criterion: "magnitude", mitigation: "none" },
    inFeatures,
    layer,
  );
  if ("unstructured" in spec.sparsity && spec.sparsity.unstructured === 0) {
    throw new RangeError(
      `${layer}: weight pruning at ratio 0 keeps W dense; leave the layer alone`,
    );
  }
}

/**
 * The float64 reference: W [out, in] with the pruned weights zeroed. `xNorms` ([in], ‖X_{:,j}‖)
 * is Wanda's and ignored by magnitude.
 */
export function pruneWeightHost(
  w: ArrayLike<number>,
  out: number,
  inF: number,
  spec: WeightSpec,
  xNorms: ArrayLike<number> | null = null,
): Float64Array {
  checkWeightSpec(spec, inF, "host reference");
  const scores = Float64Array.from(w, Math.abs);
  if (spec.criterion === "wanda") {
    if (!xNorms) throw new RangeError("wanda needs the column norms of the layer's inputs");
    for (let i = 0; i < scores.length; i++) scores[i] *= xNorms[i % inF];
  }
  const s = spec.sparsity;
  return "pattern" in s
    ? pruneHost(w, [out, inF], 1, s.pattern, "combinatorial", scores).masked
    : pruneUnstructuredHost(w, [out, inF], 1, keptUnstructured(inF, s.unstructured), scores)
      .masked;
}

/**
 * W [out, in] pruned on the GPU into a compressed tensor (combinatorial codes for N:M, positions
 * for unstructured). `xNorms` [in] is Wanda's factor.
 */
export function pruneWeight(
  weight: Tensor,
  spec: WeightSpec,
  xNorms: Tensor | null = null,
  layer = "linear",
): NmTensor {
  assertDType(layer, weight, "f32");
  if (weight.rank !== 2) {
    throw new ShapeError(layer, `W must be [out, in], got ${shapeString(weight.shape)}`);
  }
  const inF = weight.shape[1];
  checkWeightSpec(spec, inF, layer);
  let scores: Tensor | undefined;
  if (spec.criterion === "wanda") {
    if (!xNorms) throw new RangeError(`${layer}: wanda needs the column norms of its inputs`);
    scores = scaledMagnitude(weight, xNorms);
  }
  const s = spec.sparsity;
  const { nm } = "pattern" in s
    ? pruneNm(weight, s.pattern, { scores })
    : pruneUnstructured(weight, keptUnstructured(inF, s.unstructured), { scores });
  scores?.dispose();
  return nm;
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

/** A layer whose product runs on its pruned, compressed weight. */
export class WeightPruned implements LinearInputTransform {
  constructor(readonly nm: NmTensor, readonly layer = "linear") {
    // The compressed weight lives as long as the transform, whatever tidy scope made it.
    nm.engine.keep(nm.values, nm.meta);
  }

  product(x: Tensor, weight: Tensor): Tensor {
    const [out, inF] = this.nm.shape;
    if (x.shape[x.rank - 1] !== inF || weight.shape[0] !== out) {
      throw new ShapeError(this.layer, `x ${shapeString(x.shape)} does not end in ${inF}`);
    }
    const lead = x.shape.slice(0, -1);
    return reshape(sparseWeightMatmul(reshape(x, [x.size / inF, inF]), this.nm), [...lead, out]);
  }

  dispose(): void {
    this.nm.dispose();
  }
}

/**
 * Records ‖X_{:,j}‖² of a layer's inputs over calibration batches while computing the dense
 * product: what Wanda scores W by.
 */
export class InputNormRecorder implements LinearInputTransform {
  private squares: Float64Array | null = null;
  private pending: Tensor[] = [];

  product(x: Tensor, weight: Tensor): Tensor {
    const inF = weight.shape[1];
    const x2 = reshape(x, [x.size / inF, inF]);
    const norms = columnNorms(x2);
    x.engine.keep(norms);
    this.pending.push(norms);
    return reshape(matmul(x2, weight, { transB: true }), [
      ...x.shape.slice(0, -1),
      weight.shape[0],
    ]);
  }

  /** ‖X_{:,j}‖₂ over every batch seen, in float64. */
  async norms(): Promise<Float64Array> {
    for (const t of this.pending) {
      const n = await t.read();
      this.squares ??= new Float64Array(n.length);
      for (let j = 0; j < n.length; j++) this.squares[j] += n[j] * n[j];
      t.dispose();
    }
    this.pending = [];
    if (!this.squares) throw new Error("no calibration batch was seen");
    return this.squares.map(Math.sqrt);
  }
}

export interface WeightPruningConfig extends WeightSpec {
  layers: readonly LayerRole[];
}

/**
 * Prunes the weights of the chosen layers of `model`. Wanda first runs `calibrate` (forward
 * passes of calibration batches) with every chosen layer recording its inputs' column norms;
 * every layer is checked before any is changed.
 */
export async function applyWeightPruning(
  model: Module,
  config: WeightPruningConfig,
  calibrate: (() => Promise<void>) | null = null,
): Promise<Map<string, WeightPruned>> {
  const chosen = linearLayers(model).filter((l) => config.layers.includes(l.role));
  if (!chosen.length) throw new RangeError(`no layer of the model is one of ${config.layers}`);
  for (const l of chosen) checkWeightSpec(config, l.layer.inFeatures, l.name);
  const norms = new Map<string, Float64Array>();
  if (config.criterion === "wanda") {
    if (!calibrate) throw new RangeError("wanda needs calibration batches");
    const recorders = chosen.map((l) => [l, new InputNormRecorder()] as const);
    for (const [l, r] of recorders) l.layer.inputTransform = r;
    try {
      await calibrate();
    } finally {
      for (const [l] of recorders) l.layer.inputTransform = null;
    }
    for (const [l, r] of recorders) norms.set(l.name, await r.norms());
  }
  const pruned = new Map<string, WeightPruned>();
  for (const l of chosen) {
    const e = l.layer.weight.engine;
    const n = norms.get(l.name);
    const xNorms = n
      ? e.tensor(Float32Array.from(n), [n.length], "f32", `${l.name} X norms`)
      : null;
    const t = new WeightPruned(pruneWeight(l.layer.weight, config, xNorms, l.name), l.name);
    xNorms?.dispose();
    l.layer.inputTransform = t;
    pruned.set(l.name, t);
  }
  return pruned;
}

/** Puts the layers back on their dense weights and frees the compressed ones. */
export function removeWeightPruning(model: Module, pruned: Map<string, WeightPruned>): void {
  for (const l of linearLayers(model)) {
    if (pruned.has(l.name)) l.layer.inputTransform = null;
  }
  pruned.forEach((p) => p.dispose());
}
