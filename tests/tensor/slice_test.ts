import assert from "node:assert/strict";
import { concat, slice } from "../../src/tensor/ops/slice.ts";
import "../../src/tensor/ops/mod.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Elements before and after `axis`: the tensor as [outer, shape[axis], inner]. */
function around(shape: number[], axis: number): [number, number] {
  return [numel(shape.slice(0, axis)), numel(shape.slice(axis + 1))];
}

function sliceRef(x: ArrayLike<number>, shape: number[], axis: number, start: number, end: number) {
  const [outer, inner] = around(shape, axis);
  const out = new Float64Array(outer * (end - start) * inner);
  let i = 0;
  for (let o = 0; o < outer; o++) {
    for (let a = start; a < end; a++) {
      for (let k = 0; k < inner; k++) out[i++] = x[(o * shape[axis] + a) * inner + k];
    }
  }
  return out;
}

function concatRef(xs: Float64Array[], shapes: number[][], axis: number): Float64Array {
  const [outer, inner] = around(shapes[0], axis);
  const out = new Float64Array(xs.reduce((n, x) => n + x.length, 0));
  let i = 0;
  for (let o = 0; o < outer; o++) {
    xs.forEach((x, k) => {
      const run = shapes[k][axis] * inner;
      for (let j = 0; j < run; j++) out[i++] = x[o * run + j];
    });
  }
  return out;
}

const slices: [number[], number, number, number][] = [
  [[1], 0, 0, 1],
  [[7, 13], 1, 2, 11],
  [[7, 13], -1, 12, 13],
  [[7, 13], 0, 3, 7],
  [[3, 5, 17], 1, 1, 4],
  [[3, 5, 17], 2, 16, 17],
  [[3, 5, 17], 0, 1, 1],
  [[40, 3], 1, 1, 2],
  [[20, 7, 5], 1, 2, 7],
  // Runs, rows and offsets in multiples of 4 over more than 16 rows: the vec4 kernel.
  [[40, 12], 1, 4, 12],
  [[20, 6, 8], 1, 5, 6],
];

for (const [shape, axis, start, end] of slices) {
  const name = `slice ${shape.join("x")} axis ${axis} [${start}, ${end})`;
  gpuTest(`${name} matches float64 and finite differences`, async (e) => {
    const d = axis < 0 ? axis + shape.length : axis;
    await checkOp(e, {
      name,
      inputs: [{ data: randomArray(numel(shape), numel(shape)), shape, grad: true }],
      gpu: ([x]) => slice(x, axis, start, end),
      ref: ([x]) => sliceRef(x, shape, d, start, end),
    });
  });
}

const concats: [number[][], number][] = [
  [[[2, 3], [2, 5], [2, 1]], 1],
  [[[1, 4], [3, 4]], 0],
  [[[40, 2], [40, 3], [40, 1]], -1],
  [[[3, 2, 17], [3, 1, 17], [3, 4, 17]], 1],
  [[[5], [1], [0], [7]], 0],
  [[[17, 3, 2], [17, 3, 5]], 2],
  [[[33, 16], [33, 16]], 1],
  [[[40, 4], [40, 8], [40, 3]], 1],
];

for (const [shapes, axis] of concats) {
  const name = `concat ${shapes.map((s) => s.join("x")).join(" + ")} axis ${axis}`;
  gpuTest(`${name} matches float64 and finite differences`, async (e) => {
    const d = axis < 0 ? axis + shapes[0].length : axis;
    await checkOp(e, {
      name,
      inputs: shapes.map((shape, k) => ({
        data: randomArray(numel(shape), k + 1),
        shape,
        grad: k !== 1,
      })),
      gpu: (ts) => concat(ts, axis),
      ref: (xs) => concatRef(xs, shapes, d),
    });
  });
}

gpuTest("slice and concat keep integer dtypes exactly", async (e) => {
  const ids = e.tensor(new Int32Array([1, -2, 3, 2147483647, -2147483648, 6]), [2, 3]);
  const tail = slice(ids, 1, 1, 3);
  assert.equal(tail.dtype, "i32");
  assert.deepEqual([...(await tail.read())], [-2, 3, -2147483648, 6]);
  const both = concat([ids, tail], 1);
  assert.deepEqual([...(await both.read())], [
    1,
    -2,
    3,
    -2,
    3,
    2147483647,
    -2147483648,
    6,
    -2147483648,
    6,
  ]);
});

smallBindingTest("slice and concat over more rows than one binding holds", async (e) => {
  const rows = Math.ceil((3 * SMALL_BINDING_BYTES) / 36) + 11;
  const shape = [rows, 9];
  const data = randomArray(rows * 9, 3);
  await checkOp(e, {
    name: "windowed slice",
    inputs: [{ data, shape, grad: true }],
    gpu: ([x]) => slice(x, 1, 2, 7),
    ref: ([x]) => sliceRef(x, shape, 1, 2, 7),
  });
  const other = [rows, 4];
  await checkOp(e, {
    name: "windowed concat",
    inputs: [
      { data, shape, grad: true },
      { data: randomArray(rows * 4, 4), shape: other, grad: true },
    ],
    gpu: (ts) => concat(ts, 1),
    ref: (xs) => concatRef(xs, [shape, other], 1),
  });
  // Rows of 12 and 4 floats: the vec4 kernel, window by window.
  const wide = [rows, 12];
  const wideData = randomArray(rows * 12, 5);
  await checkOp(e, {
    name: "windowed vec4 slice",
    inputs: [{ data: wideData, shape: wide, grad: true }],
    gpu: ([x]) => slice(x, 1, 4, 8),
    ref: ([x]) => sliceRef(x, wide, 1, 4, 8),
  });
  await checkOp(e, {
    name: "windowed vec4 concat",
    inputs: [
      { data: wideData, shape: wide, grad: true },
      { data: randomArray(rows * 4, 6), shape: other, grad: true },
    ],
    gpu: (ts) => concat(ts, 1),
    ref: (xs) => concatRef(xs, [wide, other], 1),
  });
});

gpuTest("slice and concat name the shapes they refuse", (e) => {
  const x = e.tensor(new Float32Array(6), [2, 3]);
  const y = e.tensor(new Float32Array(4), [2, 2]);
  assert.throws(() => slice(x, 2, 0, 1), ShapeError);
  assert.throws(
    () => slice(x, 1, 2, 4),
    (err: Error) => err instanceof ShapeError && err.message.includes("[2, 3]"),
  );
  assert.throws(() => slice(x, 1, 2, 1), ShapeError);
  assert.throws(
    () => concat([x, y], 0),
    (err: Error) =>
      err instanceof ShapeError && err.message.includes("[2, 2]") && err.message.includes("[2, 3]"),
  );
  assert.throws(() => concat([], 0), ShapeError);
  assert.throws(() => concat([x, e.tensor(new Int32Array(6), [2, 3])], 0), ShapeError);
});
