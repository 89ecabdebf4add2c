import assert from "node:assert/strict";
import {
  anisotropy,
  crossValidatedAccuracy,
  fitLogistic,
  knnAccuracy,
  predictLogistic,
  probeAccuracy,
} from "../../src/train/probe.ts";

const vecs = (data: number[][]) => ({
  n: data.length,
  dim: data[0].length,
  data: Float64Array.from(data.flat()),
});
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

Deno.test("anisotropy: one direction 1, opposite −1, orthogonal 0", () => {
  close(anisotropy(vecs([[1, 0], [2, 0]])), 1);
  close(anisotropy(vecs([[1, 0], [-3, 0]])), -1);
  close(anisotropy(vecs([[1, 0], [0, 5]])), 0);
  // Three vectors: cos(a,b) = 1, cos(a,c) = cos(b,c) = 0 → mean 1/3.
  close(anisotropy(vecs([[1, 0], [1, 0], [0, 1]])), 1 / 3);
});

Deno.test("kNN: a hand-checked case with k = 1 and k = 3", () => {
  const v = vecs([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.8, 0.3], [0.2, 1]]);
  const y = Int32Array.from([0, 0, 1, 1, 0, 1]);
  assert.equal(knnAccuracy(v, y, [0, 1, 2, 3], [4, 5], 1, 2), 1);
  // k = 3 over 4 points: [0.8, 0.3] → neighbours 1, 0, then 3 (two votes for 0): right.
  assert.equal(knnAccuracy(v, y, [0, 1, 2, 3], [4, 5], 3, 2), 1);
});

Deno.test("logistic probe: separates a separable set and predicts its three classes", () => {
  const data: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < 30; i++) {
    data.push([i % 3 === 0 ? -2 : i % 3 === 1 ? 0 : 2, (i % 5) * 0.01]);
    y.push(i % 3);
  }
  const v = vecs(data);
  const labels = Int32Array.from(y);
  const all = Array.from({ length: 30 }, (_, i) => i);
  const m = fitLogistic(v, labels, all, { classes: 3, iterations: 500 });
  assert.deepEqual([...predictLogistic(m, v, all)], y);
  assert.equal(probeAccuracy(v, labels, all.slice(0, 20), all.slice(20), { classes: 3 }), 1);
  const cv = crossValidatedAccuracy(v, labels, all, 5, 1, { classes: 3 });
  assert.equal(cv.mean, 1);
  assert.equal(cv.std, 0);
});

Deno.test("logistic probe on pure noise labels stays near chance", () => {
  const data = Array.from(
    { length: 200 },
    (_, i) => [Math.sin(i * 12.9898) * 43758.5453 % 1, Math.cos(i * 78.233) % 1],
  );
  const y = Int32Array.from({ length: 200 }, (_, i) => (i * 7919) % 2);
  const cv = crossValidatedAccuracy(vecs(data), y, Array.from({ length: 200 }, (_, i) => i), 5, 2, {
    classes: 2,
  });
  assert.ok(cv.mean < 0.65, `accuracy ${cv.mean}`);
});
