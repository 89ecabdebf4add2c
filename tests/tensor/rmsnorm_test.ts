import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { rmsNorm } from "../../src/tensor/ops/rmsnorm.ts";
import { add } from "../../src/tensor/ops/elementwise.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

const EPS = 1e-5;

function rmsNormRef([x, gamma]: Float64Array[]): Float64Array {
  const cols = gamma.length;
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let q = 0;
    for (let c = 0; c < cols; c++) q += x[r * cols + c] ** 2;
    const rstd = 1 / Math.sqrt(q / cols + EPS);
    for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] * rstd * gamma[c];
  }
  return y;
}

// Rows of 4, 8, 64 and 520 columns take the vec4 entries (one thread per row but eight for 520);
// rows of 4, 8 and 64 (and the windowed 36 below) take the *_row(s) entries. On llvmpipe those
// take chunks of rows per thread (up to 16, fewer on short inputs): 16389 rows make full chunks
// and a short last one on up to 16 cores.
const SHAPES = [
  [1, 1],
  [5, 1],
  [1, 7],
  [7, 13],
  [3, 5, 17],
  [4, 129],
  [70, 3],
  [3, 4],
  [67, 64],
  [1, 64],
  [16389, 8],
  [2, 520],
];
for (const shape of SHAPES) {
  gpuTest(`rmsNorm ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    const cols = shape[shape.length - 1];
    const n = shape.reduce((a, b) => a * b);
    await checkOp(e, {
      name: "rmsNorm",
      inputs: [
        { data: randomArray(n, n, -2, 2), shape, grad: true },
        { data: randomArray(cols, cols + 1, 0.5, 1.5), shape: [cols], grad: true },
      ],
      gpu: ([x, gamma]) => rmsNorm(x, gamma, EPS),
      ref: rmsNormRef,
      maxFdElements: 120,
    });
  });
}

// A frozen gamma leaves dx to backward_x4_row alone (on llvmpipe too), a frozen x dgamma to
// param_partials.
const FROZEN: [number[], "x" | "gamma"][] = [
  [[67, 64], "gamma"],
  [[1, 8], "gamma"],
  [[5, 7], "gamma"],
  [[67, 64], "x"],
];
for (const [shape, frozen] of FROZEN) {
  gpuTest(
    `rmsNorm ${shape.join("x")} with a frozen ${frozen} gets the other gradient`,
    async (e) => {
      const cols = shape[shape.length - 1];
      const n = shape.reduce((a, b) => a * b);
      await checkOp(e, {
        name: `rmsNorm frozen ${frozen}`,
        inputs: [
          { data: randomArray(n, n + 2, -2, 2), shape, grad: frozen !== "x" },
          { data: randomArray(cols, cols + 3, 0.5, 1.5), shape: [cols], grad: frozen !== "gamma" },
        ],
        gpu: ([x, gamma]) => rmsNorm(x, gamma, EPS),
        ref: rmsNormRef,
        maxFdElements: 120,
      });
    },
  );
}

for (const cols of [37, 36]) {
  smallBindingTest(
    `rmsNorm of ${cols} columns over more rows than one binding holds`,
    async (e) => {
      const rows = Math.ceil((2 * SMALL_BINDING_BYTES) / (cols * 4)) + 7;
      await checkOp(e, {
        name: "windowed rmsNorm",
        inputs: [
          { data: randomArray(rows * cols, 5, -2, 2), shape: [rows, cols], grad: true },
          { data: randomArray(cols, 6, 0.5, 1.5), shape: [cols], grad: true },
        ],
        gpu: ([x, gamma]) => rmsNorm(x, gamma, EPS),
        ref: rmsNormRef,
        maxFdElements: 60,
      });
    },
  );
}

// x + rmsNorm(x) (a residual block): the norm adds its dx to the residual's gradient in place.
for (const shape of [[7, 13], [67, 64], [16389, 8]]) {
  gpuTest(`rmsNorm ${shape.join("x")} beside a residual path gets both gradients`, async (e) => {
    const [rows, cols] = shape;
    await checkOp(e, {
      name: "residual rmsNorm",
      inputs: [
        { data: randomArray(rows * cols, 3, -2, 2), shape, grad: true },
        { data: randomArray(cols, 4, 0.5, 1.5), shape: [cols], grad: true },
      ],
      gpu: ([x, gamma]) => add(x, rmsNorm(x, gamma, EPS)),
      ref: ([x, gamma]) => {
        const y = rmsNormRef([x, gamma]);
        return y.map((v, i) => v + x[i]);
      },
      maxFdElements: 120,
    });
  });
}

gpuTest("rmsNorm refuses a gamma that does not match the last axis", (e) => {
  const x = e.tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => rmsNorm(x, e.tensor(new Float32Array(2), [2])), ShapeError);
});

// On llvmpipe backward_x4_rows writes a dgamma partial per 16 rows, and 1.1M rows made 68,750:
// one finish loop over them all came out wrong (dgamma[2] -454.8, want -278.1) before the finish
// went in passes of at most LOOP_BUDGET partials.
gpuTest("rmsNorm dgamma of 1.1M rows matches float64", async (e) => {
  const [rows, cols] = [1_100_000, 4];
  const xs = randomArray(rows * cols, 21, -2, 2);
  const gs = randomArray(rows * cols, 22);
  const gammas = randomArray(cols, 23, 0.5, 1.5);
  const want = new Float64Array(cols);
  const scale = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let q = 0;
    for (let c = 0; c < cols; c++) q += xs[r * cols + c] ** 2;
    const rstd = 1 / Math.sqrt(q / cols + EPS);
    for (let c = 0; c < cols; c++) {
      const v = gs[r * cols + c] * xs[r * cols + c] * rstd;
      want[c] += v;
      scale[c] += Math.abs(v);
    }
  }
  await e.tidyAsync(async () => {
    const x = e.tensor(xs, [rows, cols]);
    const gamma = e.tensor(gammas, [cols]);
    x.requiresGrad = true;
    gamma.requiresGrad = true;
    e.startTape();
    e.backward(rmsNorm(x, gamma, EPS), e.tensor(gs, [rows, cols]));
    const got = await gamma.grad!.readF32();
    for (let c = 0; c < cols; c++) {
      assert.ok(
        Math.abs(got[c] - want[c]) <= 1e-5 * scale[c],
        `dgamma[${c}] ${got[c]}, float64 ${want[c]}`,
      );
    }
  });
});

// forward and backward_x walk a row twice at 8 threads: llvmpipe cut rows of ~262k (non-vec4)
// columns short. Wider rows now take more threads a row on a software adapter.
gpuTest("rmsNorm of rows of 270,001 matches float64, dx too", async (e) => {
  const [rows, cols] = [2, 270_001];
  const xs = randomArray(rows * cols, 24, -2, 2);
  const gs = randomArray(rows * cols, 25);
  const gammas = randomArray(cols, 26, 0.5, 1.5);
  const y64 = rmsNormRef([Float64Array.from(xs), Float64Array.from(gammas)]);
  const dx64 = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let q = 0;
    for (let c = 0; c < cols; c++) q += xs[r * cols + c] ** 2;
    const rstd = 1 / Math.sqrt(q / cols + EPS);
    let m = 0;
    for (let c = 0; c < cols; c++) {
      m += gs[r * cols + c] * gammas[c] * xs[r * cols + c] * rstd / cols;
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      dx64[i] = rstd * (gs[i] * gammas[c] - xs[i] * rstd * m);
    }
  }
  await e.tidyAsync(async () => {
    const x = e.tensor(xs, [rows, cols]);
    x.requiresGrad = true;
    e.startTape();
    const y = rmsNorm(x, e.tensor(gammas, [cols]), EPS);
    assertClose(await y.readF32(), y64, "y", 1e-4, 1e-4);
    e.backward(y, e.tensor(gs, [rows, cols]));
    assertClose(await x.grad!.readF32(), dx64, "dx", 1e-3, 1e-4);
  });
});
