/**
 * LoRA on one Linear: W_eff = W + B·A with W [out, in] frozen, A [r, in] (PyTorch's U(±1/√in))
 * and B [out, r] (zeros, so training starts at W). The rank is chosen so that r·(in + out) matches
 * another method's trainable parameters (loraRankFor). `merge` folds B·A into W.
 */
import { uniformInit } from "../nn/init.ts";
import type { Linear, LinearWeightTransform } from "../nn/linear.ts";
import { Module } from "../nn/module.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { seededRandom } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** The rank whose r·(in + out) parameters come nearest `budget` (at least 1, at most min(in, out)). */
export function loraRankFor(out: number, inF: number, budget: number): number {
  const r = Math.round(budget / (inF + out));
  return Math.max(1, Math.min(r, inF, out));
}

export class LoraLayer extends Module implements LinearWeightTransform {
  readonly a: Tensor;
  readonly b: Tensor;

  constructor(readonly name: string, readonly layer: Linear, readonly rank: number, seed: number) {
    super();
    const [out, inF] = layer.weight.shape;
    if (!(Number.isInteger(rank) && rank >= 1 && rank <= Math.min(out, inF))) {
      throw new RangeError(`${name}: LoRA rank ${rank} is not in [1, ${Math.min(out, inF)}]`);
    }
    const e = layer.weight.engine;
    const bound = 1 / Math.sqrt(inF);
    this.a = e.parameter(
      uniformInit(rank * inF, bound, seededRandom(seed)),
      [rank, inF],
      `${name}.lora_a`,
    );
    this.b = e.parameter(new Float32Array(out * rank), [out, rank], `${name}.lora_b`);
    this.params.lora_a = this.a;
    this.params.lora_b = this.b;
  }

  weight(w: Tensor): Tensor {
    return add(w, matmul(this.b, this.a));
  }

  /** W ← W + B·A, summed in float64 and rounded once. */
  async merge(): Promise<void> {
    const w = this.layer.weight;
    const [out, inF] = w.shape;
    const data = (await w.read()) as Float32Array;
    const a = await this.a.read();
    const b = await this.b.read();
    const r = this.rank;
    for (let o = 0; o < out; o++) {
      for (let j = 0; j < inF; j++) {
        let acc = data[o * inF + j];
        for (let q = 0; q < r; q++) acc += b[o * r + q] * a[q * inF + j];
        data[o * inF + j] = acc;
      }
    }
    w.engine.gpu.upload(w.storage, data);
  }
}
