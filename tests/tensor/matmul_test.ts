import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { add } from "../../src/tensor/ops/elementwise.ts";
import { matmul, MATMUL_VARIANTS, type MatmulKernel } from "../../src/tensor/ops/matmul.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { ShapeError, type Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, gpuTest, randomArray, randomInts } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

interface Case {
  batch: number;
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  /** b is one [k, n] matrix for every batch (a's leading dimensions are flattened). */
  broadcastB?: boolean;
}

/** op(A)·op(B) in float64 over contiguous row-major batches. */
function reference(c: Case, a: Float64Array, b: Float64Array): Float64Array {
  const { batch, m, k, n, transA, transB } = c;
  const out = new Float64Array(batch * m * n);
  for (let s = 0; s < batch; s++) {
    const offA = s * m * k;
    const offB = c.broadcastB ? 0 : s * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let x = 0; x < k; x++) {
          const av = a[offA + (transA ? x * m + i : i * k + x)];
          const bv = b[offB + (transB ? j * k + x : x * n + j)];
          sum += av * bv;
        }
        out[(s * m + i) * n + j] = sum;
      }
    }
  }
  return out;
}

function shapes(c: Case): { a: number[]; b: number[] } {
  const lead = c.batch > 1 ? [c.batch] : [];
  const a = [...lead, ...(c.transA ? [c.k, c.m] : [c.m, c.k])];
  const b = [...(c.broadcastB ? [] : lead), ...(c.transB ? [c.n, c.k] : [c.k, c.n])];
  return { a, b };
}

const variantName = (c: { transA: boolean; transB: boolean }) =>
  `${c.transA ? "T" : "N"}${c.transB ? "T" : "N"}`;

async function check(e: Engine, c: Case, kernel: MatmulKernel = "auto", seed = 1): Promise<void> {
  const { a, b } = shapes(c);
  const sizeA = c.batch * c.m * c.k;
  const sizeB = (c.broadcastB ? 1 : c.batch) * c.k * c.n;
  await checkOp(e, {
    name: `matmul ${variantName(c)} ${c.batch}x${c.m}x${c.k}x${c.n}`,
    inputs: [
      { data: randomArray(sizeA, seed), shape: a, grad: true },
      { data: randomArray(sizeB, seed + 1), shape: b, grad: true },
    ],
    gpu: ([x, y]) => matmul(x, y, { transA: c.transA, transB: c.transB, kernel }),
    ref: ([x, y]) => reference(c, x, y),
  });
}

const VARIANTS = [
  { transA: false, transB: false },
  { transA: false, transB: true },
  { transA: true, transB: false },
  { transA: true, transB: true },
];

// [m, k, n]: degenerate, primes, non-multiples of every tile (4, 16 and 32), K = 1, multiples of 4
// (the vec4 kernel with partial tiles), an odd n with 4-aligned operands (vec4 loads, scalar
// stores of C), a K that is not a multiple of 4, and long reductions that split K.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [33, 65, 17],
  [12, 1, 8],
  [20, 36, 24],
  [36, 12, 7],
  [8, 7, 12],
  [68, 40, 52],
  [8, 300, 12],
  [8, 299, 12],
  [5, 203, 3],
];

for (const v of VARIANTS) {
  for (const [m, k, n] of SHAPES) {
    const c = { batch: 1, m, k, n, ...v };
    gpuTest(
      `matmul ${variantName(c)} ${m}x${k}x${n} matches float64 and finite differences`,
      (e) => check(e, c),
    );
  }
  for (const [m, k, n] of [[7, 13, 5], [20, 8, 12]]) {
    const c = { batch: 3, m, k, n, ...v };
    gpuTest(
      `matmul ${variantName(c)} batched 3x${m}x${k}x${n} matches float64`,
      (e) => check(e, c),
    );
  }
  gpuTest(`matmul ${variantName(v)} on the scalar kernel at vec4-friendly shapes`, async (e) => {
    await check(e, { batch: 1, m: 20, k: 36, n: 24, ...v }, "scalar");
    await check(e, { batch: 3, m: 8, k: 12, n: 4, ...v }, "scalar");
  });
}

// Weight gradients over a long reduction (CoLES's, smaller): a C of a few tiles whose k is cut
// into slices that share workgroups, on the scalar kernel (B's rows of 2 floats allow no vec4
// loads) and on the vec4 kernel with partial tiles.
for (const [m, k, n] of [[16, 2000, 2], [40, 1500, 36]]) {
  const c = { batch: 1, m, k, n, transA: true, transB: false };
  gpuTest(
    `matmul TN ${m}x${k}x${n}: a long reduction in slices matches float64 and finite differences`,
    (e) => check(e, c),
  );
}

for (const transB of [false, true]) {
  for (const [batch, m, k, n] of [[3, 5, 8, 12], [2, 3, 7, 5], [4, 16, 64, 20]]) {
    const c = { batch, m, k, n, transA: false, transB, broadcastB: true };
    gpuTest(
      `matmul broadcast weight ${
        variantName(c)
      } ${batch}x${m}x${k} by ${k}x${n} sums dB over batches`,
      (e) => check(e, c),
    );
  }
}

// Bindings of 1 KiB (254 floats past the alignment slack) cut these operands along every axis:
// rows of A, B and C, columns when four rows do not fit, k with windows that add into C, and
// batches one matrix at a time or several per window.
const WINDOWED: Case[] = [
  { batch: 1, m: 37, k: 45, n: 41, transA: false, transB: false },
  { batch: 1, m: 40, k: 44, n: 36, transA: false, transB: false },
  { batch: 1, m: 9, k: 300, n: 4, transA: false, transB: false },
  { batch: 2, m: 20, k: 24, n: 28, transA: false, transB: false },
  { batch: 5, m: 4, k: 8, n: 4, transA: false, transB: false },
];
for (const v of VARIANTS) {
  for (const base of WINDOWED) {
    const c = { ...base, ...v };
    gpuTest(
      `matmul ${variantName(c)} ${c.batch}x${c.m}x${c.k}x${c.n} through 1 KiB bindings`,
      (e) => withBindingLimit(e, 1024, () => check(e, c)),
    );
  }
}

/**
 * op(A)·op(B) + op(A)·op(C): A's second gradient is added to its first in place by the product
 * kernel (or by the split reduction, or window by window through small bindings).
 */
async function checkSharedOperand(e: Engine, c: Case): Promise<void> {
  const { a, b } = shapes(c);
  const sizeA = c.batch * c.m * c.k;
  const sizeB = c.batch * c.k * c.n;
  await checkOp(e, {
    name: `matmul ${variantName(c)} ${c.batch}x${c.m}x${c.k}x${c.n} sharing a`,
    inputs: [
      { data: randomArray(sizeA, 11), shape: a, grad: true },
      { data: randomArray(sizeB, 12), shape: b, grad: true },
      { data: randomArray(sizeB, 13), shape: b, grad: true },
    ],
    gpu: ([x, y, z]) => {
      const opts = { transA: c.transA, transB: c.transB };
      return add(matmul(x, y, opts), matmul(x, z, opts));
    },
    ref: ([x, y, z]) => {
      const first = reference(c, x, y);
      const second = reference(c, x, z);
      return first.map((v, i) => v + second[i]);
    },
  });
}

// [m, k, n]: vec4 stores of C, scalar stores (odd k is A's gradient's width), a split reduction.
for (const v of VARIANTS) {
  for (const [m, k, n] of [[20, 36, 24], [7, 13, 5], [8, 300, 12]]) {
    const c = { batch: 1, m, k, n, ...v };
    gpuTest(
      `matmul ${variantName(c)} ${m}x${k}x${n}: an operand of two products gets both gradients`,
      (e) => checkSharedOperand(e, c),
    );
  }
  const windowed = { batch: 1, m: 37, k: 44, n: 36, ...v };
  gpuTest(
    `matmul ${variantName(v)}: an operand of two products through 1 KiB bindings`,
    (e) => withBindingLimit(e, 1024, () => checkSharedOperand(e, windowed)),
  );
}

gpuTest("matmul batches over several leading dimensions", async (e) => {
  const a = randomArray(2 * 3 * 4 * 8, 5);
  const b = randomArray(2 * 3 * 8 * 6, 6);
  await checkOp(e, {
    name: "matmul 4-D",
    inputs: [{ data: a, shape: [2, 3, 4, 8], grad: true }, {
      data: b,
      shape: [2, 3, 8, 6],
      grad: true,
    }],
    gpu: ([x, y]) => matmul(x, y),
    ref: ([x, y]) => reference({ batch: 6, m: 4, k: 8, n: 6, transA: false, transB: false }, x, y),
  });
});

gpuTest("matmul with K = 0 gives zeros and an empty dimension gives an empty result", async (e) => {
  const zeros = matmul(
    e.tensor(new Float32Array(0), [3, 0]),
    e.tensor(new Float32Array(0), [0, 2]),
  );
  assert.deepEqual([...await zeros.read()], [0, 0, 0, 0, 0, 0]);
  const empty = matmul(e.tensor(new Float32Array(0), [0, 4]), e.zeros([4, 2]));
  assert.deepEqual(empty.shape, [0, 2]);
});

gpuTest("matmul is bit-identical run to run (split reduction included)", async (e) => {
  const a = e.tensor(randomArray(8 * 5000, 3), [5000, 8]);
  const b = e.tensor(randomArray(5000 * 12, 4), [5000, 12]);
  const first = await matmul(a, b, { transA: true }).read();
  const second = await matmul(a, b, { transA: true }).read();
  assert.deepEqual(first, second);
});

gpuTest("matmul shape mismatches throw ShapeError naming matmul and both shapes", (e) => {
  const t = (shape: number[]) => e.zeros(shape);
  const cases: [Tensor, Tensor, { transA?: boolean; transB?: boolean }][] = [
    [t([2, 3]), t([4, 5]), {}],
    [t([2, 3]), t([5, 4]), { transB: true }],
    [t([3, 2]), t([3, 5]), {}],
    [t([2, 2, 3]), t([3, 3, 4]), {}],
    [t([2, 3, 4]), t([3, 4]), { transA: true }],
    [t([4, 3]), t([2, 3, 4]), {}],
    [t([3]), t([3, 4]), {}],
  ];
  for (const [a, b, opts] of cases) {
    assert.throws(
      () => matmul(a, b, opts),
      (err: Error) =>
        err instanceof ShapeError && err.message.startsWith("matmul:") &&
        err.message.includes(`[${a.shape.join(", ")}]`) &&
        err.message.includes(`[${b.shape.join(", ")}]`),
    );
  }
});

/** Float64 dot product of row i of x [.., d] and row j of y [.., d]. */
function dotRows(x: Float32Array, i: number, y: Float32Array, j: number, d: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) s += x[i * d + t] * y[j * d + t];
  return s;
}

/**
 * Small integers as floats: every product and partial sum of the long reductions below is exact
 * in f32, so the GPU must match float64 exactly whatever its summation order.
 */
function smallIntegers(n: number, seed: number): Float32Array {
  return Float32Array.from(randomInts(n, seed, -3, 4));
}

function sampleIndices(n: number, count: number, seed: number): number[] {
  const r = randomArray(count, seed, 0, n);
  return [0, n - 1, ...Array.from(r, Math.floor)];
}

// A transposed B larger than one storage binding: scores of a few users against a table of
// 1,000,001 items (256 MB). B is bound in windows of rows, C in windows of columns; backward
// cuts dA's reduction (accumulating windows) and dB's rows.
gpuTest("matmul scores against a 1,000,001 × 64 table, windowed, with backward", async (e) => {
  const items = 1_000_001;
  const d = 64;
  const users = 3;
  const hostA = smallIntegers(users * d, 11);
  const hostB = smallIntegers(items * d, 12);
  const hostG = smallIntegers(users * items, 13);
  await e.tidyAsync(async () => {
    const a = e.tensor(hostA, [users, d]);
    const b = e.tensor(hostB, [items, d]);
    a.requiresGrad = b.requiresGrad = true;
    e.startTape();
    const scores = matmul(a, b, { transB: true });
    const got = await scores.readF32();
    const cols = sampleIndices(items, 300, 14);
    for (let i = 0; i < users; i++) {
      const want = cols.map((j) => dotRows(hostA, i, hostB, j, d));
      assertClose(cols.map((j) => got[i * items + j]), want, `scores row ${i}`, 0, 0);
    }
    e.backward(scores, e.tensor(hostG, [users, items]));
    const da = await a.grad!.readF32();
    const wantA = new Float64Array(users * d);
    for (let i = 0; i < users; i++) {
      for (let j = 0; j < items; j++) {
        const g = hostG[i * items + j];
        for (let t = 0; t < d; t++) wantA[i * d + t] += g * hostB[j * d + t];
      }
    }
    assertClose(da, wantA, "dA", 0, 0);
    const db = await b.grad!.readF32();
    const rows = sampleIndices(items, 300, 15);
    const gotB: number[] = [];
    const wantB: number[] = [];
    for (const j of rows) {
      for (let t = 0; t < d; t++) {
        let s = 0;
        for (let i = 0; i < users; i++) s += hostG[i * items + j] * hostA[i * d + t];
        gotB.push(db[j * d + t]);
        wantB.push(s);
      }
    }
    assertClose(gotB, wantB, "dB rows", 0, 0);
    a.zeroGrad();
    b.zeroGrad();
  });
  e.gpu.allocator.trimPool();
});

// A row-major A larger than one binding (2,200,000 × 16 floats, 141 MB): A and C are bound in
// windows of rows; dB = Aᵀ·G reduces over those rows in windows that add into each other, each
// window's reduction split into slices.
gpuTest("matmul with 2,200,000 rows of A, windowed, with backward", async (e) => {
  const rows = 2_200_000;
  const k = 16;
  const n = 8;
  const hostA = smallIntegers(rows * k, 21);
  const hostB = smallIntegers(k * n, 22);
  const hostG = smallIntegers(rows * n, 23);
  await e.tidyAsync(async () => {
    const a = e.tensor(hostA, [rows, k]);
    const b = e.tensor(hostB, [k, n]);
    a.requiresGrad = b.requiresGrad = true;
    e.startTape();
    const c = matmul(a, b);
    const got = await c.readF32();
    const sample = sampleIndices(rows, 300, 24);
    const bT = new Float32Array(n * k);
    for (let x = 0; x < k; x++) for (let j = 0; j < n; j++) bT[j * k + x] = hostB[x * n + j];
    const gotC: number[] = [];
    const wantC: number[] = [];
    for (const i of sample) {
      for (let j = 0; j < n; j++) {
        gotC.push(got[i * n + j]);
        wantC.push(dotRows(hostA, i, bT, j, k));
      }
    }
    assertClose(gotC, wantC, "C rows", 0, 0);
    e.backward(c, e.tensor(hostG, [rows, n]));
    const db = await b.grad!.readF32();
    const wantB = new Float64Array(k * n);
    for (let i = 0; i < rows; i++) {
      for (let x = 0; x < k; x++) {
        const av = hostA[i * k + x];
        for (let j = 0; j < n; j++) wantB[x * n + j] += av * hostG[i * n + j];
      }
    }
    assertClose(db, wantB, "dB", 0, 0);
    const da = await a.grad!.readF32();
    const gotA: number[] = [];
    const wantA: number[] = [];
    for (const i of sample) {
      for (let x = 0; x < k; x++) {
        gotA.push(da[i * k + x]);
        wantA.push(dotRows(hostG, i, hostB, x, n));
      }
    }
    assertClose(gotA, wantA, "dA rows", 0, 0);
    a.zeroGrad();
    b.zeroGrad();
  });
  e.gpu.allocator.trimPool();
});

// Every tuned variant on shapes that are not multiples of its tile, the forward product of a
// linear layer (x·Wᵀ) and a weight gradient (dyᵀ·x), against the float64 reference.
for (const v of MATMUL_VARIANTS) {
  gpuTest(`matmul variant ${v.name} at awkward shapes`, async (e) => {
    for (
      const c of [
        { batch: 1, m: 37, k: 12, n: 20, transA: false, transB: true },
        { batch: 1, m: 9, k: 33, n: 8, transA: true, transB: false },
      ]
    ) {
      const { a, b } = shapes(c);
      const x = randomArray(c.m * c.k, 5);
      const y = randomArray(c.k * c.n, 6);
      const got = await e.noGrad(() =>
        matmul(e.tensor(x, a), e.tensor(y, b), {
          transA: c.transA,
          transB: c.transB,
          kernel: v.name,
        })
      ).read();
      const want = reference(c, Float64Array.from(x), Float64Array.from(y));
      assertClose(got, want, `${v.name} ${variantName(c)} ${c.m}x${c.k}x${c.n}`);
    }
  });
}

gpuTest("an unknown matmul variant is refused with the list", (e) => {
  const x = e.tensor(randomArray(16, 1), [4, 4]);
  assert.throws(
    () => matmul(x, x, { kernel: "vec4 7×7" }),
    /unknown matmul variant .* one of vec4/,
  );
});

// llvmpipe silently ends an invocation's loops past ~65,535 steps: a reduction longer than the
// budget (the scalar kernel steps 1 k, the vec4 ones 4) is split even where C has tiles enough to
// fill the machine. The scalar kernel (what unaligned operands get) came out wrong at k = 70,001
// before (64 × 64 C, relative errors ~10); a vec4 product as long (k > 262,140 with ≥ 32 tiles)
// would need an operand over the 128 MiB binding.
for (const [kernel, k, transA] of [["scalar", 70_001, false], ["scalar", 70_001, true]] as const) {
  gpuTest(`matmul ${kernel} over k = ${k}${transA ? ", A transposed" : ""}`, async (e) => {
    const c: Case = { batch: 1, m: 64, k, n: 64, transA, transB: false };
    const { a, b } = shapes(c);
    const x = randomArray(c.m * k, 5);
    const y = randomArray(k * c.n, 6);
    const want = reference(c, Float64Array.from(x), Float64Array.from(y));
    await e.tidyAsync(async () => {
      const got = await matmul(e.tensor(x, a), e.tensor(y, b), { transA, kernel }).read();
      // A float32 sum over ~10⁵ products: absolute error ~1e-3 at most; a cut loop is off by ~10.
      assertClose(got, want, `matmul ${kernel} k ${k}`, 1e-4, 2e-3);
    });
  });
}

gpuTest("on llvmpipe a batched reduction too long for one loop is refused, not cut short", (e) => {
  const k = 40_003;
  const a = e.tensor(new Float32Array(2 * 64 * k), [2, 64, k]);
  const b = e.tensor(new Float32Array(2 * k * 64), [2, k, 64]);
  const run = () => matmul(a, b, { kernel: "scalar" }).dispose();
  if (!e.gpu.isSoftware) return run();
  assert.throws(
    run,
    (err: unknown) =>
      err instanceof ShapeError && /reduction over 40003 \(2 batches of 64×64\)/.test(err.message),
  );
});
