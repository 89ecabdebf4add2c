/**
 * The transpose of a matrix, materialised (the engine's tensors are contiguous, so a transposed
 * view would make every kernel handle strides). Tensors larger than one storage binding are moved
 * block by block: a window of whole rows of x against a window of whole rows of xᵀ.
 */
import shader from "../../../shaders/transpose.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { declareKernel, groupsFor, rowWindows } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";

const TRANSPOSE_KERNEL = declareKernel({
  name: "transpose",
  source: shader,
  params: {
    rows: "u32",
    cols: "u32",
    row0: "u32",
    col0: "u32",
    src_stride: "u32",
    src_col: "u32",
    dst_stride: "u32",
    dst_col: "u32",
  },
  buffers: ["x", "y"],
});

/** Side of the square tile one workgroup moves (shaders/transpose.wgsl). */
const TILE = 16;

/**
 * The kernels: `tiled` through workgroup memory (a GPU's), `direct` an element per invocation (a
 * CPU adapter's, where a barrier splits the workgroup's loop over its invocations: 5× faster
 * than the tile on 1024 × 2816 on llvmpipe).
 */
export type TransposeVariant = "tiled" | "direct";

/**
 * xᵀ [cols, rows] of x [rows, cols]; the gradient is the transpose of the output's. The variant
 * defaults to the adapter's.
 */
export function transpose(
  x: Tensor,
  variant: TransposeVariant = x.engine.gpu.isSoftware ? "direct" : "tiled",
): Tensor {
  if (x.shape.length !== 2 || x.dtype !== "f32") {
    throw new ShapeError(
      "transpose",
      `expects a 2-D f32 matrix, got ${x.dtype} ${shapeString(x.shape)}`,
    );
  }
  const e = x.engine;
  const y = e.empty([x.shape[1], x.shape[0]], "f32", `${x.name || "x"}ᵀ`);
  transposeInto(e, x, y, variant === "tiled");
  return e.record({
    op: "transpose",
    inputs: [x],
    output: y,
    backward: (g) => [transpose(g, variant)],
  });
}

function transposeInto(e: Engine, x: Tensor, y: Tensor, tiled: boolean): void {
  const [rows, cols] = x.shape;
  if (rows === 0 || cols === 0) return;
  // A dispatch covers at most this many rows or columns: the tiled grid's workgroups per
  // dimension. The direct grid's n · m invocations (within one window of x: at most a binding's
  // floats) are folded into two dimensions by groupsFor.
  const span = TILE * e.gpu.limits.maxComputeWorkgroupsPerDimension;
  for (const src of rowWindows(e, rows, cols * 4)) {
    for (const dst of rowWindows(e, cols, rows * 4)) {
      const buffers = {
        x: { alloc: x.storage, offset: src.offset, size: src.size },
        y: { alloc: y.storage, offset: dst.offset, size: dst.size },
      };
      for (let row0 = 0; row0 < src.rows; row0 += span) {
        for (let col0 = 0; col0 < dst.rows; col0 += span) {
          const n = Math.min(span, src.rows - row0);
          const m = Math.min(span, dst.rows - col0);
          TRANSPOSE_KERNEL.dispatch(e.gpu, {
            entry: tiled ? "tiled" : "direct",
            params: {
              rows: n,
              cols: m,
              row0,
              col0,
              src_stride: cols,
              src_col: dst.row,
              dst_stride: rows,
              dst_col: src.row,
            },
            buffers,
            workgroups: tiled
              ? [Math.ceil(m / TILE), Math.ceil(n / TILE)]
              : groupsFor(e, n * m, 64),
          });
        }
      }
    }
  }
}
