import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { rope, rotaryTable } from "../../src/tensor/ops/rope.ts";
import { checkOp, gpuTest, randomArray, randomInts } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

/** Adjacent pairs of every head rotated by pos · theta^(−2i/dh), in float64. */
function ropeRef(x: Float64Array, pos: ArrayLike<number>, D: number, dh: number, theta: number) {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    for (let h = 0; h < D / dh; h++) {
      for (let i = 0; i < dh / 2; i++) {
        const angle = pos[r] * theta ** (-(2 * i) / dh);
        const at = r * D + h * dh + 2 * i;
        const [c, s] = [Math.cos(angle), Math.sin(angle)];
        y[at] = x[at] * c - x[at + 1] * s;
        y[at + 1] = x[at] * s + x[at + 1] * c;
      }
    }
  }
  return y;
}

const cases = [
  { shape: [1, 2], dh: 2, maxPos: 1 },
  { shape: [3, 6], dh: 6, maxPos: 5 },
  { shape: [2, 5, 12], dh: 4, maxPos: 9 },
  { shape: [7, 24], dh: 8, maxPos: 513 },
];
for (const { shape, dh, maxPos } of cases) {
  gpuTest(`rope ${shape.join("x")}, head dim ${dh}: float64 and finite differences`, async (e) => {
    const D = shape[shape.length - 1];
    const n = shape.reduce((a, b) => a * b);
    const pos = randomInts(n / D, n, 0, maxPos);
    const table = rotaryTable(e, maxPos, dh, 10000);
    await checkOp(e, {
      name: "rope",
      inputs: [{ data: randomArray(n, n + 1, -2, 2), shape, grad: true }],
      gpu: ([x]) => rope(x, e.tensor(pos, [pos.length], "i32"), table),
      ref: ([x]) => ropeRef(x, pos, D, dh, 10000),
    });
  });
}

// Head dimension 10 rotates one pair per invocation, 8 two.
for (const [rows, D, dh] of [[301, 20, 10], [301, 24, 8]]) {
  gpuTest(`rope over more pairs than one binding holds (head dim ${dh})`, async (e) => {
    const pos = randomInts(rows, 3, 0, 40);
    const table = rotaryTable(e, 40, dh, 500);
    await withBindingLimit(e, 4096, () =>
      checkOp(e, {
        name: "windowed rope",
        inputs: [{ data: randomArray(rows * D, 4), shape: [rows, D], grad: true }],
        gpu: ([x]) => rope(x, e.tensor(pos, [rows], "i32"), table),
        ref: ([x]) => ropeRef(x, pos, D, dh, 500),
        maxFdElements: 100,
      }));
  });
}

gpuTest("rope refuses positions outside the table and heads that do not divide D", (e) => {
  const table = rotaryTable(e, 4, 4, 10000);
  const x = e.tensor(new Float32Array(16), [2, 8]);
  assert.throws(() => rope(x, e.tensor([0, 4], [2], "i32"), table), /position 4 at row 1/);
  assert.throws(
    () => rope(e.tensor(new Float32Array(12), [2, 6]), e.tensor([0, 1], [2], "i32"), table),
    /heads/,
  );
  assert.throws(() => rotaryTable(e, 4, 3, 10000), /not a positive even number/);
});
