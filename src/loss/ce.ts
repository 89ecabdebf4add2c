/**
 * Materialised softmax cross-entropy: the logits [rows, cols] exist in memory. It is the reference
 * that every fused loss is compared with, and the plain CE of small catalogues.
 */
import shader from "../../shaders/cross_entropy.wgsl" with { type: "text" };
import type { Tensor } from "../tensor/tensor.ts";
import { ShapeError, shapeString } from "../tensor/tensor.ts";
import { assertDType, declareKernel, groupsFor, rowWindows } from "../tensor/kernel.ts";
import { VariantChoice } from "../tensor/variants.ts";
import { chunkRowsFor, columnChunkGrid } from "../tensor/ops/windowed.ts";
import type { Engine } from "../tensor/engine.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

const CROSS_ENTROPY_KERNEL = declareKernel({
  name: "cross entropy",
  source: shader,
  params: {
    rows: "u32",
    cols: "u32",
    ignore: "i32",
    row0: "u32",
    first_valid: "u32",
    valid: "u32",
    chunk_rows: "u32",
    block_cols: "u32",
    blocks: "u32",
  },
  buffers: [
    "logits",
    "targets",
    "lse",
    "loss",
    "dloss",
    "dlogits",
    "logits4",
    "dlogits4",
    "block_stats",
  ],
});

/**
 * How the forward pass spreads a row: a workgroup per row with tree reductions in workgroup
 * memory (a GPU), or one invocation per row (llvmpipe, where barriers are costly and a row of a
 * small vocabulary is a short loop). Rows too long for one invocation's loop budget always take
 * the workgroup.
 */
export const CROSS_ENTROPY_CHOICE = new VariantChoice(
  "cross entropy",
  [{ name: "workgroup per row" }, { name: "invocation per row" }],
  { software: "invocation per row", gpu: "workgroup per row" },
);
/**
 * Loop trips over a row (columns, or vec4s of them) one invocation may walk twice (the max, then
 * the sum) within llvmpipe's budget.
 */
const ROW_LOOP_COLS = 8192;
const ROWS_PER_GROUP = 64;
/** Threads of the workgroup per row ("forward", "forward_blocks"). */
const WG = 64;

/**
 * Columns of one block of the workgroup-per-row forward: all the valid columns at once, or on a
 * software adapter blocks of at most WG · LOOP_BUDGET / 2 (1,048,576), since each thread walks
 * its block twice (the max, then the sum); llvmpipe cut a row of 2.2M columns short. Blocks of a
 * row are joined by forward_combine.
 */
export function ceBlockCols(e: Engine, validCols: number): number {
  if (!e.gpu.isSoftware) return validCols;
  return Math.min(validCols, WG * Math.floor(LOOP_BUDGET / 2));
}

export interface CrossEntropyOptions {
  /** Rows whose target equals this id contribute no loss and no gradient (padding). */
  ignoreIndex?: number;
  /**
   * Columns before this one (default 0) are outside the softmax, with a zero gradient: the
   * padding item 0 of logits against a whole item table.
   */
  firstValidCol?: number;
  /** Columns from this one on are padding of the row stride: outside the softmax, zero gradient. */
  validCols?: number;
}

/**
 * Per-row losses [rows]: LSE(logits[r, first..valid)) − logits[r, targets[r]], 0 for ignored
 * rows. Targets are i32 [rows] in [firstValidCol, validCols) or the ignore index.
 */
export function crossEntropyRows(
  logits: Tensor,
  targets: Tensor,
  opts: CrossEntropyOptions = {},
): Tensor {
  const ignore = opts.ignoreIndex ?? -1;
  assertDType("crossEntropy logits", logits, "f32");
  assertDType("crossEntropy targets", targets, "i32");
  if (logits.rank !== 2 || targets.rank !== 1 || targets.shape[0] !== logits.shape[0]) {
    throw new ShapeError(
      "crossEntropy",
      `logits ${shapeString(logits.shape)} and targets ${
        shapeString(targets.shape)
      } do not match ` +
        "(want [rows, cols] and [rows])",
    );
  }
  const [rows, cols] = logits.shape;
  const valid = opts.validCols ?? cols;
  if (!(Number.isInteger(valid) && valid >= 1 && valid <= cols)) {
    throw new RangeError(`crossEntropy: validCols ${valid} is outside [1, ${cols}]`);
  }
  const first = opts.firstValidCol ?? 0;
  if (!(Number.isInteger(first) && first >= 0 && first < valid)) {
    throw new RangeError(`crossEntropy: firstValidCol ${first} is outside [0, ${valid})`);
  }
  checkTargets(targets, first, valid, ignore);
  const e = logits.engine;
  const uniform = (w: { rows: number; row: number }) => ({
    rows: w.rows,
    cols,
    ignore,
    row0: w.row,
    first_valid: first,
    valid,
    chunk_rows: chunkRowsFor(e, w.rows),
    block_cols: 0,
    blocks: 0,
  });
  const lse = e.empty([rows], "f32", "ce lse");
  const loss = e.empty([rows], "f32", "ce loss");
  const windows = rowWindows(e, rows, cols * 4);
  // Rows of whole vec4s (a stride rounded up for vec4 matmuls): the forward per row and the
  // backward read four logits at a time.
  const vec4 = cols % 4 === 0;
  const perRow = (valid - first) / (vec4 ? 4 : 1) <= ROW_LOOP_COLS &&
    CROSS_ENTROPY_CHOICE.of(e).name === "invocation per row";
  const blockCols = ceBlockCols(e, valid - first);
  const blocks = Math.ceil((valid - first) / blockCols);
  const stats = !perRow && blocks > 1 ? e.empty([rows, blocks, 2], "f32", "ce block stats") : null;
  for (const w of windows) {
    const window = { alloc: logits.storage, offset: w.offset, size: w.size };
    if (stats) {
      const params = { ...uniform(w), block_cols: blockCols, blocks };
      const [x, y] = groupsFor(e, w.rows, 1);
      CROSS_ENTROPY_KERNEL.dispatch(e.gpu, {
        label: "cross entropy forward blocks",
        entry: "forward_blocks",
        params,
        buffers: { logits: window, block_stats: stats.storage },
        workgroups: [x, y, blocks],
      });
      CROSS_ENTROPY_KERNEL.dispatch(e.gpu, {
        label: "cross entropy forward",
        entry: "forward_combine",
        params,
        buffers: {
          logits: window,
          targets: targets.storage,
          lse: lse.storage,
          loss: loss.storage,
          block_stats: stats.storage,
        },
        workgroups: groupsFor(e, w.rows, ROWS_PER_GROUP),
      });
      continue;
    }
    CROSS_ENTROPY_KERNEL.dispatch(e.gpu, {
      label: "cross entropy forward",
      entry: perRow ? (vec4 ? "forward_rows4" : "forward_rows") : "forward",
      params: uniform(w),
      buffers: {
        ...(perRow && vec4 ? { logits4: window } : { logits: window }),
        targets: targets.storage,
        lse: lse.storage,
        loss: loss.storage,
      },
      workgroups: groupsFor(e, w.rows, perRow ? ROWS_PER_GROUP : 1),
    });
  }
  stats?.dispose();
  return e.record({
    op: "crossEntropy",
    inputs: [logits],
    output: loss,
    backward: (dloss) => {
      const dlogits = e.empty(logits.shape, "f32", "ce dlogits");
      for (const w of windows) {
        const chunkRows = chunkRowsFor(e, w.rows);
        const lw = { alloc: logits.storage, offset: w.offset, size: w.size };
        const dw = { alloc: dlogits.storage, offset: w.offset, size: w.size };
        CROSS_ENTROPY_KERNEL.dispatch(e.gpu, {
          label: "cross entropy backward",
          entry: vec4 ? "backward_columns4" : "backward_columns",
          params: uniform(w),
          buffers: {
            ...(vec4 ? { logits4: lw, dlogits4: dw } : { logits: lw, dlogits: dw }),
            targets: targets.storage,
            lse: lse.storage,
            dloss: dloss.storage,
          },
          workgroups: columnChunkGrid(e, vec4 ? cols / 4 : cols, w.rows, chunkRows),
        });
      }
      return [dlogits];
    },
  });
}

function checkTargets(targets: Tensor, first: number, valid: number, ignore: number): void {
  if (!targets.host) return;
  const t = targets.host;
  for (let i = 0; i < t.length; i++) {
    if (t[i] !== ignore && (t[i] < first || t[i] >= valid)) {
      throw new RangeError(
        `crossEntropy: target ${t[i]} at row ${i} is outside [${first}, ${valid})`,
      );
    }
  }
}
