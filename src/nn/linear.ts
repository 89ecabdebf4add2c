/** y = x·Wᵀ + b with W stored [out, in] as in PyTorch. */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { addBias } from "../tensor/ops/bias.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { uniformInit } from "./init.ts";
import { Module } from "./module.ts";

/**
 * Replaces a layer's dense product x·Wᵀ by another computed from its input (activation pruning,
 * src/prune): set by a model walker, never by the layer itself.
 */
export interface LinearInputTransform {
  /** T(x)·Wᵀ for x [..., in] and W [out, in] → [..., out], the bias left to the layer. */
  product(x: Tensor, weight: Tensor): Tensor;
}

/**
 * Replaces the weight a layer multiplies by one computed from it (fine-tuning, src/finetune:
 * trainable salient columns with noise on the rest, a low-rank update): set by a walker.
 */
export interface LinearWeightTransform {
  /** The effective W [out, in], recorded on the tape so gradients reach the transform's own. */
  weight(weight: Tensor): Tensor;
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** The input transform a walker set; null (the default) keeps the dense product. */
  inputTransform: LinearInputTransform | null = null;
  /** The weight transform a walker set; null (the default) multiplies by `weight` itself. */
  weightTransform: LinearWeightTransform | null = null;

  constructor(
    engine: Engine,
    readonly inFeatures: number,
    readonly outFeatures: number,
    random: () => number,
    opts: { bias?: boolean; name?: string } = {},
  ) {
    super();
    // PyTorch's default: U(±1/√in) for both weight and bias.
    const bound = 1 / Math.sqrt(inFeatures);
    const name = opts.name ?? "linear";
    this.weight = engine.parameter(
      uniformInit(inFeatures * outFeatures, bound, random),
      [outFeatures, inFeatures],
      `${name}.weight`,
    );
    this.params.weight = this.weight;
    this.bias = null;
    if (opts.bias ?? true) {
      this.bias = engine.parameter(
        uniformInit(outFeatures, bound, random),
        [outFeatures],
        `${name}.bias`,
      );
      this.params.bias = this.bias;
    }
  }

  forward(x: Tensor): Tensor {
    const w = this.weightTransform ? this.weightTransform.weight(this.weight) : this.weight;
    const y = this.inputTransform
      ? this.inputTransform.product(x, w)
      : matmul(x, w, { transB: true });
    return this.bias ? addBias(y, this.bias) : y;
  }

  /**
   * residual + forward(x) (a residual stream): a dense product without bias adds onto the
   * residual in its own kernel, saving the separate add.
   */
  forwardOnto(residual: Tensor, x: Tensor): Tensor {
    if (this.inputTransform || this.bias) return add(residual, this.forward(x));
    const w = this.weightTransform ? this.weightTransform.weight(this.weight) : this.weight;
    return matmul(x, w, { transB: true, residual });
  }
}
