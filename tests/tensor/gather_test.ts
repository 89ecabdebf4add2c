import assert from "node:assert/strict";
import { gatherRows } from "../../src/tensor/ops/gather.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";

for (
  const [n, d, rows] of [[1, 1, [0]], [7, 3, [6, 0, 2]], [50, 13, [49, 1, 17, 33, 2]], [
    5,
    4,
    [],
  ]] as const
) {
  gpuTest(`gatherRows ${n}x${d} picking ${rows.length} rows matches float64 and FD`, async (e) => {
    const idx = Int32Array.from(rows);
    await checkOp(e, {
      name: "gatherRows",
      inputs: [{ data: randomArray(n * d, n + d), shape: [n, d], grad: true }],
      gpu: ([x]) => gatherRows(x, idx),
      ref: ([x]) => {
        const out = new Float64Array(idx.length * d);
        idx.forEach((r, i) => out.set(x.subarray(r * d, (r + 1) * d), i * d));
        return out;
      },
    });
  });
}

gpuTest("gatherRows refuses repeated and out-of-range rows", (e) => {
  const x = e.tensor(new Float32Array(6), [3, 2]);
  assert.throws(() => gatherRows(x, new Int32Array([1, 1])), /row 1 appears twice/);
  assert.throws(() => gatherRows(x, new Int32Array([3])), /row 3 at 0 is outside \[0, 3\)/);
});
