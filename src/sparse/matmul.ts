/**
 * Sparse matrix products on an N:M operand that stays compressed (shaders/sparse_matmul.wgsl):
 * - activation-sparse Y = S(X)·Wᵀ: X [T, in] compressed along in, W dense [out, in] → [T, out];
 *   a column of W that a token pruned is never read. Inference only: no gradient.
 * - weight-sparse Y = X·S(W)ᵀ: W [out, in] compressed along in, X dense [T, in] → [T, out], with
 *   gradients for X and for W's kept values (pruned positions stay pruned when fine-tuning).
 * Three kernel families: the GEMV for one token (src/sparse/gemv.ts), the tiled kernel for a batch
 * (src/sparse/tiled.ts), and the untiled one, an invocation per (token, output) running the
 * gathered-dot core that CCE- shares (the reference the others are measured against). "auto"
 * takes the GEMV for T = 1 and the tiled kernel otherwise. The backward runs untiled.
 */
import matmulShader from "../../shaders/sparse_matmul.wgsl" with { type: "text" };
import type { Binding } from "../gpu/gpu.ts";
import { declareKernel, groupsFor } from "../tensor/kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import type { NmTensor } from "./format.ts";
import { withGatheredDot, withNmReader } from "./gathered_dot.ts";
import { sparseGemvForward } from "./gemv.ts";
import { checkOperands, type Product, productParams } from "./operands.ts";
import { sparseTiledForward } from "./tiled.ts";
import { decodeTableBuffer, hasMaskTable } from "./tables.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

const SPARSE_MATMUL_KERNEL = declareKernel({
  name: "sparse matmul",
  source: withGatheredDot(withNmReader(matmulShader)),
  params: {
    rows: "u32",
    cols: "u32",
    in_features: "u32",
    n: "u32",
    m: "u32",
    width: "u32",
    words: "u32",
    groups: "u32",
    kept: "u32",
    lo: "u32",
    hi: "u32",
  },
  buffers: ["values", "nm_meta", "binomials", "dense", "y", "dy", "dx", "dvalues"],
});
type SparseBuffers = Parameters<typeof SPARSE_MATMUL_KERNEL.dispatch>[1]["buffers"];

export type SparseMatmulVariant = "auto" | "gemv" | "batched" | "untiled";

export interface SparseMatmulOptions {
  variant?: SparseMatmulVariant;
  /**
   * A kernel of the family by name (SPARSE_GEMV_VARIANTS for "gemv", SPARSE_TILED_VARIANTS for
   * "batched"); the engine's choice by default.
   */
  kernel?: string;
}

function params(p: Product, lo: number, hi: number) {
  return { ...productParams(p), rows: p.rows, lo, hi };
}

function dispatch(
  p: Product,
  entry: string,
  lo: number,
  hi: number,
  buffers: SparseBuffers,
  workgroups: [number, number?, number?],
): void {
  SPARSE_MATMUL_KERNEL.dispatch(p.e.gpu, {
    label: `sparse ${p.activation ? "activation" : "weight"} ${entry}`,
    entry,
    constants: {
      ACTIVATION: p.activation ? 1 : 0,
      COMBINATORIAL: p.nm.encoding === "combinatorial" ? 1 : 0,
      MASK_TABLE: p.nm.encoding === "combinatorial" && hasMaskTable(p.nm.pattern) ? 1 : 0,
    },
    params: params(p, lo, hi),
    buffers: {
      // dW only needs where the kept values are, not the values.
      values: entry === "grad_values" ? undefined : p.nm.values.storage,
      nm_meta: p.nm.meta.storage,
      binomials: decodeTableBuffer(p.e, p.nm.pattern).storage,
      ...buffers,
    },
    workgroups,
  });
}

function forward(p: Product, dense: Tensor, opts: SparseMatmulOptions): Tensor {
  const variant = opts.variant ?? "auto";
  const gemv = variant === "gemv" || (variant === "auto" && p.rows === 1);
  if (gemv && p.rows !== 1) {
    throw new ShapeError(p.op, `the GEMV variant takes one token, got ${p.rows}`);
  }
  if (gemv) return sparseGemvForward(p, dense, opts.kernel);
  if (variant !== "untiled") return sparseTiledForward(p, dense, opts.kernel);
  const y = p.e.empty([p.rows, p.cols], "f32", p.op);
  const buffers = { dense: dense.storage, y: y.storage };
  const [gx, gy] = groupsFor(p.e, p.cols, 64);
  const perDispatch = p.e.gpu.limits.maxComputeWorkgroupsPerDimension;
  for (let t = 0; t < p.rows; t += perDispatch) {
    const tokens = Math.min(perDispatch, p.rows - t);
    dispatch(p, "batched", t, t + tokens, buffers, [gx, gy, tokens]);
  }
  return y;
}

/** Y = S(X)·Wᵀ with X compressed along its features: x [T, in] (N:M), w [out, in] → [T, out]. */
export function sparseActivationMatmul(
  x: NmTensor,
  w: Tensor,
  opts: SparseMatmulOptions = {},
): Tensor {
  const p = checkOperands("sparseActivationMatmul", x, w, true);
  return forward(p, w, opts);
}

/**
 * Y = X·S(W)ᵀ with W compressed along its inputs: x [T, in], w [out, in] (N:M) → [T, out].
 * Gradients reach x and w.values (dW at the kept positions).
 */
export function sparseWeightMatmul(
  x: Tensor,
  w: NmTensor,
  opts: SparseMatmulOptions = {},
): Tensor {
  const p = checkOperands("sparseWeightMatmul", w, x, false);
  const y = forward(p, x, opts);
  return p.e.record({
    op: p.op,
    inputs: [x, w.values],
    output: y,
    backward: (dy) => [
      x.requiresGrad ? gradInput(p, dy) : null,
      w.values.requiresGrad ? gradValues(p, x, dy) : null,
    ],
  });
}

/** [from, to) ranges of [0, total) of at most `size` each. */
function ranges(total: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let from = 0; from < total; from += size) out.push([from, Math.min(from + size, total)]);
  return out;
}

/** Iterations of walking one group's kept positions: decoding it, then N steps. */
function walkCost(p: Product): number {
  const { n, m } = p.nm.pattern;
  return (p.nm.encoding === "combinatorial" ? m : 0) + n + 1;
}

/** dX = dY·S(W), outputs walked in passes. */
function gradInput(p: Product, dy: Tensor): Tensor {
  const dx = p.e.zeros([p.rows, p.inFeatures], "f32", `${p.op} dX`);
  const perPass = Math.max(1, Math.floor(LOOP_BUDGET / walkCost(p)));
  const l = p.nm.layout;
  for (const [lo, hi] of ranges(p.cols, perPass)) {
    dispatch(
      p,
      "grad_input",
      lo,
      hi,
      { dy: dy.storage, dx: dx.storage },
      groupsFor(p.e, p.rows * l.groups, 64),
    );
  }
  return dx;
}

/** dW at the kept positions: the gradient of the values, tokens walked in passes. */
function gradValues(p: Product, x: Tensor, dy: Tensor): Tensor {
  const l = p.nm.layout;
  const dvalues = p.e.zeros(l.valuesShape, "f32", `${p.op} dW values`);
  const perPass = Math.max(1, Math.floor((LOOP_BUDGET - walkCost(p)) / l.pattern.n));
  const buffers: { [K in "dense" | "dy" | "dvalues"]: Binding } = {
    dense: x.storage,
    dy: dy.storage,
    dvalues: dvalues.storage,
  };
  for (const [lo, hi] of ranges(p.rows, perPass)) {
    dispatch(p, "grad_values", lo, hi, buffers, groupsFor(p.e, p.cols * l.groups, 64));
  }
  return dvalues;
}

/**
 * One token's activation-sparse product (decoding): x [1, in] (N:M) against w [out, in] → [1, out],
 * reading only the columns of w that x kept; `kernel` names a SPARSE_GEMV_VARIANTS entry.
 */
export function sparseActivationGemv(x: NmTensor, w: Tensor, kernel?: string): Tensor {
  return sparseActivationMatmul(x, w, { variant: "gemv", kernel });
}

/**
 * The same product with W stored transposed, wt [in, out] (input-major, transposed once when a
 * model is prepared for decoding): each pruned input skips a whole row of wt, so half of W is
 * never read. The dense baseline is gemv(x, wt, { transposed: true }).
 */
export function sparseActivationGemvTransposed(
  x: NmTensor,
  wt: Tensor,
  kernel?: string,
): Tensor {
  const op = "sparseActivationGemvTransposed";
  const l = x.layout;
  if (l.shape.length !== 2 || l.axis !== 1 || l.shape[0] !== 1 || wt.rank !== 2) {
    throw new ShapeError(
      op,
      `x ${shapeString(l.shape)} (along axis ${l.axis}) must be one token compressed along its ` +
        `features and wt ${shapeString(wt.shape)} a matrix [in, out]`,
    );
  }
  // The checks of a product against W [out, in], on wt's shape read the other way round.
  const asW = wt.engine.alias(wt, [wt.shape[1], wt.shape[0]]);
  try {
    return sparseGemvForward(checkOperands(op, x, asW, true), wt, kernel, true);
  } finally {
    asW.dispose();
  }
}

/** One token's weight-sparse product: x [1, in] against w [out, in] (N:M) → [1, out]. */
export function sparseWeightGemv(x: Tensor, w: NmTensor, kernel?: string): Tensor {
  return sparseWeightMatmul(x, w, { variant: "gemv", kernel });
}
