import assert from "node:assert/strict";
import { transpose, type TransposeVariant } from "../../src/tensor/ops/transpose.ts";
import "../../src/tensor/ops/mod.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { assertClose, checkOp, EXACT, gpuTest, randomArray } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

function transposeRef(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  }
  return out;
}

/** Awkward shapes: single rows and columns, sizes around the 16 × 16 tile, long thin matrices. */
const SHAPES: [number, number][] = [[1, 1], [1, 7], [9, 1], [15, 17], [16, 16], [33, 5], [3, 130]];

const VARIANTS: TransposeVariant[] = ["tiled", "direct"];

for (const [rows, cols] of SHAPES) {
  for (const variant of VARIANTS) {
    gpuTest(`transpose ${variant} [${rows}, ${cols}] forward and backward`, async (e) => {
      await checkOp(e, {
        name: `transpose ${rows}×${cols}`,
        inputs: [{
          data: randomArray(rows * cols, rows * 31 + cols),
          shape: [rows, cols],
          grad: true,
        }],
        ref: ([x]) => transposeRef(x, rows, cols),
        gpu: ([x]) => transpose(x, variant),
        ...EXACT,
      });
    });
  }
}

async function checkExact(
  e: Engine,
  rows: number,
  cols: number,
  variants = VARIANTS,
): Promise<void> {
  const data = randomArray(rows * cols, rows + cols);
  for (const variant of variants) {
    await e.tidyAsync(async () => {
      const y = transpose(e.tensor(data, [rows, cols]), variant);
      assert.deepEqual(y.shape, [cols, rows]);
      assertClose(await y.read(), transposeRef(data, rows, cols), `transpose ${variant}`, 0, 0);
    });
  }
}

// Both x and xᵀ span several binding windows, in either direction and with ragged last windows.
for (const [rows, cols] of [[300, 70], [70, 301], [1000, 17]] as const) {
  smallBindingTest(
    `transpose [${rows}, ${cols}] over ${SMALL_BINDING_BYTES}-byte bindings`,
    (e) => {
      assert.ok(rows * cols * 4 > SMALL_BINDING_BYTES);
      return checkExact(e, rows, cols);
    },
  );
}

// The tiled grid is a workgroup per 16 × 16 tile in each dimension; the direct one folds its count.
gpuTest("tiled transpose splits a block wider than the workgroups of one dispatch", async (e) => {
  const limits = e.gpu.limits;
  const saved = limits.maxComputeWorkgroupsPerDimension;
  limits.maxComputeWorkgroupsPerDimension = 2;
  try {
    await checkExact(e, 70, 45, ["tiled"]);
  } finally {
    limits.maxComputeWorkgroupsPerDimension = saved;
  }
});

gpuTest("transpose refuses anything but a 2-D f32 matrix, naming the shape", (e) => {
  e.tidy(() => {
    assert.throws(
      () => transpose(e.tensor(new Float32Array(8), [2, 2, 2])),
      (err: Error) => err instanceof ShapeError && /\[2, 2, 2\]/.test(err.message),
    );
  });
});

gpuTest("transpose of an empty matrix is empty", (e) => {
  e.tidy(() => {
    const y = transpose(e.tensor(new Float32Array(0), [0, 3]));
    assert.deepEqual(y.shape, [3, 0]);
  });
});
