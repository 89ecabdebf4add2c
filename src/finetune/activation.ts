/**
 * Activation pruning that training can pass through. src/prune's ActivationPruner multiplies the
 * compressed input by W (sparseActivationMatmul), which has no backward; here the same choice of
 * kept values (criterion, N:M or top k, no mitigation) becomes a 0/1 mask m, and the product is
 * (x ⊙ m)·Wᵀ on the tape: dW = dYᵀ·(x ⊙ m), dx = (dY·W) ⊙ m, the choice itself held fixed. The
 * forward equals the pruner's up to the order of the sums.
 */
import type { LinearInputTransform } from "../nn/linear.ts";
import { type Sparsity, sparsityName } from "../prune/activation.ts";
import { ActivationScorer, type Criterion } from "../prune/criteria.ts";
import { keptUnstructured } from "../prune/activation.ts";
import { NmTensor } from "../sparse/format.ts";
import { decodeNm, pruneNm, pruneUnstructured } from "../sparse/prune.ts";
import { mul } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";

export class TrainableActivationPruning implements LinearInputTransform {
  private constructor(
    readonly sparsity: Sparsity,
    readonly layer: string,
    private readonly scorer: ActivationScorer,
  ) {}

  /** The criterion's weight factor comes from W as it is now (the pruned model's). */
  static async create(
    weight: Tensor,
    sparsity: Sparsity,
    criterion: Criterion,
    layer: string,
  ): Promise<TrainableActivationPruning> {
    const scorer = await ActivationScorer.create(criterion, weight);
    return new TrainableActivationPruning(sparsity, layer, scorer);
  }

  /** The 0/1 mask of the values x [T, in] keeps (no gradient flows through the choice). */
  mask(x2: Tensor): Tensor {
    const e = x2.engine;
    return e.noGrad(() => {
      const scores = this.scorer.scores(x2) ?? undefined;
      const s = this.sparsity;
      const inF = x2.shape[1];
      const { nm } = "pattern" in s
        ? pruneNm(x2, s.pattern, { scores })
        : pruneUnstructured(x2, keptUnstructured(inF, s.unstructured), { scores });
      // The kept places with ones for values: decoding gives the mask exactly.
      const ones = e.full(nm.layout.valuesShape, 1, "kept ones");
      const mask = decodeNm(new NmTensor(nm.layout, ones, nm.meta));
      nm.dispose();
      ones.dispose();
      scores?.dispose();
      return mask;
    });
  }

  product(x: Tensor, weight: Tensor): Tensor {
    const inF = weight.shape[1];
    if (x.shape[x.rank - 1] !== inF) {
      throw new ShapeError(
        `${this.layer} ${sparsityName(this.sparsity)} activation pruning`,
        `x ${shapeString(x.shape)} does not end in ${inF} features`,
      );
    }
    const x2 = reshape(x, [x.size / inF, inF]);
    const kept = mul(x2, this.mask(x2));
    const y = matmul(kept, weight, { transB: true });
    return reshape(y, [...x.shape.slice(0, -1), weight.shape[0]]);
  }

  dispose(): void {
    this.scorer.dispose();
  }
}
