import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { type PairLossOptions, pairLossRows } from "../../src/loss/pair_losses.ts";
import { l2Normalize } from "../../src/tensor/ops/normalize.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";

type Opts = Omit<PairLossOptions, "scalars">;

/** float64 reference of every mode, row by row, straight from the formulas. */
function pairLossReference(s: Float64Array, o: Opts, scalars?: Float64Array): Float64Array {
  const rows = o.groupsA.length;
  const cols = o.groupsB.length;
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const pairs = [...Array(cols).keys()].filter((j) => !(o.skipSelf && i === j));
    const pos = pairs.filter((j) => o.groupsA[i] === o.groupsB[j]);
    const neg = pairs.filter((j) => o.groupsA[i] !== o.groupsB[j]);
    const at = (j: number) => s[i * cols + j];
    if (o.mode === "margin") {
      const hard = [...neg].sort((a, b) => at(b) - at(a)).slice(0, o.negatives);
      out[i] = pos.reduce((a, j) => a + 2 - 2 * at(j), 0) +
        hard.reduce((a, j) => a + Math.max(o.margin! - Math.sqrt(2 - 2 * at(j)), 0) ** 2, 0);
    } else if (o.mode === "infonce") {
      const t = o.temperature!;
      const lse = Math.log(pairs.reduce((a, j) => a + Math.exp(at(j) / t), 0));
      out[i] = pos.length ? lse - pos.reduce((a, j) => a + at(j) / t, 0) / pos.length : 0;
    } else {
      const [tp, b] = scalars!;
      out[i] = pairs.reduce((a, j) => {
        const label = o.groupsA[i] === o.groupsB[j] ? 1 : -1;
        return a + Math.log(1 + Math.exp(-label * (at(j) * Math.exp(tp) + b)));
      }, 0);
    }
  }
  return out;
}

const groups = (n: number, k: number) =>
  Int32Array.from({ length: n }, (_, i) => Math.floor(i / k));

gpuTest("margin loss with 3 hard negatives matches float64 and finite differences", async (e) => {
  const g = groups(7, 2);
  const o: Opts = {
    mode: "margin",
    groupsA: g,
    groupsB: g,
    skipSelf: true,
    margin: 0.9,
    negatives: 3,
  };
  await checkOp(e, {
    name: "margin",
    inputs: [{ data: randomArray(49, 5, -0.9, 0.9), shape: [7, 7], grad: true }],
    gpu: ([s]) => pairLossRows(s, o),
    ref: ([s]) => pairLossReference(s, o),
  });
});

gpuTest("InfoNCE with several positives matches float64 and finite differences", async (e) => {
  const g = groups(9, 3);
  const o: Opts = { mode: "infonce", groupsA: g, groupsB: g, skipSelf: true, temperature: 0.3 };
  await checkOp(e, {
    name: "infonce",
    inputs: [{ data: randomArray(81, 6, -1, 1), shape: [9, 9], grad: true }],
    gpu: ([s]) => pairLossRows(s, o),
    ref: ([s]) => pairLossReference(s, o),
  });
});

gpuTest(
  "SigLIP matches float64 and finite differences, temperature and bias included",
  async (e) => {
    const o: Opts = {
      mode: "siglip",
      groupsA: groups(5, 1),
      groupsB: groups(6, 1),
      skipSelf: false,
    };
    await checkOp(e, {
      name: "siglip",
      inputs: [
        { data: randomArray(30, 8, -1, 1), shape: [5, 6], grad: true },
        { data: Float32Array.from([0.7, -1.3]), shape: [2], grad: true },
      ],
      gpu: ([s, scalars]) => pairLossRows(s, { ...o, scalars }),
      ref: ([s, scalars]) => pairLossReference(s, o, scalars),
    });
  },
);

gpuTest("a hand-checked margin case: one positive, one hard negative", async (e) => {
  // Rows 0 and 1 are one client (s = 0.5, d² = 1); row 2 another; s(0,2) = 0.98: d = 0.2.
  const s = e.tensor(Float32Array.from([1, 0.5, 0.98, 0.5, 1, -1, 0.98, -1, 1]), [3, 3]);
  const g = Int32Array.from([0, 0, 1]);
  const rows = await pairLossRows(s, {
    mode: "margin",
    groupsA: g,
    groupsB: g,
    skipSelf: true,
    margin: 0.5,
    negatives: 1,
  }).read();
  assert.ok(Math.abs(rows[0] - (1 + 0.09)) < 1e-5, `row 0: ${rows[0]}`);
  assert.ok(Math.abs(rows[1] - 1) < 1e-5, `row 1: ${rows[1]}`);
  assert.ok(Math.abs(rows[2] - 0.09) < 1e-5, `row 2: ${rows[2]}`);
});

for (const shape of [[1, 1], [3, 70]]) {
  gpuTest(`l2Normalize ${shape.join("x")} matches float64 and finite differences`, async (e) => {
    await checkOp(e, {
      name: "l2Normalize",
      inputs: [{ data: randomArray(shape[0] * shape[1], 4, -2, 2), shape, grad: true }],
      gpu: ([x]) => l2Normalize(x),
      ref: ([x]) => {
        const out = new Float64Array(x.length);
        for (let r = 0; r < shape[0]; r++) {
          const row = x.subarray(r * shape[1], (r + 1) * shape[1]);
          const n = Math.hypot(...row);
          row.forEach((v, c) => (out[r * shape[1] + c] = v / n));
        }
        return out;
      },
    });
  });
}
