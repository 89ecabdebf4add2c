/**
 * Deterministic reductions: sums and means over everything or the last axis (multi-pass trees
 * in workgroup memory), column sums over the leading axes (two-stage partial sums). No atomics:
 * every sum has a fixed order, so results are bit-identical run to run.
 */
import reduceShader from "../../../shaders/reduce.wgsl" with { type: "text" };
import columnShader from "../../../shaders/column_sum.wgsl" with { type: "text" };
import broadcastShader from "../../../shaders/broadcast.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import {
  assertDType,
  declareKernel,
  groupsFor,
  type RowWindow,
  rowWindows,
  softwarePieces,
} from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { columnChunkGrid, dispatchWindowed } from "./windowed.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";

const REDUCE_KERNEL = declareKernel({
  name: "sum rows",
  source: reduceShader,
  params: { rows: "u32", cols: "u32", blocks: "u32", out0: "u32", scale: "f32" },
  buffers: ["x", "out"],
});
const COLUMN_SUM_KERNEL = declareKernel({
  name: "column sums",
  source: columnShader,
  params: {
    rows: "u32",
    cols: "u32",
    chunk_rows: "u32",
    chunk0: "u32",
    stride: "u32",
    offset: "u32",
  },
  buffers: ["a", "partial_sums", "out"],
});
const BROADCAST_KERNEL = declareKernel({
  name: "sum backward",
  source: broadcastShader,
  params: { n: "u32", first: "u32", inner: "u32", outer: "u32", scale: "f32" },
  buffers: ["dx", "g"],
});

const WG = 256;
const ITEMS = 256;

/** Threads per row segment: enough to cover `cols` at ITEMS each, a power of two up to WG. */
function segmentFor(cols: number): number {
  let seg = 1;
  while (seg < WG && seg * ITEMS < cols) seg *= 2;
  return seg;
}

function blocksFor(cols: number): number {
  return Math.ceil(cols / (segmentFor(cols) * ITEMS));
}

/** One dispatch of a row pass: `rows` rows of `cols` in a binding window, results from out0. */
interface Launch {
  rows: number;
  cols: number;
  offset: number;
  size: number;
  out0: number;
}

/**
 * Reduces rows until each of `results` rows is one value, written to `out` scaled by `scale`.
 * The first pass follows `first`; later passes read the partials of the pass before.
 */
function reduceRows(
  e: Engine,
  x: Tensor,
  first: Launch[],
  results: number,
  out: Tensor,
  scale: number,
) {
  let src = x;
  let launches = first;
  for (;;) {
    const partials = launches.reduce((n, l) => n + l.rows * blocksFor(l.cols), 0);
    const final = partials === results;
    const dst = final ? out : e.empty([partials], "f32", "sum partials");
    for (const l of launches) rowPass(e, src, l, dst, final ? scale : 1);
    if (src !== x) src.dispose();
    if (final) return;
    src = dst;
    const cols = partials / results;
    launches = [{ rows: results, cols, offset: 0, size: partials * 4, out0: 0 }];
  }
}

function rowPass(e: Engine, src: Tensor, l: Launch, dst: Tensor, scale: number): void {
  const seg = segmentFor(l.cols);
  const blocks = blocksFor(l.cols);
  REDUCE_KERNEL.dispatch(e.gpu, {
    constants: { SEG: seg, ITEMS },
    params: { rows: l.rows, cols: l.cols, blocks, out0: l.out0, scale },
    buffers: { x: { alloc: src.storage, offset: l.offset, size: l.size }, out: dst.storage },
    workgroups: groupsFor(e, l.rows * blocks, WG / seg),
  });
}

/** First-pass launches of a full reduction: each binding window is one row. */
function flatLaunches(e: Engine, n: number): Launch[] {
  let out0 = 0;
  return rowWindows(e, n, 4).map((w) => {
    const l = { rows: 1, cols: w.rows, offset: w.offset, size: w.size, out0 };
    out0 += blocksFor(w.rows);
    return l;
  });
}

/** First-pass launches of a last-axis reduction: windows of whole rows. */
function rowLaunches(e: Engine, rows: number, cols: number): Launch[] {
  const blocks = blocksFor(cols);
  return rowWindows(e, rows, cols * 4).map((w) => ({
    rows: w.rows,
    cols,
    offset: w.offset,
    size: w.size,
    out0: w.row * blocks,
  }));
}

/** dx = g broadcast back: element i reads g[(i / inner) % outer] · scale. */
function broadcast(g: Tensor, like: Tensor, inner: number, outer: number, scale: number): Tensor {
  const e = g.engine;
  const dx = e.empty(like.shape, "f32", "sum backward");
  dispatchWindowed(e, BROADCAST_KERNEL, like.size, {
    params: { inner, outer, scale },
    windowed: { dx },
    whole: { g },
  });
  return dx;
}

function reduce(op: string, x: Tensor, axis: -1 | undefined, average: boolean): Tensor {
  assertDType(op, x, "f32");
  if (axis !== undefined && axis !== -1) {
    throw new ShapeError(op, `axis must be -1 or omitted, got ${axis} for ${shapeString(x.shape)}`);
  }
  const e = x.engine;
  const lastAxis = axis === -1 && x.rank > 1;
  const cols = lastAxis ? x.shape[x.rank - 1] : x.size;
  const outShape = lastAxis ? x.shape.slice(0, -1) : [1];
  if (cols === 0) {
    if (average) {
      throw new ShapeError(op, `cannot average an empty axis of ${shapeString(x.shape)}`);
    }
    return e.zeros(outShape, "f32", op);
  }
  const rows = x.size / cols;
  const scale = average ? 1 / cols : 1;
  const out = e.empty(outShape, "f32", op);
  const first = lastAxis ? rowLaunches(e, rows, cols) : flatLaunches(e, cols);
  reduceRows(e, x, first, rows, out, scale);
  return e.record({
    op,
    inputs: [x],
    output: out,
    backward: (g) => [broadcast(g, x, cols, rows, scale)],
  });
}

/** Σ of all elements → [1], or with axis -1 over the last axis: [..., N] → [...] ([N] → [1]). */
export function sum(x: Tensor, axis?: -1): Tensor {
  return reduce("sum", x, axis, false);
}

/** Mean of all elements → [1], or with axis -1 over the last axis: [..., N] → [...]. */
export function mean(x: Tensor, axis?: -1): Tensor {
  return reduce("mean", x, axis, true);
}

/** How a [rows, cols] column reduction is cut into chunks of rows, per binding window. */
export interface ColumnChunks {
  chunkRows: number;
  /** Total chunks (rows of the partials matrix). */
  chunks: number;
  windows: (RowWindow & { chunk0: number })[];
}

/**
 * Partials stay small (≤ 2^18 values unless cols alone is bigger), chunks ≥ 32 rows; at most 1,024
 * chunks, or about 16 a core on a software adapter, where every workgroup has a cost of its own
 * (see chunkRowsFor in windowed.ts; a CoLES batch's bias gradient took 200 chunks of 32 rows).
 * There a chunk is also at most LOOP_BUDGET rows, the loop of one invocation (more chunks past
 * 2^15 · 16 rows a core: llvmpipe cut the rows of [2.2M, 1]'s 32 chunks short on 2 cores).
 */
export function columnChunks(e: Engine, rows: number, cols: number): ColumnChunks {
  const most = e.gpu.isSoftware ? softwarePieces() : 1024;
  const target = Math.max(1, Math.min(Math.ceil(rows / 32), Math.floor(2 ** 18 / cols), most));
  let chunkRows = Math.max(1, Math.ceil(rows / target));
  if (e.gpu.isSoftware) chunkRows = Math.min(chunkRows, LOOP_BUDGET);
  let chunk0 = 0;
  const windows = rowWindows(e, rows, cols * 4).map((w) => {
    const win = { ...w, chunk0 };
    chunk0 += Math.ceil(w.rows / chunkRows);
    return win;
  });
  return { chunkRows, chunks: chunk0, windows };
}

/**
 * The chunks each pass of finishColumnSums adds per group, one pass after another: one pass of
 * every chunk, or on a software adapter passes of groups of at most LOOP_BUDGET chunks (in
 * order) until one group is left. [1.1M, 4]'s RMSNorm dgamma had 68,750 partials, and llvmpipe
 * ended a single pass's loop short.
 */
export function finishPasses(e: Engine, chunks: number): number[] {
  const passes: number[] = [];
  let left = Math.max(1, chunks);
  while (e.gpu.isSoftware && left > LOOP_BUDGET) {
    const groups = Math.ceil(left / LOOP_BUDGET);
    const group = Math.ceil(left / groups);
    passes.push(group);
    left = Math.ceil(left / group);
  }
  passes.push(left);
  return passes;
}

/**
 * out[c] = Σ over chunks k (in order) of partials[k · stride + offset + c], c < cols: the shared
 * second stage of every column reduction (in passes over groups of chunks past the loop budget
 * of a software adapter: finishPasses).
 */
export function finishColumnSums(
  partials: Tensor,
  chunks: number,
  cols: number,
  stride: number,
  offset: number,
  out: Tensor,
): void {
  const e = partials.engine;
  let src = partials;
  let left = chunks;
  for (const group of finishPasses(e, chunks)) {
    const groups = Math.ceil(left / group);
    const dst = groups === 1 ? out : e.empty([groups, cols], "f32", "column partials");
    COLUMN_SUM_KERNEL.dispatch(e.gpu, {
      label: "column sums finish",
      entry: "finish",
      params: { rows: left, cols, chunk_rows: group, chunk0: 0, stride, offset },
      buffers: { partial_sums: src.storage, out: dst.storage },
      workgroups: columnChunkGrid(e, cols, left, group),
    });
    if (src !== partials) src.dispose();
    src = dst;
    left = groups;
    stride = cols;
    offset = 0;
  }
}

/** Sums over every axis but the last: [..., N] → [N] (a bias gradient). */
export function columnSums(x: Tensor): Tensor {
  assertDType("columnSums", x, "f32");
  if (x.rank === 0) throw new ShapeError("columnSums", "needs at least one axis, got a scalar");
  const e = x.engine;
  const cols = x.shape[x.rank - 1];
  const rows = cols === 0 ? 0 : x.size / cols;
  const out = rows === 0
    ? e.zeros([cols], "f32", "column sums")
    : e.empty([cols], "f32", "column sums");
  if (rows > 0) {
    const plan = columnChunks(e, rows, cols);
    const partials = e.empty([plan.chunks, cols], "f32", "column partials");
    for (const w of plan.windows) {
      COLUMN_SUM_KERNEL.dispatch(e.gpu, {
        label: "column sums partials",
        entry: "partials",
        params: {
          rows: w.rows,
          cols,
          chunk_rows: plan.chunkRows,
          chunk0: w.chunk0,
          stride: 0,
          offset: 0,
        },
        buffers: {
          a: { alloc: x.storage, offset: w.offset, size: w.size },
          partial_sums: partials.storage,
        },
        workgroups: columnChunkGrid(e, cols, w.rows, plan.chunkRows),
      });
    }
    finishColumnSums(partials, plan.chunks, cols, cols, 0, out);
    partials.dispose();
  }
  return e.record({
    op: "columnSums",
    inputs: [x],
    output: out,
    backward: (g) => [broadcast(g, x, 1, cols, 1)],
  });
}
