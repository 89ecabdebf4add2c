/** Gradient clipping by the global L2 norm, entirely on the GPU. */
import sumsShader from "../../shaders/grad_norm_sums.wgsl" with { type: "text" };
import shader from "../../shaders/grad_norm.wgsl" with { type: "text" };
import type { Binding } from "../gpu/gpu.ts";
import { coalesceSparseGrads } from "../tensor/ops/embedding.ts";
import type { Engine } from "../tensor/engine.ts";
import {
  declareKernel,
  generatedKernels,
  groupsFor,
  range,
  type RowWindow,
  rowWindows,
} from "../tensor/kernel.ts";
import type { Tensor } from "../tensor/tensor.ts";

const GRAD_NORM_KERNEL = declareKernel({
  name: "grad norm",
  source: sumsShader + shader,
  params: { n: "u32", maxNorm: "f32" },
  buffers: ["grad", "partials", "norm"],
});

/** Elements one workgroup of `partial_sums` covers (its 256 threads × PER_THREAD). */
const CHUNK = 256 * 16;

/**
 * `partial_sums` over `slots` gradients, each at its own binding: workgroups [end(k−1), end(k))
 * sum chunks of gradient k, whose partials start at at(k): the very chunks and sums of one
 * dispatch per gradient (see dispatchGroups).
 */
function partialSumsSource(slots: number): string {
  const fields = range(slots).map((k) => `end${k}: u32, n${k}: u32, at${k}: u32`).join(", ");
  const squares = range(slots).map((k) => `
fn squares${k}(chunk: u32, lid: u32) -> f32 {
  let base = chunk * WG * PER_THREAD;
  var s = 0.0;
  for (var j = 0u; j < PER_THREAD; j++) {
    let i = base + j * WG + lid;
    if (i < p.n${k}) {
      let g = grad${k}[i];
      s += g * g;
    }
  }
  return s;
}`);
  const pick = range(slots).map((k) => {
    const chunk = k === 0 ? "group" : `group - p.end${k - 1}`;
    return `  ${k === 0 ? "" : "else "}if (group < p.end${k}) {
    s = squares${k}(${chunk}, lid);
    at = p.at${k} + ${chunk};
  }`;
  });
  return [
    `struct Params { ${fields} }`,
    "@group(0) @binding(0) var<uniform> p: Params;",
    "@group(0) @binding(1) var<storage, read_write> partials: array<f32>;",
    ...range(slots).map((k) =>
      `@group(0) @binding(${k + 2}) var<storage, read> grad${k}: array<f32>;`
    ),
    ...squares,
    "",
    "@compute @workgroup_size(256)",
    "fn partial_sums(",
    "  @builtin(local_invocation_index) lid: u32,",
    "  @builtin(workgroup_id) wid: vec3u,",
    "  @builtin(num_workgroups) nwg: vec3u,",
    ") {",
    "  let group = wid.x + wid.y * nwg.x;",
    "  var s = 0.0;",
    "  var at = 0u;",
    ...pick,
    "  let total = tree_sum(lid, s);",
    `  if (lid == 0u && group < p.end${slots - 1}) {`,
    "    partials[at] = total;",
    "  }",
    "}",
    "",
  ].join("\n");
}

// One shape is registered for the declaration test; the others are generated alike.
const partialSumsKernel = generatedKernels(
  (slots: number) => ({
    name: "grad norm partial sums",
    source: partialSumsSource(slots) + sumsShader,
    params: Object.fromEntries(
      range(slots).flatMap((s) => [`end${s}`, `n${s}`, `at${s}`].map((f) => [f, "u32" as const])),
    ),
    buffers: ["partials", ...range(slots).map((s) => `grad${s}`)],
  }),
  String,
  [2],
);

/**
 * The windows of each `partial_sums` dispatch, in order: gradients of at most one chunk share a
 * dispatch, as many as the storage bindings allow beside the partials'; a larger one takes a
 * dispatch of its own. On llvmpipe every dispatch has a cost of its own, but every workgroup of a
 * kernel over many bindings runs slower (15 gradients of 100,000 elements: +8% with 4 slots a
 * dispatch, 2.7× with 15), so only gradients that are mostly dispatch cost are grouped.
 */
function dispatchGroups<T extends { w: RowWindow }>(e: Engine, windows: T[]): T[][] {
  const slots = Math.max(1, e.gpu.limits.maxStorageBuffersPerShaderStage - 1);
  const groups: T[][] = [];
  let open: T[] | null = null;
  for (const x of windows) {
    if (x.w.rows > CHUNK) {
      groups.push([x]);
      continue;
    }
    if (!open || open.length === slots) groups.push(open = []);
    open.push(x);
  }
  return groups;
}

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
      params: { n: w.rows, maxNorm },
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
  // Each window's partials in window order, however the windows are grouped into dispatches.
  let partialCount = 0;
  const windows = gradientWindows(params).map((x) => {
    const at = partialCount;
    partialCount += Math.ceil(x.w.rows / CHUNK);
    return { ...x, at };
  });
  const partials = e.empty([partialCount], "f32", "grad norm partials");
  const norm = e.empty([1], "f32", "grad norm");
  for (const part of dispatchGroups(e, windows)) {
    const values: Record<string, number> = {};
    const buffers: Record<string, Binding> = { partials: partials.storage };
    let end = 0;
    part.forEach(({ g, w, at }, k) => {
      end += Math.ceil(w.rows / CHUNK);
      Object.assign(values, { [`end${k}`]: end, [`n${k}`]: w.rows, [`at${k}`]: at });
      buffers[`grad${k}`] = { alloc: g.storage, offset: w.offset, size: w.size };
    });
    partialSumsKernel(part.length).dispatch(e.gpu, {
      entry: "partial_sums",
      params: values,
      buffers,
      workgroups: groupsFor(e, end, 1),
    });
  }
  GRAD_NORM_KERNEL.dispatch(e.gpu, {
    label: "grad norm finish",
    entry: "finish",
    params: { n: partialCount, maxNorm: 0 },
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
