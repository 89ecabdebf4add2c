/** Gradient clipping by the global L2 norm, entirely on the GPU. */
import shader from "../../shaders/grad_norm.wgsl" with { type: "text" };
import { coalesceSparseGrads } from "../tensor/ops/embedding.ts";
import { declareKernel, groupsFor, rowWindows } from "../tensor/kernel.ts";
import type { Tensor } from "../tensor/tensor.ts";

const GRAD_NORM_KERNEL = declareKernel({
  name: "grad norm",
  source: shader,
  params: { n: "u32", at: "u32", maxNorm: "f32" },
  buffers: ["grad", "partials", "norm"],
});

/** Elements one workgroup of `partial_sums` covers (its 256 threads × PER_THREAD). */
const CHUNK = 256 * 16;

/**
 * Scales every gradient of `params` (dense grads and sparse rows) by min(1, maxNorm / (norm +
 * 1e-6)), norm being their global L2 norm, without reading anything back. Returns the norm as a
 * 1-element tensor, for logging. (Adam.step can apply the same factor as it reads the gradients:
 * see ClipBy.)
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = gradNorm(params);
  const e = norm.engine;
  for (const { g, w } of gradientWindows(params)) {
    GRAD_NORM_KERNEL.dispatch(e.gpu, {
      label: "grad norm scale",
      entry: "scale",
      params: { n: w.rows, at: 0, maxNorm },
      buffers: { grad: { alloc: g.storage, offset: w.offset, size: w.size }, norm: norm.storage },
      workgroups: groupsFor(e, w.rows),
    });
  }
  return norm;
}

/**
 * The global L2 norm of the gradients of `params` (dense grads and sparse rows) as a 1-element
 * tensor, in a fixed order. Several gradients of one parameter are first coalesced (see
 * coalesceSparseGrads), since the norm is that of their sum.
 */
export function gradNorm(params: Tensor[]): Tensor {
  if (params.length === 0) throw new Error("gradNorm: no parameters");
  const e = params[0].engine;
  for (const p of params) coalesceSparseGrads(p);
  const windows = gradientWindows(params);
  const partialCount = windows.reduce((n, { w }) => n + Math.ceil(w.rows / CHUNK), 0);
  const partials = e.empty([partialCount], "f32", "grad norm partials");
  const norm = e.empty([1], "f32", "grad norm");
  let at = 0;
  for (const { g, w } of windows) {
    const groups = Math.ceil(w.rows / CHUNK);
    GRAD_NORM_KERNEL.dispatch(e.gpu, {
      label: "grad norm partial sums",
      entry: "partial_sums",
      params: { n: w.rows, at, maxNorm: 0 },
      buffers: {
        grad: { alloc: g.storage, offset: w.offset, size: w.size },
        partials: partials.storage,
      },
      workgroups: groupsFor(e, w.rows, CHUNK),
    });
    at += groups;
  }
  GRAD_NORM_KERNEL.dispatch(e.gpu, {
    label: "grad norm finish",
    entry: "finish",
    params: { n: partialCount, at: 0, maxNorm: 0 },
    buffers: { partials: partials.storage, norm: norm.storage },
    workgroups: [1],
  });
  partials.dispose();
  return norm;
}

/** Every gradient of `params` (coalesced), cut into binding windows. */
function gradientWindows(params: Tensor[]) {
  const grads = params.flatMap((p) => [
    ...(p.grad ? [p.grad] : []),
    ...p.sparseGrads.map((s) => s.rows),
  ]);
  return grads.flatMap((g) => rowWindows(g.engine, g.size, 4).map((w) => ({ g, w })));
}
