/**
 * The operands of a sparse product, checked once for every kernel family (untiled, GEMV, tiled):
 * the compressed one [rows', in] compressed along in, the dense one [rows'', in], and Y.
 */
import type { Engine } from "../tensor/engine.ts";
import { assertDType } from "../tensor/kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import type { NmTensor } from "./format.ts";
import { layoutParams } from "./prune.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

export interface Product {
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
export function checkOperands(
  op: string,
  nm: NmTensor,
  dense: Tensor,
  activation: boolean,
): Product {
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

/** The uniform fields every sparse product kernel shares. */
export function productParams(p: Product) {
  const { n, m, width, words, groups, kept } = layoutParams(p.nm.layout);
  return { n, m, width, words, groups, kept, cols: p.cols, in_features: p.inFeatures };
}
