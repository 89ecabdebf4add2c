/** Row-wise L2 normalisation (contrastive and alignment losses compare unit vectors). */
import shader from "../../../shaders/l2_normalize.wgsl" with { type: "text" };
import { assertDType, declareKernel, groupsFor } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";

const L2_NORMALIZE_KERNEL = declareKernel({
  name: "l2 normalize",
  source: shader,
  params: { rows: "u32", cols: "u32", eps: "f32" },
  buffers: ["x", "y", "g", "dx"],
});

/** Columns a row may have: its loops take three iterations a column. */
const MAX_COLS = Math.floor(LOOP_BUDGET / 3);

/** x [rows, cols] → each row divided by max(its L2 norm, eps). */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  assertDType("l2Normalize", x, "f32");
  if (x.rank !== 2) {
    throw new ShapeError("l2Normalize", `expects [rows, cols], got ${shapeString(x.shape)}`);
  }
  const [rows, cols] = x.shape;
  if (cols > MAX_COLS) throw new RangeError(`l2Normalize: ${cols} columns, at most ${MAX_COLS}`);
  const e = x.engine;
  const y = e.empty(x.shape, "f32", "l2 normalized");
  const params = { rows, cols, eps };
  const workgroups = groupsFor(e, rows, 64);
  if (rows) {
    L2_NORMALIZE_KERNEL.dispatch(e.gpu, {
      entry: "forward",
      label: "l2 normalize forward",
      params,
      buffers: { x: x.storage, y: y.storage },
      workgroups,
    });
  }
  return e.record({
    op: "l2Normalize",
    inputs: [x],
    output: y,
    backward: (g) => {
      const dx = e.empty(x.shape, "f32", "l2 normalize dx");
      if (rows) {
        L2_NORMALIZE_KERNEL.dispatch(e.gpu, {
          entry: "backward",
          label: "l2 normalize backward",
          params,
          buffers: { x: x.storage, g: g.storage, dx: dx.storage },
          workgroups,
        });
      }
      return [dx];
    },
  });
}
