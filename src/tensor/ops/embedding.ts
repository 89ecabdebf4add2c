/**
 * Embedding lookup for tables of any size, and the row-sparse gradients it produces: the backward
 * returns SparseRows (one summed row per distinct id) that optimisers merge, densify or add into
 * a dense gradient. Every kernel here is race-free with a fixed summation order.
 */
import forwardShader from "../../../shaders/embedding.wgsl" with { type: "text" };
import backwardShader from "../../../shaders/embedding_backward.wgsl" with { type: "text" };
import scatterShader from "../../../shaders/embedding_scatter_add.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";
import { ShapeError, shapeString, type SparseRows, type Tensor } from "../tensor.ts";
import { assertDType, declareKernel, groupsFor, type RowWindow, rowWindows } from "../kernel.ts";

const FORWARD_KERNEL = declareKernel({
  name: "embedding forward",
  source: forwardShader,
  params: { n: "u32", cols: "u32", rowBase: "u32", rows: "u32", posBase: "u32" },
  buffers: ["table", "ids", "out"],
});
const BACKWARD_KERNEL = declareKernel({
  name: "embedding backward",
  source: backwardShader,
  params: {
    n: "u32",
    cols: "u32",
    uniqueBase: "u32",
    posLo: "u32",
    posHi: "u32",
    positionsAt: "u32",
    accumulate: "u32",
    skip: "u32",
    take: "u32",
  },
  buffers: ["csr", "dy", "rows"],
});
const SCATTER_KERNEL = declareKernel({
  name: "scatter add rows",
  source: scatterShader,
  params: { n: "u32", cols: "u32", first: "u32", srcSkip: "u32", dstBase: "u32" },
  buffers: ["targets", "src", "dst"],
});

/**
 * table f32 [rows, cols], ids i32 [...] → f32 [..., cols]. Ids made with engine.tensor (a host
 * copy) are range-checked and have a backward, which sorts them on the host. Ids that exist only
 * on the GPU (a token sampled there) are for inference: nothing checks them (an id outside the
 * table gives a row of zeros) and a tape that needs the table's gradient refuses them.
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  assertDType("embedding table", table, "f32");
  assertDType("embedding ids", ids, "i32");
  if (table.rank !== 2) {
    throw new ShapeError(
      "embedding",
      `table must be [rows, cols], got ${shapeString(table.shape)}`,
    );
  }
  const host = ids.host as Int32Array | null;
  const e = table.engine;
  if (!host && e.tape && table.requiresGrad) {
    throw new Error(
      "embedding: ids have no host copy; create them with engine.tensor so that the backward " +
        "can sort them on the host",
    );
  }
  const [tableRows, cols] = table.shape;
  const tableWindows = rowWindows(e, tableRows, cols * 4);
  const hit = host
    ? windowsHit(host, ids.shape, tableRows, tableWindows)
    : new Uint8Array(tableWindows.length).fill(1);
  const out = host
    ? e.empty([...ids.shape, cols], "f32", "embedding")
    : e.zeros([...ids.shape, cols], "f32", "embedding");
  const outWindows = rowWindows(e, ids.size, cols * 4);
  tableWindows.forEach((tw, k) => {
    if (!hit[k]) return;
    for (const ow of outWindows) {
      FORWARD_KERNEL.dispatch(e.gpu, {
        params: { n: ow.rows * cols, cols, rowBase: tw.row, rows: tw.rows, posBase: ow.row },
        buffers: { table: windowOf(table, tw), ids: ids.storage, out: windowOf(out, ow) },
        workgroups: groupsFor(e, ow.rows * cols),
      });
    }
  });
  return e.record({
    op: "embedding",
    inputs: [table, ids],
    output: out,
    backward: (dy) => [embeddingBackward(dy, host!, cols), null],
  });
}

/** Checks every id against the table and marks the table windows that some id falls in. */
function windowsHit(
  ids: Int32Array,
  idsShape: readonly number[],
  tableRows: number,
  windows: RowWindow[],
): Uint8Array {
  const hit = new Uint8Array(windows.length);
  // rowWindows cuts equal windows (the last may be shorter), so an id's window is a division.
  const step = Math.max(windows[0].rows, 1);
  for (let p = 0; p < ids.length; p++) {
    const id = ids[p];
    if (!(id >= 0 && id < tableRows)) {
      throw new RangeError(
        `embedding: id ${id} at position ${shapeString(unravel(p, idsShape))} is outside ` +
          `the table's ${tableRows} rows [0, ${tableRows})`,
      );
    }
    hit[Math.floor(id / step)] = 1;
  }
  return hit;
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return index;
}

function embeddingBackward(dy: Tensor, ids: Int32Array, cols: number): SparseRows {
  const e = dy.engine;
  const { unique, csr } = idsToCsr(ids);
  const n = unique.length;
  const idsGpu = e.tensor(unique, [n], "i32", "embedding grad ids");
  const csrGpu = e.tensor(csr, [csr.length], "u32", "embedding grad csr");
  const rows = e.empty([n, cols], "f32", "embedding grad rows");
  const dyWindows = rowWindows(e, ids.length, cols * 4);
  const { take, passes } = occurrencePasses(longestSegment(csr, n), e.gpu.isSoftware);
  for (const rw of rowWindows(e, n, cols * 4)) {
    dyWindows.forEach((dw, k) => {
      for (let pass = 0; pass < passes; pass++) {
        BACKWARD_KERNEL.dispatch(e.gpu, {
          params: {
            n: rw.rows * cols,
            cols,
            uniqueBase: rw.row,
            posLo: dw.row,
            posHi: dw.row + dw.rows,
            positionsAt: n + 1,
            accumulate: k > 0 || pass > 0 ? 1 : 0,
            skip: pass * take,
            take,
          },
          buffers: { csr: csrGpu.storage, dy: windowOf(dy, dw), rows: windowOf(rows, rw) },
          workgroups: groupsFor(e, rw.rows * cols),
        });
      }
    });
  }
  csrGpu.dispose();
  return { ids: unique, idsGpu, rows };
}

/** The most positions any one distinct id holds, from idsToCsr's offsets. */
function longestSegment(csr: Uint32Array, unique: number): number {
  let longest = 0;
  for (let u = 0; u < unique; u++) longest = Math.max(longest, csr[u + 1] - csr[u]);
  return longest;
}

/**
 * How the backward walks each id's positions: passes of at most `take` occurrences, each adding
 * its sum into the row. One invocation walks an id's list serially, and llvmpipe silently ends
 * that walk past ~65,535 iterations, so on a software adapter a list longer than LOOP_BUDGET is
 * cut into passes (an id looked up over 32,768 times: padding, a popular item). Every shorter
 * list, and every list on a hardware adapter, is one pass: the same sums, bit for bit, as ever.
 */
export function occurrencePasses(
  longest: number,
  software: boolean,
): { take: number; passes: number } {
  const take = Math.max(1, software ? Math.min(longest, LOOP_BUDGET) : longest);
  return { take, passes: Math.max(1, Math.ceil(longest / take)) };
}

/**
 * The positions of each distinct id, ascending, as CSR in one array: offsets [unique + 1], then
 * positions. A stable counting sort by the id's rank keeps the kernel's summation order fixed.
 */
export function idsToCsr(ids: Int32Array): { unique: Int32Array; csr: Uint32Array } {
  const unique = sortedUnique(Int32Array.from(ids).sort());
  const n = unique.length;
  const rank = new Uint32Array(ids.length);
  const csr = new Uint32Array(n + 1 + ids.length);
  for (let p = 0; p < ids.length; p++) {
    rank[p] = lowerBound(unique, ids[p]);
    csr[rank[p] + 1]++;
  }
  for (let u = 0; u < n; u++) csr[u + 1] += csr[u];
  const next = csr.slice(0, n);
  for (let p = 0; p < ids.length; p++) csr[n + 1 + next[rank[p]]++] = p;
  return { unique, csr };
}

function sortedUnique(sorted: Int32Array): Int32Array {
  let n = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i];
  }
  return sorted.slice(0, n);
}

/** The first index whose value is ≥ x in an ascending array. */
function lowerBound(sorted: Int32Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function windowOf(t: Tensor, w: RowWindow) {
  return { alloc: t.storage, offset: w.offset, size: w.size };
}

/**
 * One dispatch's share of a row scatter: source rows [first, first + count) (ascending targets
 * that fall in the destination window `dst`), bound through the source window `src`.
 */
export interface RowScatterPart {
  dst: RowWindow;
  src: RowWindow;
  first: number;
  count: number;
}

/**
 * Splits "source row j goes to destination row targets[j]" (targets ascending) into parts whose
 * source and destination rows each fit one binding window.
 */
export function rowScatterParts(
  engine: Engine,
  targets: Int32Array,
  dstRows: number,
  cols: number,
): RowScatterPart[] {
  const parts: RowScatterPart[] = [];
  const srcWindows = rowWindows(engine, targets.length, cols * 4);
  for (const dst of rowWindows(engine, dstRows, cols * 4)) {
    const lo = lowerBound(targets, dst.row);
    const hi = lowerBound(targets, dst.row + dst.rows);
    for (const src of srcWindows) {
      const first = Math.max(lo, src.row);
      const end = Math.min(hi, src.row + src.rows);
      if (first < end) parts.push({ dst, src, first, count: end - first });
    }
  }
  return parts;
}

/**
 * dst[targets[j]] += src[j] for every row j of src. `targets` (ascending, distinct) is on the host
 * and on the GPU from element `targetsAt` of `targetsGpu`.
 */
function scatterAddRows(
  dst: Tensor,
  src: Tensor,
  targets: Int32Array,
  targetsGpu: Tensor,
  targetsAt = 0,
): void {
  const e = dst.engine;
  const cols = dst.shape[1];
  for (const part of rowScatterParts(e, targets, dst.shape[0], cols)) {
    SCATTER_KERNEL.dispatch(e.gpu, {
      params: {
        n: part.count * cols,
        cols,
        first: targetsAt + part.first,
        srcSkip: part.first - part.src.row,
        dstBase: part.dst.row,
      },
      buffers: {
        targets: targetsGpu.storage,
        src: windowOf(src, part.src),
        dst: windowOf(dst, part.dst),
      },
      workgroups: groupsFor(e, part.count * cols),
    });
  }
}

function assertRowsFit(op: string, sparse: SparseRows, rows: number, cols: number): void {
  const [n, sparseCols] = sparse.rows.shape;
  const last = n > 0 ? sparse.ids[n - 1] : -1;
  if (sparseCols !== cols || last >= rows || n !== sparse.ids.length) {
    throw new ShapeError(
      op,
      `sparse rows ${shapeString(sparse.rows.shape)} with ${sparse.ids.length} ids up to ${last} ` +
        `do not fit a [${rows}, ${cols}] table`,
    );
  }
}

/** The dense [rows, cols] matrix that has `sparse`'s rows at its ids and zeros elsewhere. */
export function sparseRowsToDense(sparse: SparseRows, rows: number): Tensor {
  const cols = sparse.rows.shape[1];
  assertRowsFit("sparseRowsToDense", sparse, rows, cols);
  const dense = sparse.rows.engine.zeros([rows, cols], "f32", "dense rows");
  scatterAddRows(dense, sparse.rows, sparse.ids, sparse.idsGpu);
  return dense;
}

/** dense += the rows of `sparse` at their ids, in place. */
export function addSparseRows(dense: Tensor, sparse: SparseRows): void {
  assertRowsFit("addSparseRows", sparse, dense.shape[0], dense.shape[1]);
  scatterAddRows(dense, sparse.rows, sparse.ids, sparse.idsGpu);
}

/**
 * One SparseRows holding the sums of several (a table looked up more than once): the union of
 * their ids, each source added in list order, so the result is the same bits every time.
 */
export function mergeSparseRows(list: SparseRows[]): SparseRows {
  const cols = list[0].rows.shape[1];
  for (const s of list) {
    if (s.rows.shape[1] !== cols) {
      throw new ShapeError(
        "mergeSparseRows",
        `rows ${shapeString(list[0].rows.shape)} and ${shapeString(s.rows.shape)} differ in width`,
      );
    }
  }
  const e = list[0].rows.engine;
  const all = new Int32Array(list.reduce((n, s) => n + s.ids.length, 0));
  let at = 0;
  for (const s of list) {
    all.set(s.ids, at);
    at += s.ids.length;
  }
  const unique = sortedUnique(all.slice().sort());
  // Where each source's rows land in the union, all sources in one upload.
  for (let k = 0; k < all.length; k++) all[k] = lowerBound(unique, all[k]);
  const idsGpu = e.tensor(unique, [unique.length], "i32", "merged grad ids");
  const targetsGpu = e.tensor(all, [all.length], "i32", "merged grad targets");
  const rows = e.zeros([unique.length, cols], "f32", "merged grad rows");
  at = 0;
  for (const s of list) {
    const targets = all.subarray(at, at + s.ids.length);
    scatterAddRows(rows, s.rows, targets, targetsGpu, at);
    at += s.ids.length;
  }
  targetsGpu.dispose();
  return { ids: unique, idsGpu, rows };
}

/**
 * Puts a parameter's gradient in canonical form: sparse rows added into its dense grad when it
 * has one, several SparseRows merged into one otherwise. Norms and optimiser steps need the true
 * gradient, which is the sum of all of them.
 */
export function coalesceSparseGrads(param: Tensor): void {
  const sparse = param.sparseGrads;
  if (sparse.length === 0 || (sparse.length === 1 && !param.grad)) return;
  const e = param.engine;
  if (param.grad) {
    for (const s of sparse) addSparseRows(param.grad, s);
    param.sparseGrads = [];
  } else {
    const merged = mergeSparseRows(sparse);
    e.keep(merged.idsGpu, merged.rows);
    param.sparseGrads = [merged];
  }
  for (const s of sparse) {
    s.idsGpu.dispose();
    s.rows.dispose();
  }
}
