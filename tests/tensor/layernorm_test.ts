import assert from "node:assert/strict";
import { layerNorm, rowLoops, rowThreads } from "../../src/tensor/ops/layernorm.ts";
import { LOOP_BUDGET } from "../../src/gpu/device.ts";
import "../../src/tensor/ops/mod.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

const EPS = 1e-5;

/** Per-row mean and 1/sqrt(biased variance + eps), in float64. */
function rowStats(x: ArrayLike<number>, cols: number, r: number): [number, number] {
  let mean = 0;
  for (let c = 0; c < cols; c++) mean += x[r * cols + c];
  mean /= cols;
  let variance = 0;
  for (let c = 0; c < cols; c++) variance += (x[r * cols + c] - mean) ** 2;
  return [mean, 1 / Math.sqrt(variance / cols + EPS)];
}

function layerNormRef([x, gamma, beta]: Float64Array[]): Float64Array {
  const cols = gamma.length;
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    const [mean, rstd] = rowStats(x, cols, r);
    for (let c = 0; c < cols; c++) {
      y[r * cols + c] = (x[r * cols + c] - mean) * rstd * gamma[c] + beta[c];
    }
  }
  return y;
}

/** Analytic float64 gradients, for shapes too big for finite differences. */
function layerNormGradRef(x: Float32Array, gamma: Float32Array, g: Float32Array) {
  const cols = gamma.length;
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(cols);
  const dbeta = new Float64Array(cols);
  for (let r = 0; r < x.length / cols; r++) {
    const [mean, rstd] = rowStats(x, cols, r);
    let meanGh = 0, meanGhXh = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const xh = (x[i] - mean) * rstd;
      meanGh += g[i] * gamma[c] / cols;
      meanGhXh += g[i] * gamma[c] * xh / cols;
      dgamma[c] += g[i] * xh;
      dbeta[c] += g[i];
    }
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      dx[i] = rstd * (g[i] * gamma[c] - meanGh - (x[i] - mean) * rstd * meanGhXh);
    }
  }
  return { dx, dgamma, dbeta };
}

const shapes = [[1, 1], [5, 1], [1, 7], [7, 13], [3, 5, 17], [300, 3], [4, 129], [2, 1024], [
  3,
  1000,
]];
for (const shape of shapes) {
  gpuTest(`layerNorm ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    const cols = shape[shape.length - 1];
    const n = shape.reduce((a, b) => a * b);
    await checkOp(e, {
      name: "layerNorm",
      inputs: [
        { data: randomArray(n, n, -2, 2), shape, grad: true },
        { data: randomArray(cols, cols + 1, 0.5, 1.5), shape: [cols], grad: true },
        { data: randomArray(cols, cols + 2), shape: [cols], grad: true },
      ],
      gpu: ([x, gamma, beta]) => layerNorm(x, gamma, beta),
      ref: layerNormRef,
      maxFdElements: 120,
    });
  });
}

gpuTest("layerNorm over 20k rows: gradients match float64 and are bit-identical", async (e) => {
  const [rows, cols] = [20_011, 67];
  const xs = randomArray(rows * cols, 1, -3, 3);
  const gammas = randomArray(cols, 2, 0.5, 1.5);
  const gs = randomArray(rows * cols, 3);
  const x = e.tensor(xs, [rows, cols]);
  const gamma = e.tensor(gammas, [cols]);
  const beta = e.tensor(randomArray(cols, 4), [cols]);
  for (const t of [x, gamma, beta]) t.requiresGrad = true;
  const runs = [];
  for (let run = 0; run < 2; run++) {
    e.startTape();
    e.backward(layerNorm(x, gamma, beta), e.tensor(gs, [rows, cols]));
    runs.push(await Promise.all([x, gamma, beta].map((t) => t.grad!.readF32())));
    for (const t of [x, gamma, beta]) t.zeroGrad();
  }
  const want = layerNormGradRef(xs, gammas, gs);
  assertClose(runs[0][0], want.dx, "dx", 1e-4, 1e-5);
  assertClose(runs[0][1], want.dgamma, "dgamma", 1e-4, 1e-3);
  assertClose(runs[0][2], want.dbeta, "dbeta", 1e-4, 1e-3);
  for (let k = 0; k < 3; k++) assert.deepEqual(runs[0][k], runs[1][k], `run-to-run gradient ${k}`);
});

smallBindingTest("layerNorm over more rows than one binding holds", async (e) => {
  const cols = 37;
  const rows = Math.ceil((2 * SMALL_BINDING_BYTES) / (cols * 4)) + 7;
  await checkOp(e, {
    name: "windowed layerNorm",
    inputs: [
      { data: randomArray(rows * cols, 5, -2, 2), shape: [rows, cols], grad: true },
      { data: randomArray(cols, 6, 0.5, 1.5), shape: [cols], grad: true },
      { data: randomArray(cols, 7), shape: [cols], grad: true },
    ],
    gpu: ([x, gamma, beta]) => layerNorm(x, gamma, beta),
    ref: layerNormRef,
    maxFdElements: 60,
  });
});

gpuTest("layerNorm of a constant row is beta, with finite gradients", async (e) => {
  const cols = 9;
  const x = e.tensor(new Float32Array(2 * cols).fill(3), [2, cols]);
  x.requiresGrad = true;
  const gamma = e.tensor(randomArray(cols, 8), [cols]);
  const beta = e.tensor(randomArray(cols, 9), [cols]);
  e.startTape();
  const y = layerNorm(x, gamma, beta);
  const got = await y.readF32();
  const b = await beta.readF32();
  assert.deepEqual([...got], [...b, ...b]);
  e.backward(y, e.tensor(randomArray(2 * cols, 10), [2, cols]));
  assert.ok((await x.grad!.readF32()).every(Number.isFinite));
  x.zeroGrad();
});

gpuTest("layerNorm names the shapes that do not match", (e) => {
  const x = e.tensor(new Float32Array(6), [2, 3]);
  const ok = e.tensor(new Float32Array(3), [3]);
  const bad = e.tensor(new Float32Array(2), [2]);
  assert.throws(
    () => layerNorm(x, bad, ok),
    (err: Error) =>
      err instanceof ShapeError && err.message.includes("gamma [2]") &&
      err.message.includes("[2, 3]"),
  );
  assert.throws(() => layerNorm(x, ok, bad), ShapeError);
});

gpuTest("layerNorm rows past 8 threads' loop budget take more threads, or are refused", (e) => {
  const gpu = e.gpu as { isSoftware: boolean };
  const saved = gpu.isSoftware;
  const x = (cols: number) => e.tensor(new Float32Array(cols), [1, cols]);
  const vec = (cols: number) => e.tensor(new Float32Array(cols), [cols]);
  try {
    gpu.isSoftware = true;
    assert.equal(rowThreads(e, "layerNorm", x(1024), 1024, 3), 8);
    assert.equal(rowLoops(87_360, 8, 3), 32_766);
    assert.ok(rowLoops(87_361, 8, 3) > LOOP_BUDGET);
    assert.equal(rowThreads(e, "layerNorm", x(87_360), 87_360, 3), 8);
    assert.equal(rowThreads(e, "layerNorm", x(87_361), 87_361, 3), 16);
    assert.equal(rowThreads(e, "layerNorm", x(180_000), 180_000, 3), 32);
    assert.throws(
      () => layerNorm(x(700_000), vec(700_000), vec(700_000)),
      (err: Error) =>
        err instanceof ShapeError &&
        /layerNorm.*\[1, 700000\] would loop 32826 times.*64 threads.*budget of 32768/.test(
          err.message,
        ),
    );
    gpu.isSoftware = false;
    assert.equal(rowThreads(e, "layerNorm", x(700_000), 700_000, 3), 8);
  } finally {
    gpu.isSoftware = saved;
  }
});

// At 8 threads a row the forward walks ~3 · cols / 8 times: llvmpipe left the tail of row 1 of
// [2, 180,000] at 0. Wider rows now take more threads a row on a software adapter.
gpuTest("layerNorm of rows of 180,000 matches float64, gradients too", async (e) => {
  const [rows, cols] = [2, 180_000];
  const xs = randomArray(rows * cols, 5, -3, 3);
  const gammas = randomArray(cols, 6, 0.5, 1.5);
  const betas = randomArray(cols, 7);
  const gs = randomArray(rows * cols, 8);
  const x = e.tensor(xs, [rows, cols]);
  const gamma = e.tensor(gammas, [cols]);
  const beta = e.tensor(betas, [cols]);
  for (const t of [x, gamma, beta]) t.requiresGrad = true;
  e.startTape();
  const y = layerNorm(x, gamma, beta, EPS);
  const want = layerNormRef([xs, gammas, betas].map((a) => Float64Array.from(a)));
  assertClose(await y.readF32(), want, "y", 1e-4, 1e-4);
  e.backward(y, e.tensor(gs, [rows, cols]));
  const grads = layerNormGradRef(xs, gammas, gs);
  assertClose(await x.grad!.readF32(), grads.dx, "dx", 1e-3, 1e-4);
  assertClose(await gamma.grad!.readF32(), grads.dgamma, "dgamma", 1e-4, 1e-4);
  assertClose(await beta.grad!.readF32(), grads.dbeta, "dbeta", 1e-4, 1e-4);
});
