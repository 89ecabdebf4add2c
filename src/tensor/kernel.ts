/** Helpers shared by every op: uniform packing, grids, binding windows for big tensors. */
import { grid2d } from "../gpu/gpu.ts";
import type { Engine } from "./engine.ts";
import type { Tensor } from "./tensor.ts";
import { ShapeError, shapeString } from "./tensor.ts";

/** Packs 4-byte scalars in WGSL struct order. */
export function params(...fields: (number | { f32: number } | { i32: number })[]): ArrayBuffer {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const view = new DataView(buf);
  fields.forEach((f, i) => {
    if (typeof f === "number") view.setUint32(i * 4, f >>> 0, true);
    else if ("f32" in f) view.setFloat32(i * 4, f.f32, true);
    else view.setInt32(i * 4, f.i32, true);
  });
  return buf;
}

/** Workgroups for `n` items at `perGroup` items each, folded into 2-D past the grid limit. */
export function groupsFor(engine: Engine, n: number, perGroup = 256): [number, number] {
  return grid2d(Math.ceil(n / perGroup), engine.gpu.limits.maxComputeWorkgroupsPerDimension);
}

export function assertSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) {
    throw new ShapeError(op, `shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  }
}

export function assertDType(op: string, t: Tensor, dtype: string): void {
  if (t.dtype !== dtype) {
    throw new ShapeError(op, `expects ${dtype}, got ${t.dtype} ${shapeString(t.shape)}`);
  }
}

/** A contiguous run of rows [row, row + rows) that fits one storage binding. */
export interface RowWindow {
  row: number;
  rows: number;
  offset: number;
  size: number;
}

/**
 * Splits a row-major [rows, rowBytes] buffer into windows under the binding limit whose byte
 * offsets respect the adapter's storage alignment, so a kernel can bind one window at a time.
 */
export function rowWindows(engine: Engine, rows: number, rowBytes: number): RowWindow[] {
  const { maxStorageBufferBindingSize: maxBind, minStorageBufferOffsetAlignment: align } =
    engine.gpu.limits;
  if (rows * rowBytes <= maxBind) {
    return [{ row: 0, rows, offset: 0, size: Math.max(rows * rowBytes, 4) }];
  }
  let step = Math.floor(maxBind / rowBytes);
  const rowsPerAlign = align / gcd(align, rowBytes);
  step -= step % rowsPerAlign;
  if (step <= 0) throw new Error(`a row of ${rowBytes} bytes does not fit one storage binding`);
  const out: RowWindow[] = [];
  for (let row = 0; row < rows; row += step) {
    const n = Math.min(step, rows - row);
    out.push({ row, rows: n, offset: row * rowBytes, size: n * rowBytes });
  }
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
