/** Bias addition over the last axis; its bias gradient is a deterministic column sum. */
import biasShader from "../../../shaders/bias.wgsl" with { type: "text" };
import { assertDType, declareKernel, rowWindows } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { columnSums } from "./reduce.ts";
import { chunkRowsFor, columnChunkGrid } from "./windowed.ts";

const BIAS_KERNEL = declareKernel({
  name: "add bias",
  source: biasShader,
  params: { rows: "u32", cols: "u32", chunk_rows: "u32" },
  buffers: ["x", "out", "b"],
});

/** x [..., N] + b [N]. Backward: dx = g, db = g summed over every row. */
export function addBias(x: Tensor, b: Tensor): Tensor {
  assertDType("addBias", x, "f32");
  assertDType("addBias", b, "f32");
  const cols = x.shape[x.rank - 1];
  if (x.rank === 0 || b.rank !== 1 || b.shape[0] !== cols) {
    throw new ShapeError(
      "addBias",
      `bias ${shapeString(b.shape)} does not match the last axis of x ${shapeString(x.shape)}`,
    );
  }
  const e = x.engine;
  const out = e.empty(x.shape, "f32", "addBias");
  const rows = cols === 0 ? 0 : x.size / cols;
  for (const w of rowWindows(e, rows, cols * 4)) {
    const chunkRows = chunkRowsFor(e, w.rows);
    BIAS_KERNEL.dispatch(e.gpu, {
      params: { rows: w.rows, cols, chunk_rows: chunkRows },
      buffers: {
        x: { alloc: x.storage, offset: w.offset, size: w.size },
        out: { alloc: out.storage, offset: w.offset, size: w.size },
        b: b.storage,
      },
      workgroups: columnChunkGrid(e, cols, w.rows, chunkRows),
    });
  }
  return e.record({
    op: "addBias",
    inputs: [x, b],
    output: out,
    backward: (g) => [g, b.requiresGrad ? columnSums(g) : null],
  });
}
