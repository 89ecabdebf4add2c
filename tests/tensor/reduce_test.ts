import assert from "node:assert/strict";
import { LOOP_BUDGET } from "../../src/gpu/device.ts";
import { softwarePieces } from "../../src/tensor/kernel.ts";
import { columnChunks, columnSums, finishPasses, mean, sum } from "../../src/tensor/ops/reduce.ts";
import "../../src/tensor/ops/mod.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

/** Sums of consecutive groups of `cols` values, in float64, scaled. */
function rowSums(x: ArrayLike<number>, cols: number, scale = 1): Float64Array {
  const out = new Float64Array(x.length / cols);
  for (let i = 0; i < x.length; i++) out[Math.floor(i / cols)] += x[i];
  return out.map((v) => v * scale);
}

function colSums(x: ArrayLike<number>, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let i = 0; i < x.length; i++) out[i % cols] += x[i];
  return out;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

for (const shape of [[1], [2], [7, 13], [3, 5, 17], [4097], [3, 4099]]) {
  const n = numel(shape);
  for (const [name, op, scale] of [["sum", sum, 1], ["mean", mean, 1 / n]] as const) {
    gpuTest(
      `${name} of all of ${shape.join("x")} matches float64 and finite differences`,
      async (e) => {
        await checkOp(e, {
          name,
          inputs: [{ data: randomArray(n, n), shape, grad: true }],
          gpu: ([x]) => op(x),
          ref: ([x]) => rowSums(x, n, scale),
        });
      },
    );
  }
}

for (const shape of [[1], [1, 1], [13, 1], [7, 13], [3, 5, 17], [2, 4099], [3, 70001], [300, 2]]) {
  const n = numel(shape);
  const cols = shape[shape.length - 1];
  for (const [name, op, scale] of [["sum", sum, 1], ["mean", mean, 1 / cols]] as const) {
    gpuTest(
      `${name} over the last axis of ${shape.join("x")} matches float64 and FD`,
      async (e) => {
        await checkOp(e, {
          name,
          inputs: [{ data: randomArray(n, n + 1), shape, grad: true }],
          gpu: ([x]) => {
            const y = op(x, -1);
            const want = shape.length > 1 ? shape.slice(0, -1) : [1];
            assert.deepEqual(y.shape, want);
            return y;
          },
          ref: ([x]) => rowSums(x, cols, scale),
        });
      },
    );
  }
}

for (const shape of [[1], [1, 1], [7, 13], [300, 5], [3, 5, 17], [1000, 3], [2, 70]]) {
  gpuTest(`columnSums of ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    const n = numel(shape);
    const cols = shape[shape.length - 1];
    await checkOp(e, {
      name: "columnSums",
      inputs: [{ data: randomArray(n, n + 2), shape, grad: true }],
      gpu: ([x]) => columnSums(x),
      ref: ([x]) => colSums(x, cols),
    });
  });
}

gpuTest("sum of 10M elements is within float32 error of float64 and bit-identical", async (e) => {
  const n = 19 * 526_317;
  const data = randomArray(n, 10);
  let exact = 0, magnitude = 0;
  for (const v of data) {
    exact += v;
    magnitude += Math.abs(v);
  }
  const x = e.tensor(data, [n]);
  const first = await sum(x).readF32();
  const second = await sum(x).readF32();
  assert.ok(Object.is(first[0], second[0]), `two runs: ${first[0]} and ${second[0]}`);
  assert.ok(Math.abs(first[0] - exact) <= 1e-6 * magnitude, `sum ${first[0]}, float64 ${exact}`);
  const rows = await mean(e.alias(x, [19, 526_317]), -1).readF32();
  const again = await mean(e.alias(x, [19, 526_317]), -1).readF32();
  assert.deepEqual(rows, again);
  assertClose(rows, rowSums(data, 526_317, 1 / 526_317), "row means", 0, 2e-6);
});

gpuTest("sum of a tensor larger than one storage binding", async (e) => {
  // Past 128 MiB: one binding on llvmpipe and WebGPU's default limit.
  const n = Math.min(e.gpu.limits.maxStorageBufferBindingSize, 2 ** 27) / 4 + 12_345;
  const data = randomArray(n, 11, 0, 1);
  const exact = data.reduce((s, v) => s + v, 0);
  const got = await sum(e.tensor(data, [n])).readF32();
  assert.ok(Math.abs(got[0] - exact) <= 1e-6 * exact, `sum ${got[0]}, float64 ${exact}`);
});

smallBindingTest("last-axis sums, means and column sums over more than one binding", async (e) => {
  const cols = 37;
  const rows = Math.ceil((3 * SMALL_BINDING_BYTES) / (cols * 4)) + 5;
  const shape = [rows, cols];
  const data = randomArray(rows * cols, 12);
  await checkOp(e, {
    name: "windowed sum",
    maxFdElements: 100,
    inputs: [{ data, shape, grad: true }],
    gpu: ([x]) => sum(x, -1),
    ref: ([x]) => rowSums(x, cols),
  });
  await checkOp(e, {
    name: "windowed full mean",
    maxFdElements: 100,
    inputs: [{ data, shape, grad: true }],
    gpu: ([x]) => mean(x),
    ref: ([x]) => rowSums(x, rows * cols, 1 / (rows * cols)),
  });
  await checkOp(e, {
    name: "windowed columnSums",
    maxFdElements: 100,
    inputs: [{ data, shape, grad: true }],
    gpu: ([x]) => columnSums(x),
    ref: ([x]) => colSums(x, cols),
  });
});

gpuTest("reductions refuse other axes and averaging nothing", (e) => {
  const x = e.tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => sum(x, 0 as -1), ShapeError);
  assert.throws(() => mean(e.tensor(new Float32Array(0), [2, 0]), -1), ShapeError);
});

gpuTest("sum of an empty axis is zero", async (e) => {
  const got = await sum(e.tensor(new Float32Array(0), [3, 0]), -1).readF32();
  assert.deepEqual([...got], [0, 0, 0]);
});

gpuTest("column chunks and finish passes stay within a software adapter's loop budget", (e) => {
  const gpu = e.gpu as { isSoftware: boolean };
  const saved = gpu.isSoftware;
  try {
    gpu.isSoftware = true;
    const rows = 2 ** 31;
    const plan = columnChunks(e, rows, 1);
    assert.equal(plan.chunkRows, LOOP_BUDGET);
    assert.equal(plan.chunks, rows / LOOP_BUDGET);
    assert.equal(
      columnChunks(e, 1000, 3).chunkRows,
      Math.ceil(1000 / Math.min(32, softwarePieces())),
    );
    // RMSNorm's dgamma of 1.1M rows: a partial per 16 rows, summed in two passes.
    assert.deepEqual(finishPasses(e, 68_750), [22_917, 3]);
    assert.deepEqual(finishPasses(e, LOOP_BUDGET), [LOOP_BUDGET]);
    assert.deepEqual(finishPasses(e, LOOP_BUDGET + 1), [16_385, 2]);
    assert.deepEqual(finishPasses(e, 2 ** 31), [32_768, 32_768, 2]);
    gpu.isSoftware = false;
    assert.deepEqual(finishPasses(e, 68_750), [68_750]);
    assert.equal(columnChunks(e, rows, 1).chunks, 1024);
  } finally {
    gpu.isSoftware = saved;
  }
});

// On llvmpipe 16 chunks a core of more than ~65,535 rows each: [2.2M, 1] summed to 1,048,123.7
// (want 1,099,607.5) on 2 cores before chunks were capped at LOOP_BUDGET rows.
gpuTest("columnSums past 65,535 rows a chunk matches float64", async (e) => {
  const rows = 66_000 * softwarePieces() + 17;
  const cols = 2;
  // Small whole numbers: every float32 partial sum is exact.
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 5;
  const got = await columnSums(e.tensor(data, [rows, cols])).readF32();
  assert.deepEqual([...got], [...colSums(data, cols)]);
});
