/** RMS normalisation over the last dimension with a learned scale (Llama's RMSNorm). */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { rmsNorm } from "../tensor/ops/rmsnorm.ts";
import { Module } from "./module.ts";

export class RMSNorm extends Module {
  readonly weight: Tensor;

  constructor(engine: Engine, readonly dim: number, name = "rmsnorm", readonly eps = 1e-5) {
    super();
    this.weight = engine.parameter(new Float32Array(dim).fill(1), [dim], `${name}.weight`);
    this.params = { weight: this.weight };
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
