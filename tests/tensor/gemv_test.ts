/**
 * The dense GEMV (one token's x·Wᵀ) in every variant against float64 on awkward shapes (one
 * output, in = 1, sizes off every block and vec4 step, and rows of whole vec4s, which the vec4
 * kernels take), its backward by finite differences, and the refusals.
 */
import assert from "node:assert/strict";
import { gemv, GEMV_CHOICE, GEMV_VARIANTS, tuneGemv } from "../../src/tensor/ops/gemv.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";

/** y[o] = Σ_k x[k]·w[o, k] in float64. */
function gemvHost(x: ArrayLike<number>, w: ArrayLike<number>, out: number, inF: number) {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < inF; k++) y[o] += x[k] * w[o * inF + k];
  }
  return y;
}

/** w [rows, cols] → [cols, rows]. */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

// [out, in]: rows of W whole vec4s for "rows" and "split" at in = 64, 8, 36; rows of Wᵀ for "cols"
// at out = 4, 132, 8 (none a whole block of outputs).
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 7],
  [5, 1],
  [3, 13],
  [67, 130],
  [258, 64],
  [4, 1],
  [1, 8],
  [132, 36],
  [8, 20],
];

gpuTest("gemv matches float64 in every variant on awkward shapes", async (e) => {
  for (const v of GEMV_VARIANTS) {
    for (const [out, inF] of SHAPES) {
      const x = randomArray(inF, out + 1);
      const w = randomArray(out * inF, inF + 2);
      const transposed = v.shape === "cols";
      const wt = transposed ? transpose(w, out, inF) : w;
      await e.tidyAsync(async () => {
        const wShape = transposed ? [inF, out] : [out, inF];
        const y = gemv(e.tensor(x, [1, inF]), e.tensor(wt, wShape), {
          variant: v.name,
          transposed,
        });
        assert.deepEqual(y.shape, [1, out]);
        assertClose(await y.read(), gemvHost(x, w, out, inF), `gemv ${v.name} ${out}×${inF}`);
      });
    }
  }
});

gpuTest(
  "gemv on W transposed sums inputs far past the loop budget's count of unrolled loops",
  async (e) => {
    // 30,000 inputs: cols wg8 r64 would count 510,000 iterations with its unrolled loops over 16
    // vec4s (or quads of floats when out is not a multiple of 4), eight times llvmpipe's limit.
    for (const out of [8, 7]) {
      const inF = 30000;
      const x = randomArray(inF, out);
      const w = randomArray(out * inF, out + 1);
      await e.tidyAsync(async () => {
        const y = gemv(e.tensor(x, [1, inF]), e.tensor(transpose(w, out, inF), [inF, out]), {
          variant: "cols wg8 r64",
          transposed: true,
        });
        assertClose(await y.read(), gemvHost(x, w, out, inF), `cols wg8 r64 ${out}×${inF}`);
      });
    }
  },
);

gpuTest("gemv keeps x's leading dimensions and carries gradients to x and W", async (e) => {
  const [out, inF] = [6, 9];
  await checkOp(e, {
    name: "gemv backward",
    inputs: [
      { data: randomArray(inF, 3), shape: [1, 1, inF], grad: true },
      { data: randomArray(out * inF, 4), shape: [out, inF], grad: true },
    ],
    gpu: ([x, w]) => gemv(x, w),
    ref: ([x, w]) => gemvHost(x, w, out, inF),
  });
  await checkOp(e, {
    name: "gemv backward, W given transposed",
    inputs: [
      { data: randomArray(inF, 5), shape: [1, inF], grad: true },
      { data: randomArray(out * inF, 6), shape: [inF, out], grad: true },
    ],
    gpu: ([x, wt]) => gemv(x, wt, { transposed: true }),
    ref: ([x, wt]) => gemvHost(x, transpose(Float32Array.from(wt), inF, out), out, inF),
  });
});

gpuTest("gemv refuses several rows and mismatched inputs; tuning picks a variant", async (e) => {
  assert.throws(() => gemv(e.zeros([2, 4]), e.zeros([3, 4])), /gemv.*one row/);
  assert.throws(() => gemv(e.zeros([1, 5]), e.zeros([3, 4])), /gemv.*one row/);
  assert.throws(() => gemv(e.zeros([1, 4]), e.zeros([3, 4]), { variant: "nope" }), /unknown GEMV/);
  assert.throws(
    () => gemv(e.zeros([1, 4]), e.zeros([3, 4]), { variant: "cols wg8 r16" }),
    /takes wt \[in, out\]/,
  );
  const tuned = await tuneGemv(e, { inFeatures: 64, repeats: 1 });
  assert.equal(
    Object.keys(tuned.times).length,
    GEMV_VARIANTS.filter((v) => v.shape !== "cols").length,
  );
  assert.equal(GEMV_CHOICE.of(e), tuned.variant);
});
