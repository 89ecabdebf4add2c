/**
 * slice and concat along any axis. Both view tensors as [outer, axis, inner] and move one
 * contiguous run of elements per outer row: few rows become buffer copies, many rows a kernel.
 */
import shader from "../../../shaders/concat_slice.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { declareKernel } from "../kernel.ts";
import { numel, ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { chunkRowsFor, columnChunkGrid } from "./windowed.ts";

const COPY_KERNEL = declareKernel({
  name: "slice copy",
  source: shader,
  params: {
    rows: "u32",
    run: "u32",
    chunk_rows: "u32",
    src_row: "u32",
    src_off: "u32",
    dst_row: "u32",
    dst_off: "u32",
  },
  buffers: ["src", "dst"],
});

/** Up to this many runs are copied with copyBufferToBuffer (no kernel, no binding limit). */
const COPY_RUNS_MAX = 16;

/** For each of `outer` rows: run elements from src[o·srcRow + srcOff] to dst[o·dstRow + dstOff]. */
interface BlockCopy {
  outer: number;
  run: number;
  srcRow: number;
  srcOff: number;
  dstRow: number;
  dstOff: number;
}

function copyBlock(src: Tensor, dst: Tensor, c: BlockCopy): void {
  if (c.outer === 0 || c.run === 0) return;
  const e = src.engine;
  const contiguous = c.run === c.srcRow && c.run === c.dstRow;
  if (contiguous) {
    e.gpu.copy(src.storage, c.srcOff * 4, dst.storage, c.dstOff * 4, c.outer * c.run * 4);
    return;
  }
  const windows = c.outer > COPY_RUNS_MAX
    ? pairedWindows(e, c.outer, c.srcRow * 4, c.dstRow * 4)
    : [];
  if (windows.length === 0) {
    for (let o = 0; o < c.outer; o++) {
      const from = (o * c.srcRow + c.srcOff) * 4;
      e.gpu.copy(src.storage, from, dst.storage, (o * c.dstRow + c.dstOff) * 4, c.run * 4);
    }
    return;
  }
  const vec4 = [c.run, c.srcRow, c.srcOff, c.dstRow, c.dstOff].every((v) => v % 4 === 0);
  const width = vec4 ? 4 : 1;
  for (const w of windows) {
    const chunkRows = chunkRowsFor(e, w.rows);
    COPY_KERNEL.dispatch(e.gpu, {
      entry: vec4 ? "main4" : "main",
      params: {
        rows: w.rows,
        run: c.run / width,
        chunk_rows: chunkRows,
        src_row: c.srcRow / width,
        src_off: c.srcOff / width,
        dst_row: c.dstRow / width,
        dst_off: c.dstOff / width,
      },
      buffers: {
        src: { alloc: src.storage, offset: w.row * c.srcRow * 4, size: w.rows * c.srcRow * 4 },
        dst: { alloc: dst.storage, offset: w.row * c.dstRow * 4, size: w.rows * c.dstRow * 4 },
      },
      workgroups: columnChunkGrid(e, c.run / width, w.rows, chunkRows),
    });
  }
}

/**
 * Windows of whole rows under the binding limit whose offsets are aligned in both tensors; empty
 * when one row alone is over the limit.
 */
function pairedWindows(e: Engine, rows: number, srcRowBytes: number, dstRowBytes: number) {
  const { maxStorageBufferBindingSize: maxBind, minStorageBufferOffsetAlignment: align } =
    e.gpu.limits;
  const rowsPerAlign = lcm(align / gcd(align, srcRowBytes), align / gcd(align, dstRowBytes));
  let step = Math.floor(maxBind / Math.max(srcRowBytes, dstRowBytes));
  if (step < rows) step -= step % rowsPerAlign;
  const out: { row: number; rows: number }[] = [];
  if (step <= 0) return out;
  for (let row = 0; row < rows; row += step) out.push({ row, rows: Math.min(step, rows - row) });
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}

function normaliseAxis(op: string, shape: readonly number[], axis: number): number {
  const a = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(a) || a < 0 || a >= shape.length) {
    throw new ShapeError(op, `axis ${axis} is out of range for ${shapeString(shape)}`);
  }
  return a;
}

/** Elements before and after `axis`: the tensor as [outer, shape[axis], inner]. */
function around(shape: readonly number[], axis: number): [number, number] {
  return [numel(shape.slice(0, axis)), numel(shape.slice(axis + 1))];
}

/** x[..., start:end, ...] along `axis` (negative counts from the end). Backward pads with zeros. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normaliseAxis("slice", x.shape, axis);
  const size = x.shape[a];
  if (
    !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > size
  ) {
    throw new ShapeError(
      "slice",
      `range [${start}, ${end}) is not within axis ${a} of ${shapeString(x.shape)}`,
    );
  }
  const e = x.engine;
  const [outer, inner] = around(x.shape, a);
  const count = end - start;
  const shape = x.shape.map((s, i) => (i === a ? count : s));
  const out = e.empty(shape, x.dtype, "slice");
  const toSlice = {
    outer,
    run: count * inner,
    srcRow: size * inner,
    srcOff: start * inner,
    dstRow: count * inner,
    dstOff: 0,
  };
  copyBlock(x, out, toSlice);
  return e.record({
    op: "slice",
    inputs: [x],
    output: out,
    backward: (g) => {
      const dx = e.zeros(x.shape, "f32", "slice backward");
      copyBlock(g, dx, {
        ...toSlice,
        srcRow: toSlice.dstRow,
        srcOff: 0,
        dstRow: toSlice.srcRow,
        dstOff: toSlice.srcOff,
      });
      return [dx];
    },
  });
}

function checkConcat(ts: Tensor[], axis: number): number {
  if (ts.length === 0) throw new ShapeError("concat", "needs at least one tensor");
  const first = ts[0];
  const a = normaliseAxis("concat", first.shape, axis);
  for (const t of ts) {
    const fits = t.dtype === first.dtype && t.rank === first.rank &&
      t.shape.every((s, i) => i === a || s === first.shape[i]);
    if (!fits) {
      throw new ShapeError(
        "concat",
        `${t.dtype}${shapeString(t.shape)} does not match ${first.dtype}` +
          `${shapeString(first.shape)} outside axis ${a}`,
      );
    }
  }
  return a;
}

/** Joins tensors along `axis` (their other axes must agree). Backward slices the gradient. */
export function concat(ts: Tensor[], axis: number): Tensor {
  const a = checkConcat(ts, axis);
  const e = ts[0].engine;
  const [outer, inner] = around(ts[0].shape, a);
  const sizes = ts.map((t) => t.shape[a]);
  const total = sizes.reduce((s, n) => s + n, 0);
  const out = e.empty(ts[0].shape.map((s, i) => (i === a ? total : s)), ts[0].dtype, "concat");
  const starts: number[] = [];
  let at = 0;
  ts.forEach((t, k) => {
    starts.push(at);
    const run = sizes[k] * inner;
    copyBlock(t, out, {
      outer,
      run,
      srcRow: run,
      srcOff: 0,
      dstRow: total * inner,
      dstOff: at * inner,
    });
    at += sizes[k];
  });
  return e.record({
    op: "concat",
    inputs: ts,
    output: out,
    backward: (g) =>
      ts.map((t, k) => (t.requiresGrad ? slice(g, a, starts[k], starts[k] + sizes[k]) : null)),
  });
}
