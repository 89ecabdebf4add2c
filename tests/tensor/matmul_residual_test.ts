import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { matmul } from "../../src/tensor/ops/matmul.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";

interface Case {
  batch: number;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
}

/** r + op(A)·op(B) in float64 over contiguous row-major batches. */
function reference(c: Case, a: Float64Array, b: Float64Array, r: Float64Array): Float64Array {
  const { batch, m, k, n, transA, transB } = c;
  const out = Float64Array.from(r);
  for (let s = 0; s < batch; s++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let x = 0; x < k; x++) {
          const av = a[s * m * k + (transA ? x * m + i : i * k + x)];
          const bv = b[s * k * n + (transB ? j * k + x : x * n + j)];
          sum += av * bv;
        }
        out[(s * m + i) * n + j] += sum;
      }
    }
  }
  return out;
}

const lead = (c: Case) => (c.batch > 1 ? [c.batch] : []);

// [m, k, n]: length 1, primes (the scalar kernel), vec4 stores of C adding in the kernel, vec4
// loads with scalar stores (the sum pass adds), and a long k that splits into slices.
const SIZES: [number, number, number][] = [[1, 1, 1], [5, 7, 3], [37, 20, 64], [33, 12, 9], [
  8,
  300,
  8,
]];
for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
  for (const [m, k, n] of SIZES) {
    for (const batch of [1, 2]) {
      const c: Case = { batch, m, k, n, transA, transB };
      const name = `${transA ? "T" : "N"}${transB ? "T" : "N"} ${batch}x${m}x${k}x${n}`;
      gpuTest(
        `matmul onto a residual ${name} matches float64 and finite differences`,
        (e) =>
          checkOp(e, {
            name: `matmul residual ${name}`,
            inputs: [
              {
                data: randomArray(batch * m * k, 1),
                shape: [...lead(c), ...(transA ? [k, m] : [m, k])],
                grad: true,
              },
              {
                data: randomArray(batch * k * n, 2),
                shape: [...lead(c), ...(transB ? [n, k] : [k, n])],
                grad: true,
              },
              { data: randomArray(batch * m * n, 3), shape: [...lead(c), m, n], grad: true },
            ],
            gpu: ([a, b, r]) => matmul(a, b, { transA, transB, residual: r }),
            ref: ([a, b, r]) => reference(c, a, b, r),
          }),
      );
    }
  }
}

gpuTest("matmul onto a residual that is also its left operand", (e) =>
  checkOp(e, {
    name: "x + x·W",
    inputs: [
      { data: randomArray(6 * 8, 4), shape: [6, 8], grad: true },
      { data: randomArray(8 * 8, 5), shape: [8, 8], grad: true },
    ],
    gpu: ([x, w]) => matmul(x, w, { transB: true, residual: x }),
    ref: ([x, w]) =>
      reference({ batch: 1, m: 6, k: 8, n: 8, transA: false, transB: true }, x, w, x),
  }));

gpuTest("matmul onto a residual with K = 0 gives the residual", async (e) => {
  const r = e.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [3, 2]);
  const y = matmul(e.tensor(new Float32Array(0), [3, 0]), e.zeros([0, 2]), { residual: r });
  assert.deepEqual([...await y.read()], [1, 2, 3, 4, 5, 6]);
});

gpuTest("matmul refuses a residual of another shape", (e) => {
  assert.throws(
    () => matmul(e.zeros([3, 4]), e.zeros([4, 2]), { residual: e.zeros([3, 3]) }),
    (err: Error) => err instanceof ShapeError && /residual \[3, 3\]/.test(err.message),
  );
});
