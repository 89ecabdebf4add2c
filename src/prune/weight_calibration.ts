/**
 * What weight pruning measures on calibration batches, each a `Linear` input transform that
 * computes the layer's dense product (so the model runs dense while it records):
 * - InputStatsRecorder: ‖X_{:,j}‖₂ (Wanda's factor) and max_t |X_tj| (equalisation's s);
 * - OutputMomentsRecorder: per output, Σy and Σy² of the dense and of the pruned product on the
 *   same inputs (the variance correction's statistics).
 * Partial statistics stay on the GPU per batch and are summed in float64 when read.
 */
import type { LinearInputTransform } from "../nn/linear.ts";
import { mul } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { columnSums } from "../tensor/ops/reduce.ts";
import { reshape } from "../tensor/ops/shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { columnAbsMax } from "./activation.ts";
import { columnNorms } from "./criteria.ts";
import type { InputStats, OutputMoments, WeightPruned } from "./weights.ts";

/** x [..., in] as [T, in], and x·Wᵀ back in x's leading shape. */
function denseProduct(x: Tensor, weight: Tensor): { x2: Tensor; y2: Tensor; y: Tensor } {
  const inF = weight.shape[1];
  const x2 = reshape(x, [x.size / inF, inF]);
  const y2 = matmul(x2, weight, { transB: true });
  return { x2, y2, y: reshape(y2, [...x.shape.slice(0, -1), weight.shape[0]]) };
}

/** Reads and frees GPU partials, summing each into a float64 accumulator. */
async function drain(pending: Tensor[], into: Float64Array, op: (a: number, b: number) => number) {
  for (const t of pending) {
    const v = await t.read();
    for (let j = 0; j < v.length; j++) into[j] = op(into[j], v[j]);
    t.dispose();
  }
  pending.length = 0;
}

export class InputStatsRecorder implements LinearInputTransform {
  private norms: Tensor[] = [];
  private maxima: Tensor[] = [];

  product(x: Tensor, weight: Tensor): Tensor {
    const { x2, y } = denseProduct(x, weight);
    const n = columnNorms(x2);
    const m = columnAbsMax(x2);
    x.engine.keep(n, m);
    this.norms.push(n);
    this.maxima.push(m);
    return y;
  }

  /** ‖X_{:,j}‖₂ and max |X_{:,j}| over every batch seen, in float64. */
  async stats(): Promise<Required<InputStats>> {
    if (!this.norms.length) throw new Error("no calibration batch was seen");
    const d = this.norms[0].size;
    const squares = new Float64Array(d);
    const absMax = new Float64Array(d);
    await drain(this.norms, squares, (a, b) => a + b * b);
    await drain(this.maxima, absMax, Math.max);
    return { norms: squares.map(Math.sqrt), absMax };
  }
}

export class OutputMomentsRecorder implements LinearInputTransform {
  private pending: { dense: Tensor[]; pruned: Tensor[] } = { dense: [], pruned: [] };
  private tokens = 0;

  constructor(private readonly pruned: WeightPruned) {}

  product(x: Tensor, weight: Tensor): Tensor {
    const { x2, y2, y } = denseProduct(x, weight);
    const p = reshape(this.pruned.product(x2, weight), y2.shape);
    for (const [list, v] of [[this.pending.dense, y2], [this.pending.pruned, p]] as const) {
      const sums = [columnSums(v), columnSums(mul(v, v))];
      x.engine.keep(...sums);
      list.push(...sums);
    }
    this.tokens += x2.shape[0];
    return y;
  }

  /** Σy and Σy² per output of the dense and the pruned product, and the tokens seen. */
  async moments(): Promise<{ dense: OutputMoments; pruned: OutputMoments; tokens: number }> {
    if (!this.tokens) throw new Error("no calibration batch was seen");
    const read = async (list: Tensor[]): Promise<OutputMoments> => {
      const out = list[0].size;
      const sum = new Float64Array(out);
      const squares = new Float64Array(out);
      await drain(list.filter((_, i) => i % 2 === 0), sum, (a, b) => a + b);
      await drain(list.filter((_, i) => i % 2 === 1), squares, (a, b) => a + b);
      return { sum, squares };
    };
    const r = { dense: await read(this.pending.dense), pruned: await read(this.pending.pruned) };
    this.pending = { dense: [], pruned: [] };
    return { ...r, tokens: this.tokens };
  }
}
