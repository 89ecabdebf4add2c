/** Layer normalisation over the last dimension with learned scale and shift. */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { layerNorm } from "../tensor/ops/layernorm.ts";
import { Module } from "./module.ts";

export class LayerNorm extends Module {
  readonly gamma: Tensor;
  readonly beta: Tensor;

  constructor(engine: Engine, readonly dim: number, name = "layernorm", readonly eps = 1e-5) {
    super();
    this.gamma = engine.parameter(new Float32Array(dim).fill(1), [dim], `${name}.weight`);
    this.beta = engine.parameter(new Float32Array(dim), [dim], `${name}.bias`);
    this.params = { weight: this.gamma, bias: this.beta };
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.gamma, this.beta, this.eps);
  }
}
