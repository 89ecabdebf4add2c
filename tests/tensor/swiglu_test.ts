import "../../src/tensor/ops/mod.ts";
import { siluGate } from "../../src/tensor/ops/swiglu.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";

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
