/**
 * Materialised softmax cross-entropy: the logits [rows, cols] exist in memory. It is the reference
 * that every fused loss is compared with, and the plain CE of small catalogues.
 */
import shader from "../../shaders/cross_entropy.wgsl" with { type: "text" };
import type { Tensor } from "../tensor/tensor.ts";
import { ShapeError, shapeString } from "../tensor/tensor.ts";
import { assertDType, groupsFor, params, rowWindows } from "../tensor/kernel.ts";

export interface CrossEntropyOptions {
  /** Rows whose target equals this id contribute no loss and no gradient (padding). */
  ignoreIndex?: number;
  /** Columns from this one on are padding of the row stride: outside the softmax, zero gradient. */
  validCols?: number;
}

/**
 * Per-row losses [rows]: LSE(logits[r]) − logits[r, targets[r]], 0 for ignored rows.
 * Targets are i32 [rows] in [0, cols) or the ignore index.
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
  checkTargets(targets, valid, ignore);
  const e = logits.engine;
  const lse = e.empty([rows], "f32", "ce lse");
  const loss = e.empty([rows], "f32", "ce loss");
  const windows = rowWindows(e, rows, cols * 4);
  for (const w of windows) {
    e.gpu.dispatch({
      kernel: "cross entropy forward",
      shader,
      entry: "forward",
      params: params(w.rows, cols, { i32: ignore }, w.row, valid),
      bindings: [
        { alloc: logits.storage, offset: w.offset, size: w.size },
        targets.storage,
        lse.storage,
        loss.storage,
      ],
      workgroups: groupsFor(e, w.rows, 1),
    });
  }
  return e.record({
    op: "crossEntropy",
    inputs: [logits],
    output: loss,
    backward: (dloss) => {
      const dlogits = e.empty(logits.shape, "f32", "ce dlogits");
      for (const w of windows) {
        e.gpu.dispatch({
          kernel: "cross entropy backward",
          shader,
          entry: "backward",
          params: params(w.rows, cols, { i32: ignore }, w.row, valid),
          bindings: [
            { alloc: logits.storage, offset: w.offset, size: w.size },
            targets.storage,
            lse.storage,
            null,
            dloss.storage,
            { alloc: dlogits.storage, offset: w.offset, size: w.size },
          ],
          workgroups: groupsFor(e, w.rows * cols),
        });
      }
      return [dlogits];
    },
  });
}

function checkTargets(targets: Tensor, cols: number, ignore: number): void {
  if (!targets.host) return;
  const t = targets.host;
  for (let i = 0; i < t.length; i++) {
    if (t[i] !== ignore && (t[i] < 0 || t[i] >= cols)) {
      throw new RangeError(`crossEntropy: target ${t[i]} at row ${i} is outside [0, ${cols})`);
    }
  }
}
