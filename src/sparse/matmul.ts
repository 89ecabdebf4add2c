/**
 * Sparse matrix products on an N:M operand that stays compressed (shaders/sparse_matmul.wgsl):
 * - activation-sparse Y = S(X)·Wᵀ: X [T, in] compressed along in, W dense [out, in] → [T, out];
 *   a column of W that a token pruned is never read. Inference only: no gradient.
 * - weight-sparse Y = X·S(W)ᵀ: W [out, in] compressed along in, X dense [T, in] → [T, out], with
 *   gradients for X and for W's kept values (pruned positions stay pruned when fine-tuning).
 * Each has a one-token variant (GEMV: an invocation per output) and a batched one (an invocation
 * per token and output); "auto" takes the GEMV for T = 1.
 */
import matmulShader from "../../shaders/sparse_matmul.wgsl" with { type: "text" };
import type { Binding } from "../gpu/gpu.ts";
import type { Engine } from "../tensor/engine.ts";
import { assertDType, declareKernel, groupsFor } from "../tensor/kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import type { NmTensor } from "./format.ts";
import { withGatheredDot, withNmReader } from "./gathered_dot.ts";
import { layoutParams } from "./prune.ts";
import { binomialBuffer } from "./tables.ts";

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

/** Loop iterations one invocation may spend in a pass: half of llvmpipe's 65,535, for margin. */
const LOOP_BUDGET = 32768;

export type SparseMatmulVariant = "auto" | "gemv" | "batched";

export interface SparseMatmulOptions {
  variant?: SparseMatmulVariant;
}

interface Product {
  e: Engine;
  op: string;
  /** T, out, in. */
  rows: number;
  cols: number;
  inFeatures: number;
  nm: NmTensor;
  activation: boolean;
}

/** Checks the compressed operand (last-axis N:M of [rows, in]) against the dense one. */
function checkOperands(op: string, nm: NmTensor, dense: Tensor, activation: boolean): Product {
  assertDType(op, dense, "f32");
  const l = nm.layout;
  const [cRows, cIn] = l.shape;
  const [dRows, dIn] = dense.shape;
  const what = activation ? "X" : "W";
  if (l.shape.length !== 2 || l.axis !== 1 || dense.rank !== 2 || cIn !== dIn) {
    throw new ShapeError(
      op,
      `compressed ${what} ${shapeString(l.shape)} (along axis ${l.axis}) and dense ${
        activation ? "W" : "X"
      } ${shapeString(dense.shape)} do not match (want [rows, in] compressed along axis 1 and ` +
        `[rows', in])`,
    );
  }
  const e = dense.engine;
  const maxBind = e.gpu.limits.maxStorageBufferBindingSize;
  const [rows, cols] = activation ? [cRows, dRows] : [dRows, cRows];
  for (const [name, floats] of [["dense", dense.size], ["Y", rows * cols]] as const) {
    if (floats * 4 > maxBind) {
      throw new ShapeError(op, `${name} of ${floats} floats does not fit one storage binding`);
    }
  }
  const perDot = Math.floor(l.kept / 4) + (l.kept % 4) +
    (l.encoding === "combinatorial" ? l.groups * l.pattern.m : 0) + 2;
  if (perDot > LOOP_BUDGET) {
    throw new ShapeError(op, `rows of ${cIn} features are too long for one dot's loop budget`);
  }
  return { e, op, rows, cols, inFeatures: cIn, nm, activation };
}

function params(p: Product, lo: number, hi: number) {
  const { n, m, width, words, groups, kept } = layoutParams(p.nm.layout);
  return {
    n,
    m,
    width,
    words,
    groups,
    kept,
    rows: p.rows,
    cols: p.cols,
    in_features: p.inFeatures,
    lo,
    hi,
  };
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
    },
    params: params(p, lo, hi),
    buffers: {
      // dW only needs where the kept values are, not the values.
      values: entry === "grad_values" ? undefined : p.nm.values.storage,
      nm_meta: p.nm.meta.storage,
      binomials: binomialBuffer(p.e).storage,
      ...buffers,
    },
    workgroups,
  });
}

function forward(p: Product, dense: Tensor, variant: SparseMatmulVariant): Tensor {
  const y = p.e.empty([p.rows, p.cols], "f32", p.op);
  const gemv = variant === "gemv" || (variant === "auto" && p.rows === 1);
  if (gemv && p.rows !== 1) {
    throw new ShapeError(p.op, `the GEMV variant takes one token, got ${p.rows}`);
  }
  const buffers = { dense: dense.storage, y: y.storage };
  if (gemv) {
    dispatch(p, "gemv", 0, 0, buffers, groupsFor(p.e, p.cols, 64));
    return y;
  }
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
  return forward(p, w, opts.variant ?? "auto");
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
  const y = forward(p, x, opts.variant ?? "auto");
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
