/** Row gather with distinct indices (e.g. the non-padded positions of a batch) and its backward. */
import shader from "../../../shaders/gather_rows.wgsl" with { type: "text" };
import type { Tensor } from "../tensor.ts";
import { ShapeError, shapeString } from "../tensor.ts";
import { assertDType, declareKernel, groupsFor } from "../kernel.ts";

const GATHER_KERNEL = declareKernel({
  name: "gather rows",
  source: shader,
  params: { rows: "u32", cols: "u32" },
  buffers: ["index", "src", "dst"],
});

/** x [N, D], rows: distinct row numbers in [0, N) → [rows.length, D]. */
export function gatherRows(x: Tensor, rows: Int32Array): Tensor {
  assertDType("gatherRows", x, "f32");
  if (x.rank !== 2) {
    throw new ShapeError("gatherRows", `expects [N, D], got ${shapeString(x.shape)}`);
  }
  const [n, d] = x.shape;
  const seen = new Uint8Array(n);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (!(r >= 0 && r < n)) {
      throw new RangeError(`gatherRows: row ${r} at ${i} is outside [0, ${n})`);
    }
    if (seen[r]) throw new RangeError(`gatherRows: row ${r} appears twice`);
    seen[r] = 1;
  }
  const e = x.engine;
  const index = e.tensor(rows, [rows.length], "i32", "gather index");
  const out = e.empty([rows.length, d], "f32", "gathered rows");
  const run = (entry: string, src: Tensor, dst: Tensor) =>
    GATHER_KERNEL.dispatch(e.gpu, {
      label: `gather rows ${entry}`,
      entry,
      params: { rows: rows.length, cols: d },
      buffers: { index: index.storage, src: src.storage, dst: dst.storage },
      workgroups: groupsFor(e, rows.length * d),
    });
  if (rows.length) run("gather", x, out);
  return e.record({
    op: "gatherRows",
    inputs: [x],
    output: out,
    backward: (g) => {
      const dx = e.zeros(x.shape, "f32", "gather dx");
      if (rows.length) run("scatter", g, dx);
      return [dx];
    },
  });
}
