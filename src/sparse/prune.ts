/**
 * Pruning into N:M compressed tensors on the GPU, and back (shaders/sparse_prune.wgsl,
 * shaders/sparse_decode.wgsl): top N of every M by score or magnitude, ties to the lower
 * position; unstructured top-k per lane at the same ratio for comparison. Encoding a tensor that
 * is already N:M-sparse is pruning it by magnitude. None of these ops carries gradients.
 */
import pruneShader from "../../shaders/sparse_prune.wgsl" with { type: "text" };
import decodeShader from "../../shaders/sparse_decode.wgsl" with { type: "text" };
import type { Engine } from "../tensor/engine.ts";
import { assertDType, assertSameShape, declareKernel, groupsFor } from "../tensor/kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import { type NmEncoding, type NmLayout, nmLayout, type NmPattern, NmTensor } from "./format.ts";
import { withNmReader } from "./gathered_dot.ts";
import { binomialBuffer } from "./tables.ts";

const LAYOUT_PARAMS = {
  lanes: "u32",
  d: "u32",
  inner: "u32",
  n: "u32",
  m: "u32",
  width: "u32",
  words: "u32",
  groups: "u32",
  kept: "u32",
} as const;

const PRUNE_KERNEL = declareKernel({
  name: "sparse prune",
  source: pruneShader,
  params: { ...LAYOUT_PARAMS, use_scores: "u32", write_masked: "u32" },
  buffers: ["x", "scores", "values", "nm_meta", "masked", "binomials"],
});

const DECODE_KERNEL = declareKernel({
  name: "sparse decode",
  source: withNmReader(decodeShader),
  params: LAYOUT_PARAMS,
  buffers: ["values", "nm_meta", "binomials", "dense"],
});

/** Longest lane of unstructured pruning: its 32 counting rounds over a 64th of it stay short. */
const MAX_UNSTRUCTURED_D = 32768;

export interface PruneOptions {
  /** The dimension the groups run along; the last by default. */
  axis?: number;
  /** Metadata encoding; "combinatorial" (the compact one) by default. */
  encoding?: NmEncoding;
  /** f32 scores of x's shape; |x| when absent. */
  scores?: Tensor;
  /** Also return x with the pruned values zeroed. */
  masked?: boolean;
}

export interface Pruned {
  nm: NmTensor;
  /** x with the pruned values zeroed, when asked for. */
  masked: Tensor | null;
}

/** The uniform fields of a layout. */
export function layoutParams(l: NmLayout) {
  return {
    lanes: l.lanes,
    d: l.d,
    inner: l.inner,
    n: l.pattern.n,
    m: l.pattern.m,
    width: l.width,
    words: l.words,
    groups: l.groups,
    kept: l.kept,
  };
}

function allocate(e: Engine, l: NmLayout, what: string): NmTensor {
  const values = e.empty(l.valuesShape, "f32", `${what} values`);
  const meta = e.zeros([l.lanes, l.words], "u32", `${what} metadata`);
  return new NmTensor(l, values, meta);
}

function prune(
  op: string,
  x: Tensor,
  l: NmLayout,
  opts: PruneOptions,
  entry: "prune_groups" | "prune_rows",
): Pruned {
  assertDType(op, x, "f32");
  if (opts.scores) {
    assertDType(`${op} scores`, opts.scores, "f32");
    assertSameShape(op, x, opts.scores);
  }
  const e = x.engine;
  const nm = allocate(e, l, op);
  const masked = opts.masked ? e.empty(x.shape, "f32", `${op} masked`) : null;
  const placeholder = masked ? null : e.empty([1], "f32", `${op} no masked output`);
  PRUNE_KERNEL.dispatch(e.gpu, {
    label: `sparse ${entry}`,
    entry,
    constants: { COMBINATORIAL: l.encoding === "combinatorial" ? 1 : 0 },
    params: {
      ...layoutParams(l),
      use_scores: opts.scores ? 1 : 0,
      write_masked: masked ? 1 : 0,
    },
    buffers: {
      x: x.storage,
      scores: (opts.scores ?? x).storage,
      values: nm.values.storage,
      nm_meta: nm.meta.storage,
      masked: (masked ?? placeholder)!.storage,
      binomials: entry === "prune_groups" ? binomialBuffer(e).storage : undefined,
    },
    workgroups: entry === "prune_groups"
      ? groupsFor(e, l.lanes * l.groups, 64)
      : groupsFor(e, l.lanes, 1),
  });
  placeholder?.dispose();
  return { nm, masked };
}

/**
 * Keeps the top N of every M consecutive values along `axis` by `scores` (|x| by default), ties
 * to the lower position: the compressed tensor, and x with the rest zeroed when asked.
 */
export function pruneNm(x: Tensor, pattern: NmPattern, opts: PruneOptions = {}): Pruned {
  const axis = opts.axis ?? x.rank - 1;
  const l = nmLayout("pruneNm", x.shape, axis, pattern, opts.encoding ?? "combinatorial");
  return prune("pruneNm", x, l, opts, "prune_groups");
}

/**
 * Compresses a tensor that is already N:M-sparse along `axis` (at most N non-zeros in every
 * group; with fewer, zeros fill the kept places, lowest positions first).
 */
export function encodeNm(
  x: Tensor,
  pattern: NmPattern,
  opts: { axis?: number; encoding?: NmEncoding } = {},
): NmTensor {
  return pruneNm(x, pattern, opts).nm;
}

/** Values kept per lane of length d at pattern's ratio (unstructured pruning's k). */
export function keepAtRatio(d: number, pattern: NmPattern): number {
  return Math.max(1, Math.round((d * pattern.n) / pattern.m));
}

/**
 * Keeps the top `k` values of every lane along `axis` by `scores` (|x| by default), ties to the
 * lower position: a compressed tensor of pattern k:D with index encoding.
 */
export function pruneUnstructured(
  x: Tensor,
  k: number,
  opts: Omit<PruneOptions, "encoding"> = {},
): Pruned {
  const op = "pruneUnstructured";
  const axis = opts.axis ?? x.rank - 1;
  const d = x.shape[axis];
  const l = nmLayout(op, x.shape, axis, { n: k, m: d }, "indices", true);
  if (d > MAX_UNSTRUCTURED_D) {
    throw new ShapeError(
      op,
      `dimension ${axis} of ${shapeString(x.shape)} exceeds ${MAX_UNSTRUCTURED_D}`,
    );
  }
  return prune(op, x, l, opts, "prune_rows");
}

/** The dense tensor of a compressed one: kept values in place, zeros elsewhere. */
export function decodeNm(nm: NmTensor): Tensor {
  const l = nm.layout;
  const e = nm.engine;
  const dense = e.zeros(l.shape, "f32", "sparse decoded");
  DECODE_KERNEL.dispatch(e.gpu, {
    constants: { COMBINATORIAL: l.encoding === "combinatorial" ? 1 : 0 },
    params: layoutParams(l),
    buffers: {
      values: nm.values.storage,
      nm_meta: nm.meta.storage,
      binomials: binomialBuffer(e).storage,
      dense: dense.storage,
    },
    workgroups: groupsFor(e, l.lanes * l.groups, 64),
  });
  return dense;
}
