import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { siluGate, siluGatePacked } from "../../src/tensor/ops/swiglu.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

function siluGateRef([a, b]: Float64Array[]): Float64Array {
  return a.map((v, i) => (v / (1 + Math.exp(-v))) * b[i]);
}

// 4 × 43 is a multiple of 4: the vec4 entries.
for (const shape of [[1], [3, 7], [2, 5, 43], [4, 43]]) {
  gpuTest(`siluGate ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    const n = shape.reduce((a, b) => a * b);
    await checkOp(e, {
      name: "siluGate",
      inputs: [
        { data: randomArray(n, n, -6, 6), shape, grad: true },
        { data: randomArray(n, n + 1, -2, 2), shape, grad: true },
      ],
      gpu: ([a, b]) => siluGate(a, b),
      ref: siluGateRef,
    });
  });
}

gpuTest("siluGate stays finite for large gates and passes a gradient to one input", async (e) => {
  // Eight elements: the vec4 entries.
  const a = [-200, -80, -1, 0, 1, 30, 80, 200];
  await checkOp(e, {
    name: "siluGate extremes",
    inputs: [
      { data: Float32Array.from(a), shape: [8] },
      { data: randomArray(8, 3), shape: [8], grad: true },
    ],
    gpu: ([x, y]) => siluGate(x, y),
    ref: siluGateRef,
  });
});

/** siluGate of each row's first half by its second, x [..., 2·half] → [..., half]. */
function siluGatePackedRef([x]: Float64Array[], half: number): Float64Array {
  const rows = x.length / (2 * half);
  const out = new Float64Array(rows * half);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < half; j++) {
      const a = x[r * 2 * half + j];
      out[r * half + j] = (a / (1 + Math.exp(-a))) * x[r * 2 * half + half + j];
    }
  }
  return out;
}

// half 1 and 7 take the scalar entries, 4 and 172 (the default model's) the vec4 ones.
for (const shape of [[2], [3, 14], [1, 8], [2, 5, 8], [3, 344]]) {
  gpuTest(`siluGatePacked ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    const n = shape.reduce((a, b) => a * b);
    const half = shape[shape.length - 1] / 2;
    await checkOp(e, {
      name: "siluGatePacked",
      inputs: [{ data: randomArray(n, n + 7, -5, 5), shape, grad: true }],
      gpu: ([x]) => siluGatePacked(x),
      ref: (xs) => siluGatePackedRef(xs, half),
    });
  });
}

for (const half of [5, 8]) {
  gpuTest(`siluGatePacked (half ${half}) over several binding windows`, async (e) => {
    // 400 rows: x needs 400 · 2·half · 4 bytes, several 4 KiB windows.
    const shape = [400, 2 * half];
    const n = shape[0] * shape[1];
    await withBindingLimit(e, 4096, () =>
      checkOp(e, {
        name: "siluGatePacked windows",
        inputs: [{ data: randomArray(n, half, -4, 4), shape, grad: true }],
        gpu: ([x]) => siluGatePacked(x),
        ref: (xs) => siluGatePackedRef(xs, half),
        maxFdElements: 40,
      }));
  });
}

gpuTest("siluGatePacked rejects an odd last axis", (e) => {
  const x = e.tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => siluGatePacked(x), /no even last axis/);
  x.dispose();
});
