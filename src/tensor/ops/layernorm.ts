/** Layer normalisation over the last axis, with deterministic parameter gradients. */
import shader from "../../../shaders/layernorm.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { assertDType, declareKernel, groupsFor, type RowWindow, rowWindows } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { columnChunks, finishColumnSums } from "./reduce.ts";
import { columnChunkGrid } from "./windowed.ts";
import { LOOP_BUDGET } from "../../gpu/device.ts";

const LAYER_NORM_KERNEL = declareKernel({
  name: "layer norm",
  source: shader,
  params: {
    rows: "u32",
    cols: "u32",
    eps: "f32",
    row0: "u32",
    chunk_rows: "u32",
    chunk0: "u32",
  },
  buffers: ["x", "gamma", "beta", "y", "mean", "rstd", "g", "dx", "partial_sums"],
});

const WG = 64;
/**
 * At most 8 threads share a row: on a GPU 8 lanes still read whole 32-byte sectors, and each tree
 * level is a barrier, which software rasterisers (llvmpipe) pay dearly for: 8 is about 3× faster
 * there than 64 at D = 256.
 */
const MAX_THREADS_PER_ROW = 8;

/**
 * Threads per row: about 32 elements each, a power of two up to MAX_THREADS_PER_ROW. Fewer
 * threads per row mean fewer barrier levels, which llvmpipe pays for on every row; a GPU is
 * memory-bound on rows this short either way. RMSNorm shares it.
 */
export function threadsPerRow(cols: number): number {
  let tpr = 1;
  while (tpr < MAX_THREADS_PER_ROW && tpr * 32 < cols) tpr *= 2;
  return tpr;
}

/**
 * Loop trips of one invocation of a row kernel whose segment of `tpr` threads walks `cols`
 * (elements or vec4s) `walks` times, with two segment-sum trees of log2(tpr) levels.
 */
export function rowLoops(cols: number, tpr: number, walks: number): number {
  return walks * Math.ceil(cols / tpr) + 2 * Math.log2(tpr);
}

/**
 * threadsPerRow, or on a software adapter as many more (up to a workgroup of WG) as keep an
 * invocation's loops within LOOP_BUDGET; a row too long even then is refused. llvmpipe cut
 * layerNorm's forward short past ~174,760 columns at 8 threads ([2, 180,000] left row 1's tail
 * at 0).
 */
export function rowThreads(
  e: Engine,
  op: string,
  x: Tensor,
  cols: number,
  walks: number,
): number {
  let tpr = threadsPerRow(cols);
  if (!e.gpu.isSoftware) return tpr;
  while (tpr < WG && rowLoops(cols, tpr, walks) > LOOP_BUDGET) tpr *= 2;
  const loops = rowLoops(cols, tpr, walks);
  if (loops > LOOP_BUDGET) {
    throw new ShapeError(
      op,
      `rows of ${shapeString(x.shape)} would loop ${loops} times in an invocation even at ${WG} ` +
        `threads a row, over a software adapter's budget of ${LOOP_BUDGET}; use shorter rows ` +
        "or a GPU",
    );
  }
  return tpr;
}

function checkShapes(x: Tensor, gamma: Tensor, beta: Tensor): number {
  for (const t of [x, gamma, beta]) assertDType("layerNorm", t, "f32");
  const cols = x.rank === 0 ? 0 : x.shape[x.rank - 1];
  for (const [what, t] of [["gamma", gamma], ["beta", beta]] as const) {
    if (cols === 0 || t.rank !== 1 || t.shape[0] !== cols) {
      throw new ShapeError(
        "layerNorm",
        `${what} ${shapeString(t.shape)} does not match the last axis of x ${shapeString(x.shape)}`,
      );
    }
  }
  return cols;
}

const win = (t: Tensor, w: RowWindow) => ({ alloc: t.storage, offset: w.offset, size: w.size });

/**
 * (x - mean) / sqrt(var + eps) · gamma + beta over the last axis of x [..., D]; gamma, beta [D].
 * Backward gives dx, dgamma and dbeta (the latter two summed over rows in a fixed order).
 */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, eps = 1e-5): Tensor {
  const cols = checkShapes(x, gamma, beta);
  const e = x.engine;
  const rows = x.size / cols;
  // forward walks a row three times (mean, variance, output), backward_x twice.
  const tpr = rowThreads(e, "layerNorm", x, cols, 3);
  const rowsPerGroup = WG / tpr;
  const constants = { TPR: tpr };
  const windows = rowWindows(e, rows, cols * 4);
  const y = e.empty(x.shape, "f32", "layerNorm");
  const mean = e.empty([rows], "f32", "layerNorm mean");
  const rstd = e.empty([rows], "f32", "layerNorm rstd");
  for (const w of windows) {
    LAYER_NORM_KERNEL.dispatch(e.gpu, {
      label: "layer norm forward",
      entry: "forward",
      constants,
      params: { rows: w.rows, cols, eps, row0: w.row, chunk_rows: 0, chunk0: 0 },
      buffers: {
        x: win(x, w),
        gamma: gamma.storage,
        beta: beta.storage,
        y: win(y, w),
        mean: mean.storage,
        rstd: rstd.storage,
      },
      workgroups: groupsFor(e, w.rows, rowsPerGroup),
    });
  }
  const out = e.record({
    op: "layerNorm",
    inputs: [x, gamma, beta],
    output: y,
    backward: (g) => {
      let dx: Tensor | null = null;
      if (x.requiresGrad) {
        dx = e.empty(x.shape, "f32", "layerNorm dx");
        for (const w of windows) {
          LAYER_NORM_KERNEL.dispatch(e.gpu, {
            label: "layer norm backward",
            entry: "backward_x",
            constants,
            params: { rows: w.rows, cols, eps, row0: w.row, chunk_rows: 0, chunk0: 0 },
            buffers: {
              x: win(x, w),
              gamma: gamma.storage,
              mean: mean.storage,
              rstd: rstd.storage,
              g: win(g, w),
              dx: win(dx, w),
            },
            workgroups: groupsFor(e, w.rows, rowsPerGroup),
          });
        }
      }
      const [dgamma, dbeta] = gamma.requiresGrad || beta.requiresGrad
        ? parameterGrads(e, x, g, mean, rstd, rows, cols, gamma.requiresGrad, beta.requiresGrad)
        : [null, null];
      return [dx, dgamma, dbeta];
    },
  });
  // Only backward reads the statistics.
  if (!out.requiresGrad) {
    mean.dispose();
    rstd.dispose();
  }
  return out;
}

/** dgamma = Σ_rows g · x̂ and dbeta = Σ_rows g, through partial sums per chunk of rows. */
function parameterGrads(
  e: Engine,
  x: Tensor,
  g: Tensor,
  mean: Tensor,
  rstd: Tensor,
  rows: number,
  cols: number,
  wantGamma: boolean,
  wantBeta: boolean,
): [Tensor | null, Tensor | null] {
  const plan = columnChunks(e, rows, cols);
  const partials = e.empty([plan.chunks, 2 * cols], "f32", "layerNorm partials");
  for (const w of plan.windows) {
    LAYER_NORM_KERNEL.dispatch(e.gpu, {
      label: "layer norm parameter partials",
      entry: "param_partials",
      params: {
        rows: w.rows,
        cols,
        eps: 0,
        row0: w.row,
        chunk_rows: plan.chunkRows,
        chunk0: w.chunk0,
      },
      buffers: {
        x: win(x, w),
        mean: mean.storage,
        rstd: rstd.storage,
        g: win(g, w),
        partial_sums: partials.storage,
      },
      workgroups: columnChunkGrid(e, cols, w.rows, plan.chunkRows),
    });
  }
  const finish = (offset: number, name: string) => {
    const out = e.empty([cols], "f32", name);
    finishColumnSums(partials, plan.chunks, cols, 2 * cols, offset, out);
    return out;
  };
  const dgamma = wantGamma ? finish(0, "layerNorm dgamma") : null;
  const dbeta = wantBeta ? finish(cols, "layerNorm dbeta") : null;
  partials.dispose();
  return [dgamma, dbeta];
}
