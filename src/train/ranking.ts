/**
 * Full-catalogue ranking for evaluation: scores [U, C+1] (column 0 is the padding item) of a chunk
 * of users against every item stay on the GPU; only ranks [U] and top-k ids [U, k] come back.
 * These ops record nothing on the autograd tape (evaluation only). Every kernel binds the score
 * matrix one row window at a time, so a matrix larger than one storage binding works as long as a
 * single row fits one (1,000,001 floats = 4 MB does; 128 MiB bindings take rows of up to
 * 33,554,432 items). On a software adapter, whose loops are capped, topK and targetRanks walk a
 * long row in column segments (TOP_K_SEGMENT, TARGET_RANK_SEGMENT) and combine them exactly.
 *
 * Scores are compared as order-preserving integer keys of their f32 bits, not as floats: -Infinity
 * (masked items) compares exactly, -0 equals +0, and results are bit-for-bit deterministic. NaN
 * scores are not expected; they would order by their bits (positive NaNs above +Infinity).
 */
import maskShader from "../../shaders/mask_scores.wgsl" with { type: "text" };
import rankShader from "../../shaders/target_rank.wgsl" with { type: "text" };
import topkShader from "../../shaders/topk.wgsl" with { type: "text" };
import gatherShader from "../../shaders/topk_gather.wgsl" with { type: "text" };
import type { Binding } from "../gpu/gpu.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { ShapeError, shapeString } from "../tensor/tensor.ts";
import {
  assertDType,
  declareKernel,
  groupsFor,
  type RowWindow,
  rowWindows,
} from "../tensor/kernel.ts";
import type { Engine } from "../tensor/engine.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

const MASK_KERNEL = declareKernel({
  name: "mask scores",
  source: maskShader,
  params: { rows: "u32", cols: "u32", row0: "u32", span: "u32" },
  buffers: ["scores", "offsets", "items"],
});
const RANK_KERNEL = declareKernel({
  name: "target rank",
  source: rankShader,
  params: { rows: "u32", cols: "u32", row0: "u32", col0: "u32", width: "u32" },
  buffers: ["scores", "targets", "ranks"],
});
const TOP_K_KERNEL = declareKernel({
  name: "top k",
  source: topkShader,
  params: {
    rows: "u32",
    cols: "u32",
    k: "u32",
    out_shift: "u32",
    width: "u32",
    segs: "u32",
    out_stride: "u32",
  },
  buffers: ["scores", "out"],
});
const TOP_K_GATHER_KERNEL = declareKernel({
  name: "top k gather",
  source: gatherShader,
  params: { rows: "u32", cols: "u32", src_cols: "u32", out_shift: "u32" },
  buffers: ["src", "idx", "out"],
});

/** The largest k that topK supports (its candidates are sorted in workgroup memory). */
export const MAX_TOP_K = 128;

/** Invocations of a row's workgroup in topk.wgsl and target_rank.wgsl; 64 in mask_scores.wgsl. */
const ROW_WG = 256;
const MASK_WG = 64;

/**
 * Loop trips of one topk.wgsl invocation over a segment of `cols` items: four histogram rounds
 * and two reads of its range, ⌈cols / 256⌉ each, invocation 0's walks down the 256 digits of each
 * round, and 64 for the scan and the sort (constant trips, counted in case they stay loops).
 */
export function topKLoops(cols: number): number {
  return 6 * Math.ceil(cols / ROW_WG) + 4 * 256 + 64;
}

/**
 * The widest column segment whose topKLoops stay within LOOP_BUDGET: 1,351,680 items. llvmpipe
 * cut a whole row of [1, 2.9M] short (top 1 = id 0), so a software adapter ranks longer rows in
 * segments of this width and merges their top k (topKInSegments).
 */
export const TOP_K_SEGMENT = Math.floor((LOOP_BUDGET - 4 * 256 - 64) / 6) * ROW_WG;

/** Loop trips of one target_rank.wgsl invocation: ⌈cols / 256⌉ and its tree's 8 steps. */
export function targetRankLoops(cols: number): number {
  return Math.ceil(cols / ROW_WG) + 8;
}

/** The widest column segment whose targetRankLoops stay within LOOP_BUDGET: 8,386,560 items. */
export const TARGET_RANK_SEGMENT = (LOOP_BUDGET - 8) * ROW_WG;

/** Excluded items one mask_scores.wgsl workgroup takes: all of a row's, or within the budget. */
export function maskSpan(e: Engine, mostPerRow: number): number {
  const all = Math.max(1, mostPerRow);
  return e.gpu.isSoftware ? Math.min(all, MASK_WG * LOOP_BUDGET) : all;
}

/**
 * Columns one invocation of a ranking kernel walks: the whole row, or at most `segment` on a
 * software adapter (its loop budget).
 */
function segmentWidth(scores: Tensor, segment: number): number {
  const cols = scores.shape[1];
  return scores.engine.gpu.isSoftware ? Math.min(cols, segment) : cols;
}

function checkWidth(op: string, width: number, least: number): void {
  if (!Number.isInteger(width) || width < least) {
    throw new RangeError(`${op}: segment width ${width} is not an integer ≥ ${least}`);
  }
}

/** Items to exclude per row, as CSR: row u excludes items[offsets[u] .. offsets[u+1]). */
export interface ExcludedItems {
  /** [U + 1], offsets[0] = 0, non-decreasing, offsets[U] = items.length. */
  offsets: Int32Array;
  /** Item ids in [0, C+1); repeats are allowed. */
  items: Int32Array;
}

/**
 * In place: sets column 0 (padding) and every excluded item of each row to -Infinity, so that they
 * rank below every real score. Without `exclude` only column 0 is masked (keep-seen evaluation).
 */
export function maskScores(scores: Tensor, exclude?: ExcludedItems): void {
  const [rows, cols] = scoreShape("maskScores", scores);
  const e = scores.engine;
  const offsets = exclude?.offsets ?? new Int32Array(rows + 1);
  const items = exclude?.items ?? new Int32Array(0);
  checkCsr(offsets, items, rows, cols);
  if (rows === 0) return;
  e.tidy(() => {
    const offs = e.tensor(offsets, [rows + 1], "i32", "mask offsets");
    const ids = e.tensor(items, [items.length], "i32", "mask items");
    for (const w of rowWindows(e, rows, cols * 4)) {
      let most = 0;
      for (let u = w.row; u < w.row + w.rows; u++) {
        most = Math.max(most, offsets[u + 1] - offsets[u]);
      }
      const span = maskSpan(e, most);
      const [x, y] = groupsFor(e, w.rows, 1);
      MASK_KERNEL.dispatch(e.gpu, {
        entry: "mask",
        params: { rows: w.rows, cols, row0: w.row, span },
        buffers: {
          scores: { alloc: scores.storage, offset: w.offset, size: w.size },
          offsets: offs.storage,
          items: ids.storage,
        },
        workgroups: [x, y, Math.max(1, Math.ceil(most / span))],
      });
    }
  });
}

/**
 * i32 [U]: for each row, the number of items whose score is strictly greater than the score of
 * `targets[u]` (the 0-based rank of the target). Run maskScores first. When the target was
 * itself excluded (it is in the history) its score is -Infinity and the rank counts every
 * non-excluded item, as the reference PyTorch evaluation does.
 */
export function targetRanks(scores: Tensor, targets: Int32Array): Tensor {
  scoreShape("targetRanks", scores);
  return targetRanksInSegments(scores, targets, segmentWidth(scores, TARGET_RANK_SEGMENT));
}

/**
 * targetRanks counting each row in column segments of `width` items, one dispatch each: a rank
 * counts the higher scores, so the segments' counts add up. targetRanks takes whole rows, or
 * TARGET_RANK_SEGMENT on a software adapter; tests take narrow segments.
 */
export function targetRanksInSegments(scores: Tensor, targets: Int32Array, width: number): Tensor {
  const [rows, cols] = scoreShape("targetRanks", scores);
  checkWidth("targetRanks", width, 1);
  if (targets.length !== rows) {
    throw new ShapeError(
      "targetRanks",
      `${targets.length} targets for scores ${shapeString(scores.shape)} (want one per row)`,
    );
  }
  for (let i = 0; i < rows; i++) {
    if (!(targets[i] >= 0 && targets[i] < cols)) {
      throw new RangeError(`targetRanks: target ${targets[i]} at row ${i} is outside [0, ${cols})`);
    }
  }
  const e = scores.engine;
  const ranks = e.empty([rows], "i32", "target ranks");
  if (rows === 0) return ranks;
  e.tidy(() => {
    const t = e.tensor(targets, [rows], "i32", "rank targets");
    for (const w of rowWindows(e, rows, cols * 4)) {
      for (let col0 = 0; col0 < cols; col0 += width) {
        RANK_KERNEL.dispatch(e.gpu, {
          entry: "target_rank",
          params: { rows: w.rows, cols, row0: w.row, col0, width },
          buffers: {
            scores: { alloc: scores.storage, offset: w.offset, size: w.size },
            targets: t.storage,
            ranks: ranks.storage,
          },
          workgroups: groupsFor(e, w.rows, 1),
        });
      }
    }
  });
  return ranks;
}

/**
 * i32 [U, k]: each row's k highest-scoring item ids, by score descending, equal scores by
 * ascending id. Masked items (-Infinity) tie with each other, so a row with fewer than k unmasked
 * items ends with masked ids in ascending order (column 0 first among them). When the catalogue
 * has fewer than k columns, the ids past the last column are -1.
 */
export function topK(scores: Tensor, k: number): Tensor {
  scoreShape("topK", scores);
  const width = segmentWidth(scores, TOP_K_SEGMENT);
  // A row of at most 2k items is one segment whatever the width.
  return topKInSegments(scores, k, Math.max(width, 2 * Math.min(k, MAX_TOP_K)));
}

/**
 * topK over column segments of at most `width` items (≥ 2k): one workgroup per row and segment
 * finds the segment's top k by (score desc, id asc), with its ids offset to the segment's start;
 * the rows' candidates, laid out by segment, are ranked again by topK (recursively in segments of
 * `width`), and the picked positions map back to ids. Equal scores stay in id order: within a
 * segment candidates are sorted by id, and a lower segment holds lower ids, so the lower position
 * is the lower id. A row of at most `width` items is one segment: the single-pass kernel. topK
 * takes whole rows, or TOP_K_SEGMENT on a software adapter; tests take narrow segments.
 */
export function topKInSegments(scores: Tensor, k: number, width: number): Tensor {
  const [rows, cols] = scoreShape("topK", scores);
  if (!Number.isInteger(k) || k < 1 || k > MAX_TOP_K) {
    throw new RangeError(`topK: k = ${k} is not an integer in [1, ${MAX_TOP_K}]`);
  }
  // Every segment but the last then has k candidates, and each merge round shrinks the row.
  checkWidth("topK", width, 2 * k);
  const e = scores.engine;
  const out = e.empty([rows, k], "i32", "top k ids");
  if (rows === 0) return out;
  const segs = Math.ceil(cols / width);
  // Candidates per row: k of each segment, fewer of a last segment narrower than k.
  const m = (segs - 1) * k + Math.min(k, cols - (segs - 1) * width);
  for (const w of topKWindows(scores, k)) {
    const bound: Binding = { alloc: scores.storage, offset: w.offset, size: w.size };
    const outBound: Binding = { alloc: out.storage, offset: w.outOffset, size: w.outSize };
    if (segs === 1) {
      TOP_K_KERNEL.dispatch(e.gpu, {
        entry: "topk",
        params: { rows: w.rows, cols, k, out_shift: w.outShift, width: cols, segs, out_stride: k },
        buffers: { scores: bound, out: outBound },
        workgroups: groupsFor(e, w.rows, 1),
      });
      continue;
    }
    // The window's candidates fit a binding: m ≤ cols, and the window's scores fit one.
    e.tidy(() => {
      const ids = e.empty([w.rows, m], "i32", "top k segment ids");
      TOP_K_KERNEL.dispatch(e.gpu, {
        entry: "topk_segments",
        params: { rows: w.rows, cols, k, out_shift: 0, width, segs, out_stride: m },
        buffers: { scores: bound, out: ids.storage },
        workgroups: groupsFor(e, w.rows * segs, 1),
      });
      const candidates = e.empty([w.rows, m], "f32", "top k segment scores");
      gatherRows(e, w.rows, m, { src: bound, srcCols: cols, idx: ids, out: candidates.storage });
      const picked = topKInSegments(candidates, k, width);
      gatherRows(
        e,
        w.rows,
        k,
        { src: ids.storage, srcCols: m, idx: picked, out: outBound },
        w.outShift,
      );
    });
  }
  return out;
}

/** out[r, j] = src[r, idx[r, j]] over `rows` rows of `cols` indices, as raw 32-bit words. */
function gatherRows(
  e: Engine,
  rows: number,
  cols: number,
  b: { src: Binding; srcCols: number; idx: Tensor; out: Binding },
  outShift = 0,
): void {
  TOP_K_GATHER_KERNEL.dispatch(e.gpu, {
    entry: "gather",
    params: { rows, cols, src_cols: b.srcCols, out_shift: outShift },
    buffers: { src: b.src, idx: b.idx.storage, out: b.out },
    workgroups: groupsFor(e, rows * cols),
  });
}

interface TopKWindow extends RowWindow {
  /** The output rows' binding: from an aligned offset, `outShift` elements before its first row. */
  outOffset: number;
  outSize: number;
  outShift: number;
}

/**
 * Row windows of the scores (rowWindows), split further where the rows' [rows, k] output would not
 * fit one binding (k > cols, or a test engine with tiny bindings). Sub-windows keep whole
 * multiples of the rows that realign the score offsets, so every score binding stays aligned.
 */
function topKWindows(scores: Tensor, k: number): TopKWindow[] {
  const e = scores.engine;
  const [rows, cols] = scores.shape;
  const { maxStorageBufferBindingSize: maxBind, minStorageBufferOffsetAlignment: align } =
    e.gpu.limits;
  const outRow = k * 4;
  const rowsPerAlign = align / gcd(align, cols * 4);
  const out: TopKWindow[] = [];
  for (const w of rowWindows(e, rows, cols * 4)) {
    let step = w.rows;
    // An output window can start up to align - 4 bytes before its first row.
    if (w.rows * outRow + align > maxBind) {
      step = Math.floor((maxBind - align) / outRow);
      step -= step % rowsPerAlign;
      if (step <= 0) throw new Error(`topK: ${k} ids per row do not fit one storage binding`);
    }
    for (let row = w.row; row < w.row + w.rows; row += step) {
      const n = Math.min(step, w.row + w.rows - row);
      const start = row * outRow;
      const outOffset = start - (start % align);
      out.push({
        row,
        rows: n,
        offset: w.offset + (row - w.row) * cols * 4,
        size: n === w.rows ? w.size : n * cols * 4,
        outOffset,
        outSize: start + n * outRow - outOffset,
        outShift: (start - outOffset) / 4,
      });
    }
  }
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function scoreShape(op: string, scores: Tensor): [number, number] {
  scores.assertAlive(op);
  assertDType(op, scores, "f32");
  if (scores.rank !== 2 || scores.shape[1] < 1) {
    throw new ShapeError(op, `scores ${shapeString(scores.shape)} are not [users, items + 1]`);
  }
  return [scores.shape[0], scores.shape[1]];
}

function checkCsr(offsets: Int32Array, items: Int32Array, rows: number, cols: number): void {
  if (offsets.length !== rows + 1 || offsets[0] !== 0 || offsets[rows] !== items.length) {
    throw new ShapeError(
      "maskScores",
      `exclusion offsets must have ${rows + 1} entries from 0 to ${items.length} ` +
        `(got ${offsets.length}, from ${offsets[0]} to ${offsets[offsets.length - 1]})`,
    );
  }
  for (let u = 0; u < rows; u++) {
    if (offsets[u + 1] < offsets[u]) {
      throw new ShapeError("maskScores", `exclusion offsets decrease at row ${u}`);
    }
  }
  for (let i = 0; i < items.length; i++) {
    if (!(items[i] >= 0 && items[i] < cols)) {
      throw new RangeError(`maskScores: excluded item ${items[i]} is outside [0, ${cols})`);
    }
  }
}
