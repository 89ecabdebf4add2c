import assert from "node:assert/strict";
import { ceBlockCols, CROSS_ENTROPY_CHOICE, crossEntropyRows } from "../../src/loss/ce.ts";
import { LOOP_BUDGET } from "../../src/gpu/device.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { checkOp, gpuTest, randomArray, randomInts } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

const FORWARDS = CROSS_ENTROPY_CHOICE.variants.map((v) => v.name);

/** Runs fn with the engine's cross-entropy forward set to `name`, then restores the default. */
async function withForward(e: Engine, name: string, fn: () => Promise<void>): Promise<void> {
  CROSS_ENTROPY_CHOICE.use(e, name);
  try {
    await fn();
  } finally {
    CROSS_ENTROPY_CHOICE.use(e, CROSS_ENTROPY_CHOICE.defaultFor(e).name);
  }
}

function ceRef(logits: Float64Array, targets: Int32Array, cols: number, ignore: number) {
  const rows = targets.length;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === ignore) continue;
    const row = logits.subarray(r * cols, (r + 1) * cols);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    out[r] = lse - row[targets[r]];
  }
  return out;
}

for (const [rows, cols] of [[1, 1], [1, 7], [13, 5], [37, 130], [70, 3]]) {
  gpuTest(`cross entropy ${rows}x${cols} matches float64 and finite differences`, async (e) => {
    const targets = randomInts(rows, rows * 31 + cols, 0, cols);
    if (rows > 2) targets[1] = -1; // an ignored (padding) row
    for (const forward of FORWARDS) {
      await withForward(e, forward, () =>
        checkOp(e, {
          inputs: [{
            data: randomArray(rows * cols, rows + cols, -6, 6),
            shape: [rows, cols],
            grad: true,
          }],
          name: `crossEntropyRows, ${forward}`,
          gpu: ([logits]) => crossEntropyRows(logits, e.tensor(targets, [rows])),
          ref: ([logits]) => ceRef(logits, targets, cols, -1),
          rtol: 1e-4,
          atol: 1e-5,
        }));
    }
  });
}

for (
  const [rows, cols, first, valid] of [
    [1, 4, 0, 1],
    [9, 8, 0, 7],
    [6, 12, 0, 10],
    [5, 6, 1, 6],
    [7, 12, 1, 10],
    [3, 3, 2, 3],
  ]
) {
  gpuTest(
    `cross entropy ${rows}x${cols} over columns [${first}, ${valid}) ignores the others`,
    async (e) => {
      const targets = randomInts(rows, rows + valid, first, valid);
      const width = valid - first;
      // The float64 reference sees only the columns in the softmax; the others get no gradient.
      const slice = (logits: Float64Array) => {
        const out = new Float64Array(rows * width);
        for (let r = 0; r < rows; r++) {
          out.set(logits.subarray(r * cols + first, r * cols + valid), r * width);
        }
        return out;
      };
      for (const forward of FORWARDS) {
        await withForward(e, forward, () =>
          checkOp(e, {
            name: `crossEntropyRows firstValidCol validCols, ${forward}`,
            inputs: [{
              data: randomArray(rows * cols, rows * cols + valid, -6, 6),
              shape: [rows, cols],
              grad: true,
            }],
            gpu: ([logits]) =>
              crossEntropyRows(logits, e.tensor(targets, [rows]), {
                firstValidCol: first,
                validCols: valid,
              }),
            ref: ([logits]) => ceRef(slice(logits), targets.map((t) => t - first), width, -1),
            rtol: 1e-4,
            atol: 1e-5,
          }));
      }
    },
  );
}

gpuTest("cross entropy is stable for huge logits", async (e) => {
  const logits = e.tensor(new Float32Array([1e4, -1e4, 0, 3e4, 3e4, 3e4]), [2, 3]);
  for (const forward of FORWARDS) {
    await withForward(e, forward, async () => {
      const loss = await crossEntropyRows(logits, e.tensor(new Int32Array([0, 2]), [2])).read();
      assert.ok(Math.abs(loss[0]) < 1e-3, `${forward}: got ${loss[0]}`);
      assert.ok(Math.abs(loss[1] - Math.log(3)) < 1e-3, `${forward}: got ${loss[1]}`);
    });
  }
});

gpuTest("cross entropy refuses a target outside the catalogue and mismatched shapes", (e) => {
  const logits = e.tensor(new Float32Array(6), [2, 3]);
  assert.throws(
    () => crossEntropyRows(logits, e.tensor(new Int32Array([0, 3]), [2])),
    /target 3 at row 1 is outside \[0, 3\)/,
  );
  assert.throws(
    () => crossEntropyRows(logits, e.tensor(new Int32Array([0, 1, 2]), [3])),
    /crossEntropy: logits \[2, 3\] and targets \[3\]/,
  );
  assert.throws(
    () => crossEntropyRows(logits, e.tensor(new Int32Array([0, 2]), [2]), { validCols: 2 }),
    /target 2 at row 1 is outside \[0, 2\)/,
  );
  assert.throws(
    () => crossEntropyRows(logits, e.tensor(new Int32Array([0, 0]), [2]), { validCols: 4 }),
    /validCols 4 is outside \[1, 3\]/,
  );
  assert.throws(
    () => crossEntropyRows(logits, e.tensor(new Int32Array([0, 2]), [2]), { firstValidCol: 1 }),
    /target 0 at row 0 is outside \[1, 3\)/,
  );
  assert.throws(
    () =>
      crossEntropyRows(logits, e.tensor(new Int32Array([1, 1]), [2]), {
        firstValidCol: 2,
        validCols: 2,
      }),
    /firstValidCol 2 is outside \[0, 2\)/,
  );
});

// Rows in several binding windows and several row chunks of the backward's grid, with ignored
// rows: a vec4 width (20) and a scalar one (10), each over [1, valid) as a recommender's logits.
for (const [cols, valid, bytes] of [[20, 19, 2560], [10, 9, 1280]]) {
  gpuTest(`cross entropy 41x${cols} over binding windows of ${bytes} bytes`, async (e) => {
    const rows = 41;
    assert.ok(rows * cols * 4 > bytes);
    const targets = randomInts(rows, cols, 1, valid);
    targets[3] = targets[40] = -1;
    const width = valid - 1;
    const slice = (logits: Float64Array) => {
      const out = new Float64Array(rows * width);
      for (let r = 0; r < rows; r++) {
        out.set(logits.subarray(r * cols + 1, r * cols + valid), r * width);
      }
      return out;
    };
    for (const forward of FORWARDS) {
      await withForward(e, forward, () =>
        withBindingLimit(e, bytes, () =>
          checkOp(e, {
            name: `crossEntropyRows windows, ${forward}`,
            inputs: [{
              data: randomArray(rows * cols, cols, -6, 6),
              shape: [rows, cols],
              grad: true,
            }],
            gpu: ([logits]) =>
              crossEntropyRows(logits, e.tensor(targets, [rows]), {
                firstValidCol: 1,
                validCols: valid,
              }),
            ref: ([logits]) =>
              ceRef(slice(logits), targets.map((t) => (t < 0 ? t : t - 1)), width, -1),
            rtol: 1e-4,
            atol: 1e-5,
          })));
    }
  });
}

gpuTest("cross entropy rows are cut in blocks of columns within a software loop budget", (e) => {
  const gpu = e.gpu as { isSoftware: boolean };
  const saved = gpu.isSoftware;
  try {
    gpu.isSoftware = true;
    assert.equal(ceBlockCols(e, 1000), 1000);
    assert.equal(ceBlockCols(e, 2_200_000), 64 * LOOP_BUDGET / 2);
    gpu.isSoftware = false;
    assert.equal(ceBlockCols(e, 2_200_000), 2_200_000);
  } finally {
    gpu.isSoftware = saved;
  }
});

// A workgroup per row walks ~2 · cols / 64 trips a thread: past ~2.1M columns llvmpipe cut the
// walk short ([2, 2.2M] gave loss 12.56, want 16.11). Now blocks of 1,048,576 columns, joined.
gpuTest("cross entropy of rows of 2.2M columns matches float64", async (e) => {
  const [rows, first, valid, cols] = [2, 1, 2_200_001, 2_200_004];
  const data = randomArray(rows * cols, 41, -8, 8);
  const targets = new Int32Array([1_879_993, 5]);
  const want = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = first; c < valid; c++) m = Math.max(m, data[r * cols + c]);
    let z = 0;
    for (let c = first; c < valid; c++) z += Math.exp(data[r * cols + c] - m);
    want[r] = m + Math.log(z) - data[r * cols + targets[r]];
  }
  for (const forward of FORWARDS) {
    await withForward(e, forward, async () => {
      await e.tidyAsync(async () => {
        const logits = e.tensor(data, [rows, cols]);
        logits.requiresGrad = true;
        e.startTape();
        const loss = crossEntropyRows(logits, e.tensor(targets, [rows]), {
          firstValidCol: first,
          validCols: valid,
        });
        const got = await loss.readF32();
        for (let r = 0; r < rows; r++) {
          assert.ok(Math.abs(got[r] - want[r]) <= 1e-4 * want[r], `${forward} row ${r}: ${got[r]}`);
        }
        // The gradient reads the row's LSE: softmax − 1 at the target.
        e.backward(loss, e.tensor(new Float32Array([1, 1]), [rows]));
        const g = await logits.grad!.readF32();
        for (let r = 0; r < rows; r++) {
          const lse = want[r] + data[r * cols + targets[r]];
          const at = r * cols + targets[r];
          const expect = Math.exp(data[at] - lse) - 1;
          assert.ok(Math.abs(g[at] - expect) <= 1e-5, `${forward} dlogits row ${r}: ${g[at]}`);
          assert.equal(g[r * cols], 0);
        }
      });
    });
  }
});
