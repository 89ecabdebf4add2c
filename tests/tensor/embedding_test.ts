import assert from "node:assert/strict";
import {
  addSparseRows,
  embedding,
  idsToCsr,
  mergeSparseRows,
  occurrencePasses,
  sparseRowsToDense,
} from "../../src/tensor/ops/embedding.ts";
import { LOOP_BUDGET } from "../../src/gpu/device.ts";
import { add } from "../../src/tensor/ops/mod.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, EXACT, gpuTest, randomArray, randomInts } from "../support/check.ts";
import { smallBindingTest, withBindingLimit } from "../support/small_bindings.ts";
import type { Engine } from "../../src/tensor/engine.ts";

function lookupRef(table: Float64Array, ids: ArrayLike<number>, cols: number): Float64Array {
  const out = new Float64Array(ids.length * cols);
  for (let p = 0; p < ids.length; p++) {
    for (let c = 0; c < cols; c++) out[p * cols + c] = table[ids[p] * cols + c];
  }
  return out;
}

const cases: { rows: number; cols: number; idsShape: number[]; idRange: number }[] = [
  { rows: 1, cols: 1, idsShape: [4], idRange: 1 },
  { rows: 7, cols: 5, idsShape: [3, 4, 2], idRange: 7 },
  { rows: 13, cols: 6, idsShape: [300], idRange: 3 }, // each id ~100 times
  { rows: 37, cols: 11, idsShape: [2, 9], idRange: 37 },
];

for (const { rows, cols, idsShape, idRange } of cases) {
  const name = `embedding ${rows}x${cols} ids ${idsShape.join("x")}`;
  gpuTest(`${name} matches float64 and finite differences`, async (e) => {
    const n = idsShape.reduce((a, b) => a * b);
    const ids = randomInts(n, rows * 7 + n, 0, idRange);
    await checkOp(e, {
      name,
      inputs: [
        { data: randomArray(rows * cols, rows + cols), shape: [rows, cols], grad: true },
        { data: ids, shape: idsShape },
      ],
      gpu: ([table, idsT]) => embedding(table, idsT),
      ref: ([table]) => lookupRef(table, ids, cols),
      ...EXACT,
    });
  });
}

gpuTest("embedding output has shape [...ids, cols]", (e) => {
  const table = e.tensor(randomArray(12, 1), [4, 3]);
  const out = embedding(table, e.tensor(new Int32Array([0, 1, 2, 3, 3, 2]), [1, 2, 3]));
  assert.deepEqual(out.shape, [1, 2, 3, 3]);
});

gpuTest("a table looked up twice gets both gradients, merged", async (e) => {
  const [rows, cols] = [9, 4];
  const a = randomInts(15, 3, 0, rows);
  const b = randomInts(15, 4, 2, 6);
  await checkOp(e, {
    name: "embedding twice",
    inputs: [
      { data: randomArray(rows * cols, 5), shape: [rows, cols], grad: true },
      { data: a, shape: [3, 5] },
      { data: b, shape: [3, 5] },
    ],
    gpu: ([table, ia, ib]) => add(embedding(table, ia), embedding(table, ib)),
    ref: ([table]) => {
      const ya = lookupRef(table, a, cols);
      const yb = lookupRef(table, b, cols);
      return ya.map((v, i) => v + yb[i]);
    },
  });
});

gpuTest(
  "embedding windows the table, output and gradient when they exceed a binding",
  async (e) => {
    // 1 KiB bindings: 48-row windows of the 101-row table, of the 120 outputs and of dy.
    await withBindingLimit(e, 1024, async () => {
      const [rows, cols] = [101, 5];
      const ids = randomInts(120, 11, 0, rows);
      ids.set([0, 47, 48, 95, 96, 100, 100, 48], 30);
      await checkOp(e, {
        name: "windowed embedding",
        inputs: [
          { data: randomArray(rows * cols, 12), shape: [rows, cols], grad: true },
          { data: ids, shape: [4, 30] },
        ],
        gpu: ([table, idsT]) => embedding(table, idsT),
        ref: ([table]) => lookupRef(table, ids, cols),
        ...EXACT,
        maxFdElements: 120,
      });
    });
  },
);

gpuTest(
  "embedding backward sums repeated ids in a fixed order (bit-identical reruns)",
  async (e) => {
    const [rows, cols] = [5, 8];
    const ids = randomInts(2000, 21, 0, rows);
    const runOnce = async () => {
      const table = e.tensor(randomArray(rows * cols, 22), [rows, cols]);
      table.requiresGrad = true;
      e.startTape();
      const out = embedding(table, e.tensor(ids, [2000]));
      e.backward(out, e.tensor(randomArray(2000 * cols, 23, -10, 10), out.shape));
      const [g] = table.sparseGrads;
      assert.deepEqual([...g.ids], [0, 1, 2, 3, 4]);
      assert.deepEqual([...(await g.idsGpu.read())], [0, 1, 2, 3, 4]);
      return await g.rows.readF32();
    };
    const first = await runOnce();
    const second = await runOnce();
    assert.deepEqual(new Uint32Array(second.buffer), new Uint32Array(first.buffer));
  },
);

gpuTest("idsToCsr lists each distinct id's positions in ascending order", () => {
  const { unique, csr } = idsToCsr(new Int32Array([5, 2, 5, 9, 2, 5]));
  assert.deepEqual([...unique], [2, 5, 9]);
  assert.deepEqual([...csr], [0, 2, 5, 6, 1, 4, 0, 2, 5, 3]);
});

gpuTest("sparse rows densify, add into a dense matrix and merge", async (e) => {
  const sparse = (ids: number[], rows: number[]) => ({
    ids: new Int32Array(ids),
    idsGpu: e.tensor(new Int32Array(ids), [ids.length]),
    rows: e.tensor(new Float32Array(rows), [ids.length, 2]),
  });
  const s1 = sparse([1, 3], [1, 2, 3, 4]);
  const s2 = sparse([0, 3, 4], [10, 20, 30, 40, 50, 60]);
  assert.deepEqual([...(await sparseRowsToDense(s1, 5).read())], [0, 0, 1, 2, 0, 0, 3, 4, 0, 0]);
  const merged = mergeSparseRows([s1, s2]);
  assert.deepEqual([...merged.ids], [0, 1, 3, 4]);
  assert.deepEqual([...(await merged.idsGpu.read())], [0, 1, 3, 4]);
  assert.deepEqual([...(await merged.rows.read())], [10, 20, 1, 2, 33, 44, 50, 60]);
  const dense = e.tensor(new Float32Array(10).fill(1), [5, 2]);
  addSparseRows(dense, s2);
  assert.deepEqual([...(await dense.read())], [11, 21, 1, 1, 1, 1, 31, 41, 51, 61]);
  assert.throws(() => sparseRowsToDense(s2, 4), ShapeError);
});

gpuTest(
  "embedding refuses ids outside the table, naming the id, its position and the size",
  (e) => {
    const table = e.tensor(new Float32Array(6), [3, 2]);
    assert.throws(
      () => embedding(table, e.tensor(new Int32Array([0, 1, 2, 2, 1, 3]), [2, 3])),
      /id 3 at position \[1, 2\] is outside the table's 3 rows \[0, 3\)/,
    );
    assert.throws(
      () => embedding(table, e.tensor(new Int32Array([-1]), [1])),
      /id -1 at position \[0\] is outside/,
    );
  },
);

gpuTest(
  "embedding refuses wrong dtypes, ranks and, for a gradient, ids without a host copy",
  (e) => {
    const table = e.tensor(new Float32Array(6), [3, 2]);
    assert.throws(() => embedding(table, e.tensor(new Float32Array([0]), [1])), ShapeError);
    assert.throws(
      () => embedding(e.tensor(new Float32Array(6), [6]), e.tensor(new Int32Array([0]), [1])),
      ShapeError,
    );
    table.requiresGrad = true;
    e.startTape();
    try {
      assert.throws(() => embedding(table, e.empty([2], "i32")), /no host copy/);
    } finally {
      e.tape = null;
    }
  },
);

/** Ids [n] with no host copy: written into a GPU buffer by a copy, as a GPU sampler does. */
function gpuOnlyIds(e: Engine, ids: Int32Array) {
  const source = e.tensor(ids, [ids.length], "i32");
  const onGpu = e.empty([ids.length], "i32", "GPU-only ids");
  e.gpu.copy(source.storage, 0, onGpu.storage, 0, ids.length * 4);
  source.dispose();
  return onGpu;
}

smallBindingTest(
  "embedding of GPU-only ids over several table windows; outside ids give 0",
  async (e) => {
    const [rows, cols] = [300, 70]; // 84,000 bytes: two windows of a 65,536-byte binding
    const data = randomArray(rows * cols, 5);
    const table = e.tensor(data, [rows, cols]);
    const ids = Int32Array.from([0, 299, 233, 234, 1, 150, -1, 300]);
    const got = await embedding(table, gpuOnlyIds(e, ids)).read();
    const want = new Float32Array(ids.length * cols);
    ids.forEach((id, p) => {
      if (id >= 0 && id < rows) want.set(data.subarray(id * cols, (id + 1) * cols), p * cols);
    });
    assert.deepEqual(got, want);
  },
);

/**
 * The gradient rows of embedding(table [rows, cols], ids) for upstream dy, against float64 sums;
 * returns the rows as read so that callers can compare runs.
 */
async function checkBackwardRows(
  e: Engine,
  rows: number,
  cols: number,
  ids: Int32Array,
  dy: Float32Array,
): Promise<Float32Array> {
  const table = e.tensor(new Float32Array(rows * cols), [rows, cols]);
  table.requiresGrad = true;
  e.startTape();
  const out = embedding(table, e.tensor(ids, [ids.length]));
  e.backward(out, e.tensor(dy, out.shape));
  const [g] = table.sparseGrads;
  const unique = [...new Set(ids)].sort((a, b) => a - b);
  assert.deepEqual([...g.ids], unique);
  const want = new Float64Array(unique.length * cols);
  ids.forEach((id, p) => {
    const u = unique.indexOf(id);
    for (let c = 0; c < cols; c++) want[u * cols + c] += dy[p * cols + c];
  });
  const got = await g.rows.readF32();
  assertClose(got, want, `gradient rows of ${ids.length} ids`, 1e-4, 1e-3);
  return got;
}

/** 70,000 occurrences of id 0 (past llvmpipe's ~65,535 loop iterations) among a few others. */
function popularIds(): Int32Array {
  const ids = new Int32Array(70_010);
  [3, 1, 4, 1, 5, 9, 2, 6, 5, 3].forEach((id, k) => (ids[k * 7_001 + 13] = id));
  return ids;
}

gpuTest(
  "embedding backward sums an id that occurs 70,000 times (over an invocation's loop budget)",
  async (e) => {
    const ids = popularIds();
    const cols = 3;
    const dy = randomArray(ids.length * cols, 31, 0, 1);
    const first = await checkBackwardRows(e, 10, cols, ids, dy);
    const second = await checkBackwardRows(e, 10, cols, ids, dy);
    assert.deepEqual(new Uint32Array(second.buffer), new Uint32Array(first.buffer));
  },
);

gpuTest("embedding backward splits a popular id's walk and windows dy together", async (e) => {
  // 512 KiB bindings hold the 70,010 ids and their CSR but not dy (70,010 × 4 floats): three
  // windows of 32,768 positions, each walked in passes.
  await withBindingLimit(e, 512 * 1024, async () => {
    const ids = popularIds();
    await checkBackwardRows(e, 10, 4, ids, randomArray(ids.length * 4, 32, -1, 1));
  });
});

gpuTest("occurrencePasses cuts only a software adapter's lists over the loop budget", () => {
  assert.deepEqual(occurrencePasses(70_000, true), { take: LOOP_BUDGET, passes: 3 });
  assert.deepEqual(occurrencePasses(LOOP_BUDGET, true), { take: LOOP_BUDGET, passes: 1 });
  assert.deepEqual(occurrencePasses(300, true), { take: 300, passes: 1 });
  assert.deepEqual(occurrencePasses(70_000, false), { take: 70_000, passes: 1 });
  assert.deepEqual(occurrencePasses(0, true), { take: 1, passes: 1 });
});
