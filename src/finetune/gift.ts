/**
 * GIFT-SW on one Linear (methods.md §4): the layer keeps its W [out, in] frozen; the salient
 * columns W[:, salient] become a parameter S [out, k] of their own (so only they get gradients and
 * optimiser state), and every training forward multiplies by W_eff = W with S in those columns and
 * (Δ_r/2)·ε added to the rest (compose.ts). No noise at evaluation. `merge` writes S back into W.
 */
import type { Linear, LinearWeightTransform } from "../nn/linear.ts";
import { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { composeSalient, type SalientIndex, salientIndex } from "./compose.ts";

/** Whether a forward is a training one, and its step: what the noise is drawn for. */
export interface NoiseClock {
  training: boolean;
  step: number;
}

/** The generator key of layer `layer` under run seed `seed` (distinct per layer). */
export function layerNoiseSeed(seed: number, layer: number): number {
  return (seed + Math.imul(layer + 1, 0x9e3779b9)) >>> 0;
}

export interface GiftSwOptions {
  /** Salient input columns, distinct, in [0, in). */
  columns: Int32Array;
  /** Δ_r/2 per output row; null trains without noise. */
  halfDelta: Float64Array | null;
  /** The layer's generator key (layerNoiseSeed). */
  seed: number;
  clock: NoiseClock;
}

export class GiftSwLayer extends Module implements LinearWeightTransform {
  /** S [out, k]: the trainable salient columns. */
  readonly salient: Tensor;
  private readonly index: SalientIndex;
  private readonly halfDelta: Tensor | null;

  private constructor(
    readonly name: string,
    readonly layer: Linear,
    readonly opts: GiftSwOptions,
    s: Float32Array,
  ) {
    super();
    const e = layer.weight.engine;
    const [out, inF] = layer.weight.shape;
    this.index = salientIndex(e, opts.columns, inF, name);
    this.salient = e.parameter(s, [out, opts.columns.length], `${name}.salient`);
    this.params.salient = this.salient;
    this.halfDelta = opts.halfDelta
      ? e.tensor(Float32Array.from(opts.halfDelta), [out], "f32", `${name} Δ/2`)
      : null;
    if (this.halfDelta) e.keep(this.halfDelta);
  }

  /** S starts as W's salient columns (read back once). */
  static async create(name: string, layer: Linear, opts: GiftSwOptions): Promise<GiftSwLayer> {
    const [out, inF] = layer.weight.shape;
    if (opts.halfDelta && opts.halfDelta.length !== out) {
      throw new RangeError(`${name}: Δ/2 has ${opts.halfDelta.length} rows, W has ${out}`);
    }
    const w = await layer.weight.read();
    const k = opts.columns.length;
    const s = new Float32Array(out * k);
    for (let r = 0; r < out; r++) {
      for (let q = 0; q < k; q++) s[r * k + q] = w[r * inF + opts.columns[q]];
    }
    return new GiftSwLayer(name, layer, opts, s);
  }

  weight(w: Tensor): Tensor {
    const { clock, seed } = this.opts;
    const noise = clock.training && this.halfDelta
      ? { seed, step: clock.step, halfDelta: this.halfDelta }
      : null;
    return composeSalient(w, this.salient, this.index, noise, this.name);
  }

  /** W[:, salient] ← S: the layer's own weight becomes the trained one (no noise). */
  async merge(): Promise<void> {
    const w = this.layer.weight;
    const [out, inF] = w.shape;
    const data = (await w.read()) as Float32Array;
    const s = await this.salient.read();
    const { columns } = this.opts;
    for (let r = 0; r < out; r++) {
      for (let q = 0; q < columns.length; q++) {
        data[r * inF + columns[q]] = s[r * columns.length + q];
      }
    }
    w.engine.gpu.upload(w.storage, data);
  }

  override dispose(): void {
    super.dispose();
    this.index.slot.dispose();
    this.index.list.dispose();
    this.halfDelta?.dispose();
  }
}
