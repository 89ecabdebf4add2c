/**
 * A one-layer GRU (PyTorch's layout: weight_ih [3H, in], weight_hh [3H, H], gates r, z, n,
 * U(±1/√H) initialisation). The input projection of all steps is one matmul; the recurrence,
 * with both biases, is the fused kernel pair of src/tensor/ops/gru.ts. Inputs are padded
 * [B·T, in] (row b·T + t) or packed [Σ lengths, in] (each sequence's valid steps after the
 * previous one's), which spares the projection and its gradients the padding.
 */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { gruSequence } from "../tensor/ops/gru.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { slice } from "../tensor/ops/slice.ts";
import { uniformInit } from "./init.ts";
import { Module } from "./module.ts";

export class Gru extends Module {
  readonly weightIh: Tensor;
  readonly weightHh: Tensor;
  readonly biasIh: Tensor;
  readonly biasHh: Tensor;

  constructor(
    engine: Engine,
    readonly inputSize: number,
    readonly hidden: number,
    random: () => number,
    name = "gru",
  ) {
    super();
    const bound = 1 / Math.sqrt(hidden);
    const param = (n: number, shape: number[], what: string) =>
      engine.parameter(uniformInit(n, bound, random), shape, `${name}.${what}`);
    this.weightIh = param(3 * hidden * inputSize, [3 * hidden, inputSize], "weight_ih");
    this.weightHh = param(3 * hidden * hidden, [3 * hidden, hidden], "weight_hh");
    this.biasIh = param(3 * hidden, [3 * hidden], "bias_ih");
    this.biasHh = param(3 * hidden, [3 * hidden], "bias_hh");
    this.params = {
      weight_ih: this.weightIh,
      weight_hh: this.weightHh,
      bias_ih: this.biasIh,
      bias_hh: this.biasHh,
    };
  }

  /**
   * x [B·T, in] padded or [Σ lengths, in] packed, with the valid lengths of the B sequences →
   * hs [B, T, H]. (When every length is T the two layouts are the same rows.)
   */
  states(x: Tensor, batch: number, steps: number, lengths: Int32Array): Tensor {
    const gx = matmul(x, this.weightIh, { transB: true });
    const padded = x.shape[0] === batch * steps;
    return gruSequence(
      padded ? reshape(gx, [batch, steps, 3 * this.hidden]) : gx,
      this.weightHh,
      this.biasIh,
      this.biasHh,
      lengths,
      { steps },
    );
  }

  /** The last valid state of each sequence: [B, H]. */
  last(x: Tensor, batch: number, steps: number, lengths: Int32Array): Tensor {
    const hs = this.states(x, batch, steps, lengths);
    return reshape(slice(hs, 1, steps - 1, steps), [batch, this.hidden]);
  }
}
