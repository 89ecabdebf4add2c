/**
 * MostPop: every user gets the items ranked by their training popularity. Scores are the item's
 * position in that ranking (ties broken by lower id), so they are distinct integers, exact in f32
 * for catalogues below 2^24 items, and the ranking has no ties to flatter the baseline.
 */
import type { EvalBatch } from "../data/batches.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import type { Scorer } from "./scorer.ts";

export class MostPop implements Scorer {
  private readonly row: Tensor;

  constructor(
    readonly engine: Engine,
    readonly items: number,
    readonly seqLen: number,
    train: readonly Int32Array[],
  ) {
    const counts = new Float64Array(items + 1);
    for (const s of train) for (const i of s) counts[i]++;
    const order = Array.from({ length: items }, (_, i) => i + 1)
      .sort((a, b) => counts[b] - counts[a] || a - b);
    const scores = new Float32Array(items + 1);
    order.forEach((item, rank) => (scores[item] = items - rank));
    this.row = engine.tensor(scores, [1, items + 1], "f32", "popularity scores");
    engine.keep(this.row);
  }

  score(batch: EvalBatch): Tensor {
    const ones = this.engine.tensor(new Float32Array(batch.batch).fill(1), [batch.batch, 1]);
    return matmul(ones, this.row);
  }

  dispose(): void {
    this.row.dispose();
  }
}
