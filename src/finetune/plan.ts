/**
 * What each adapted layer gets: GIFT-SW's salient columns (from calibration statistics and, for
 * the general score, the layer's weight perturbation D) and noise scale Δ_r/2; LoRA only needs
 * the count k to match its rank.
 */
import type { Linear } from "../nn/linear.ts";
import type { FinetuneMethod, LayerPlan } from "./adapt.ts";
import type { PrunedBackbone } from "./backbone.ts";
import {
  type ColumnStats,
  ColumnStatsRecorder,
  type GeneralScore,
  halfDeltas,
  quantisationErrorHost,
  rowRanges,
  salientCount,
  type SalientScore,
  salientScores,
  topColumns,
} from "./salient.ts";

export interface SalienceOptions {
  /** k: a count (capped at each layer's width) or a fraction of it. */
  salient: number;
  score: SalientScore;
  /** ρ of ‖X_{:,j}‖_ρ, and τ, γ of the general score. */
  rho: number;
  general: GeneralScore;
  /** b of Δ_r = α_r / (2^(b−1) − 1). */
  bits: number;
  /** α_r by grid search instead of max|W_r|. */
  alphaGrid: boolean;
  /** Train without noise (GIFT-SW without noise). */
  noise: boolean;
}

/** Column statistics of every chosen layer over the calibration batches `calibrate` runs. */
export async function calibrateColumns(
  backbone: PrunedBackbone,
  rho: number,
  calibrate: () => Promise<void>,
): Promise<Map<string, ColumnStats>> {
  const saved = backbone.layers.map((l) => [l.layer, l.layer.inputTransform] as const);
  const recorders = backbone.layers.map((l) => {
    const r = new ColumnStatsRecorder(rho, l.layer.inputTransform);
    l.layer.inputTransform = r;
    return [l.name, r] as const;
  });
  try {
    await calibrate();
  } finally {
    for (const [layer, t] of saved) layer.inputTransform = t;
  }
  const out = new Map<string, ColumnStats>();
  for (const [name, r] of recorders) out.set(name, await r.result());
  return out;
}

/** D of a layer: its pruning error (weight pruning), else W's b-bit quantisation error. */
function perturbation(
  backbone: PrunedBackbone,
  name: string,
  w: Float32Array,
  out: number,
  inF: number,
  alpha: Float64Array,
  bits: number,
): Float64Array {
  const original = backbone.originals.get(name);
  if (original) return Float64Array.from(original, (v, i) => v - w[i]);
  return quantisationErrorHost(w, out, inF, alpha, bits);
}

async function planLayer(
  backbone: PrunedBackbone,
  l: { name: string; layer: Linear },
  stats: ColumnStats | null,
  o: SalienceOptions,
): Promise<LayerPlan> {
  const [out, inF] = l.layer.weight.shape;
  const k = salientCount(o.salient, inF);
  if (!stats) {
    return { ...l, columns: Int32Array.from({ length: k }, (_, j) => j), halfDelta: null };
  }
  const w = (await l.layer.weight.read()) as Float32Array;
  const alpha = rowRanges(w, out, inF, o.bits, o.alphaGrid);
  const d = o.score === "general"
    ? { d: perturbation(backbone, l.name, w, out, inF, alpha, o.bits), out }
    : null;
  const columns = topColumns(salientScores(o.score, stats, d, o.general), k);
  return { ...l, columns, halfDelta: o.noise ? halfDeltas(alpha, o.bits) : null };
}

/** Plans for every chosen layer; GIFT-SW calibrates first. */
export async function planLayers(
  backbone: PrunedBackbone,
  method: FinetuneMethod,
  o: SalienceOptions,
  calibrate: () => Promise<void>,
): Promise<LayerPlan[]> {
  const stats = method === "gift-sw"
    ? await calibrateColumns(backbone, o.rho, calibrate)
    : new Map<string, ColumnStats>();
  const plans: LayerPlan[] = [];
  for (const l of backbone.layers) {
    plans.push(await planLayer(backbone, l, stats.get(l.name) ?? null, o));
  }
  return plans;
}
