/** What full-catalogue evaluation asks of a recommender (SASRec, MostPop, …). */
import type { EvalBatch } from "../data/batches.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Anything that scores the whole catalogue for a batch of histories. */
export interface Scorer {
  readonly engine: Engine;
  /** C: real items are 1..C. */
  readonly items: number;
  /** Histories are given as the last seqLen items, left-padded. */
  readonly seqLen: number;
  /** Scores [batch, C+1] (column 0 is ignored). Runs without a tape. */
  score(batch: EvalBatch): Tensor;
}
