/**
 * The recommender's output losses, materialised: the logits exist in memory (N·C for CE,
 * N·(K+1) for the sampled ones). They are composed from tested ops, so their gradients come from
 * the tape, and they are the references the fused kernels are checked against.
 *
 * Inputs everywhere: h [N, d] the hidden states of the non-padded positions, table [C+1, d] the
 * tied item embeddings (row 0 = padding), targets [N] item ids in 1..C. Row 0 is never scored:
 * the full softmax runs over items 1..C and negatives are drawn from 1..C, so its gradient is 0.
 */
import type { Tensor } from "../tensor/tensor.ts";
import { ShapeError, shapeString } from "../tensor/tensor.ts";
import { add, mul, scale, softplus } from "../tensor/ops/elementwise.ts";
import { embedding } from "../tensor/ops/embedding.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { concat } from "../tensor/ops/slice.ts";
import { crossEntropyRows } from "./ce.ts";
import { type LogQ, logQShift, uniformLogQ } from "./negatives.ts";

/** cce- and cce are the fused kernels of src/loss/cce.ts; the others are materialised here. */
export type LossKind = "cce-" | "cce" | "ce" | "ce-" | "bce" | "gbce";
export const LOSS_KINDS: LossKind[] = ["cce-", "cce", "ce", "ce-", "bce", "gbce"];

/** Negatives of one batch: [N·K] per position, or [K] shared by every position. */
export interface Negatives {
  /** Item ids in 1..C. */
  ids: Int32Array;
  k: number;
  shared: boolean;
  /**
   * The logQ correction of the sampler that drew them (NegativeSampler.negatives, or logQOf of
   * its spec); without one they count as uniform draws over 1..C.
   */
  logQ?: LogQ;
}

export interface SampledOptions {
  /** Add the sampler's logQ correction −log(K·q_id) to negative logits (see Negatives.logQ). */
  logQ?: boolean;
}

function checkInputs(op: string, h: Tensor, table: Tensor, targets: Int32Array): void {
  if (
    h.rank !== 2 || table.rank !== 2 || h.shape[1] !== table.shape[1] ||
    targets.length !== h.shape[0]
  ) {
    throw new ShapeError(
      op,
      `h ${shapeString(h.shape)}, table ${
        shapeString(table.shape)
      } and ${targets.length} targets ` +
        "do not match (want [N, d], [C+1, d], N)",
    );
  }
  checkIds(op, "target", targets, table.shape[0] - 1);
}

/** Every id in 1..C: the padding row 0 is never scored. */
function checkIds(op: string, what: string, ids: Int32Array, items: number): void {
  for (let i = 0; i < ids.length; i++) {
    if (!(ids[i] >= 1 && ids[i] <= items)) {
      throw new RangeError(`${op}: ${what} ${ids[i]} at ${i} is outside 1..${items}`);
    }
  }
}

/**
 * Mean over positions of LSE over items 1..C − the target's logit. Column 0 (the padding row) is
 * outside the softmax and gets a zero gradient. The logits' row stride is rounded up to a
 * multiple of 4 (zero rows appended to the table, outside the softmax too) so that both backward
 * products run on the vec4 matmul kernel.
 */
export function fullCrossEntropy(h: Tensor, table: Tensor, targets: Int32Array): Tensor {
  checkInputs("ce", h, table, targets);
  const e = h.engine;
  const [rows, d] = table.shape;
  const pad = (4 - rows % 4) % 4;
  const padded = pad === 0 ? table : concat([table, e.zeros([pad, d], "f32", "table padding")], 0);
  const logits = matmul(h, padded, { transB: true });
  const losses = crossEntropyRows(
    logits,
    e.tensor(targets, [targets.length], "i32", "targets"),
    { firstValidCol: 1, validCols: rows },
  );
  return scale(sum(losses), 1 / targets.length);
}

/**
 * Logits [N, 1+K]: column 0 the target, then the K negatives, each plus its logQ correction when
 * asked. A negative equal to the target is masked to −∞ (no share of the softmax, no gradient).
 */
export function sampledLogits(
  h: Tensor,
  table: Tensor,
  targets: Int32Array,
  neg: Negatives,
  opts: SampledOptions = {},
): Tensor {
  checkInputs("sampled logits", h, table, targets);
  const e = h.engine;
  const [n, d] = h.shape;
  const { k } = neg;
  if (neg.ids.length !== (neg.shared ? k : n * k)) {
    throw new ShapeError("sampled logits", `${neg.ids.length} negative ids for N=${n}, K=${k}`);
  }
  const items = table.shape[0] - 1;
  checkIds("sampled logits", "negative", neg.ids, items);
  const pos = embedding(table, e.tensor(targets, [n], "i32", "targets"));
  const posLogit = reshape(sum(mul(h, pos), -1), [n, 1]);
  let negLogits: Tensor;
  if (neg.shared) {
    const negRows = embedding(table, e.tensor(neg.ids, [k], "i32", "negatives"));
    negLogits = matmul(h, negRows, { transB: true });
  } else {
    const negRows = embedding(table, e.tensor(neg.ids, [n, k], "i32", "negatives"));
    negLogits = reshape(matmul(reshape(h, [n, 1, d]), negRows, { transB: true }), [n, k]);
  }
  const logQ = opts.logQ ? (neg.logQ ?? uniformLogQ(items, k)) : null;
  const offsets = new Float32Array(n * (k + 1));
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < k; j++) {
      const id = neg.ids[neg.shared ? j : r * k + j];
      offsets[r * (k + 1) + 1 + j] = id === targets[r] ? -Infinity : logQ ? logQShift(logQ, id) : 0;
    }
  }
  return add(
    concat([posLogit, negLogits], 1),
    e.tensor(offsets, [n, k + 1], "f32", "logit offsets"),
  );
}

/** CE− (sampled softmax): mean over positions of LSE over [target, negatives] − target logit. */
export function sampledCrossEntropy(
  h: Tensor,
  table: Tensor,
  targets: Int32Array,
  neg: Negatives,
  opts: SampledOptions = {},
): Tensor {
  const logits = sampledLogits(h, table, targets, neg, opts);
  const n = targets.length;
  const zeros = h.engine.tensor(new Int32Array(n), [n], "i32", "target column");
  return scale(sum(crossEntropyRows(logits, zeros)), 1 / n);
}

/**
 * BCE with negatives: mean over positions of β·softplus(−s_t) + Σ_k softplus(s_k). β = 1 is
 * SASRec's BCE; gBCE (gSASRec) uses β = α(t(1 − 1/α) + 1/α) with α = K/(C − 1).
 */
export function binaryCrossEntropy(
  h: Tensor,
  table: Tensor,
  targets: Int32Array,
  neg: Negatives,
  beta = 1,
): Tensor {
  const logits = sampledLogits(h, table, targets, neg);
  const e = h.engine;
  const n = targets.length;
  const width = neg.k + 1;
  const signs = new Float32Array(n * width).fill(1);
  const weights = new Float32Array(n * width).fill(1);
  for (let r = 0; r < n; r++) {
    signs[r * width] = -1;
    weights[r * width] = beta;
  }
  const signed = mul(logits, e.tensor(signs, [n, width], "f32", "bce signs"));
  const terms = mul(softplus(signed), e.tensor(weights, [n, width], "f32", "bce weights"));
  return scale(sum(terms), 1 / n);
}

/** gSASRec's calibration exponent for K negatives out of C items and calibration t. */
export function gbceBeta(items: number, k: number, t: number): number {
  const alpha = k / Math.max(items - 1, 1);
  return alpha * (t * (1 - 1 / alpha) + 1 / alpha);
}
