/** RMS normalisation over the last axis (Llama's RMSNorm), with a deterministic gamma gradient. */
import shader from "../../../shaders/rmsnorm.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { assertDType, declareKernel, groupsFor, type RowWindow, rowWindows } from "../kernel.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor.ts";
import { rowThreads } from "./layernorm.ts";
import { columnChunks, finishColumnSums } from "./reduce.ts";
import { columnChunkGrid } from "./windowed.ts";

const WG = 64;
/** The widest rows (in vec4s) the *_row(s) entries keep in private arrays. */
const ROW_VEC4S = 16;

const RMS_NORM_KERNEL = declareKernel({
  name: "rms norm",
  source: `const ROW_VEC4S: u32 = ${ROW_VEC4S}u;\n${shader}`,
  params: {
    rows: "u32",
    cols: "u32",
    eps: "f32",
    row0: "u32",
    chunk_rows: "u32",
    chunk0: "u32",
  },
  buffers: ["x", "gamma", "y", "rstd", "g", "dx", "partial_sums"],
});

const win = (t: Tensor, w: RowWindow) => ({ alloc: t.storage, offset: w.offset, size: w.size });

/**
 * x · rstd · gamma over the last axis of x [..., D], rstd = 1 / sqrt(mean(x²) + eps); gamma [D].
 * Backward gives dx and dgamma (summed over rows in a fixed order).
 */
export function rmsNorm(x: Tensor, gamma: Tensor, eps = 1e-5): Tensor {
  assertDType("rmsNorm", x, "f32");
  assertDType("rmsNorm", gamma, "f32");
  const cols = x.rank === 0 ? 0 : x.shape[x.rank - 1];
  if (cols === 0 || gamma.rank !== 1 || gamma.shape[0] !== cols) {
    throw new ShapeError(
      "rmsNorm",
      `gamma ${shapeString(gamma.shape)} does not match the last axis of x ${shapeString(x.shape)}`,
    );
  }
  const e = x.engine;
  const rows = x.size / cols;
  // Rows of whole vec4s take the vec4 entries (see rmsnorm.wgsl); segments then walk vec4s.
  const suffix = cols % 4 === 0 ? "4" : "";
  // forward and backward_x walk a row twice.
  const tpr = rowThreads(e, "rmsNorm", x, suffix ? cols / 4 : cols, 2);
  const constants = { TPR: tpr };
  // Rows a thread holds whole in private arrays read x (and g) once: the *_row(s) entries.
  const rowEntries = suffix !== "" && tpr === 1 && cols / 4 <= ROW_VEC4S;
  const rowConstants = { ...constants, COLS4: cols / 4 };
  const chunkRows = rowChunk(e, rows);
  const windows = rowWindows(e, rows, cols * 4);
  const y = e.empty(x.shape, "f32", "rmsNorm");
  const rstd = e.empty([rows], "f32", "rmsNorm rstd");
  const params = (w: RowWindow) => ({
    rows: w.rows,
    cols,
    eps,
    row0: w.row,
    chunk_rows: 0,
    chunk0: 0,
  });
  for (const w of windows) {
    RMS_NORM_KERNEL.dispatch(e.gpu, {
      label: "rms norm forward",
      entry: rowEntries ? "forward4_rows" : `forward${suffix}`,
      constants: rowEntries ? rowConstants : constants,
      params: { ...params(w), chunk_rows: chunkRows },
      buffers: { x: win(x, w), gamma: gamma.storage, y: win(y, w), rstd: rstd.storage },
      workgroups: rowEntries
        ? groupsFor(e, Math.ceil(w.rows / chunkRows), WG)
        : groupsFor(e, w.rows, WG / tpr),
    });
  }
  const out = e.record({
    op: "rmsNorm",
    inputs: [x, gamma],
    output: y,
    backward: (g, [into]) => {
      // Added to the gradient x gathered from its other uses (the residual stream) in place.
      const dx = x.requiresGrad ? into ?? e.empty(x.shape, "f32", "rmsNorm dx") : null;
      const accumulate = { ACCUMULATE: into ? 1 : 0 };
      let dgamma: Tensor | null = null;
      if (dx && gamma.requiresGrad && rowEntries && e.gpu.isSoftware) {
        dgamma = backwardRows(e, x, gamma, g, rstd, dx, windows, chunkRows, {
          ...rowConstants,
          ...accumulate,
        });
      } else {
        if (dx) {
          for (const w of windows) {
            RMS_NORM_KERNEL.dispatch(e.gpu, {
              label: "rms norm backward",
              entry: rowEntries ? "backward_x4_row" : `backward_x${suffix}`,
              constants: { ...(rowEntries ? rowConstants : constants), ...accumulate },
              params: params(w),
              buffers: {
                x: win(x, w),
                gamma: gamma.storage,
                rstd: rstd.storage,
                g: win(g, w),
                dx: win(dx, w),
              },
              workgroups: groupsFor(e, w.rows, WG / tpr),
            });
          }
        }
        if (gamma.requiresGrad) dgamma = gammaGrad(e, x, g, rstd, rows, cols, suffix);
      }
      rstd.dispose();
      return [dx, dgamma];
    },
  });
  // Only backward reads the statistics.
  if (!out.requiresGrad) rstd.dispose();
  return out;
}

/**
 * Rows per thread of forward4_rows and backward_x4_rows. On llvmpipe at 4096 × 64, 8 was slower
 * (twice the partials to finish) and 16 to 32 ran alike; 16 leaves a few workgroups per core, and
 * short inputs take fewer so that each core still gets one. A GPU wants a thread per row.
 */
function rowChunk(e: Engine, rows: number): number {
  if (!e.gpu.isSoftware) return 1;
  return Math.max(1, Math.min(16, Math.floor(rows / (WG * navigator.hardwareConcurrency))));
}

/**
 * dx and dgamma in one pass over x and g (backward_x4_rows), for llvmpipe: a thread takes a chunk
 * of consecutive rows and writes their dgamma partial, so x and g are read once, not twice as
 * with backward_x4_row + param_partials4. The partials of a thread per row would swamp
 * finishColumnSums on a GPU, which keeps those two.
 */
function backwardRows(
  e: Engine,
  x: Tensor,
  gamma: Tensor,
  g: Tensor,
  rstd: Tensor,
  dx: Tensor,
  windows: RowWindow[],
  chunkRows: number,
  constants: Record<string, number>,
): Tensor {
  const cols = x.shape[x.rank - 1];
  const chunks = windows.reduce((n, w) => n + Math.ceil(w.rows / chunkRows), 0);
  const partials = e.empty([chunks, cols], "f32", "rmsNorm partials");
  let chunk0 = 0;
  for (const w of windows) {
    const n = Math.ceil(w.rows / chunkRows);
    RMS_NORM_KERNEL.dispatch(e.gpu, {
      label: "rms norm backward",
      entry: "backward_x4_rows",
      constants,
      params: { rows: w.rows, cols, eps: 0, row0: w.row, chunk_rows: chunkRows, chunk0 },
      buffers: {
        x: win(x, w),
        gamma: gamma.storage,
        rstd: rstd.storage,
        g: win(g, w),
        dx: win(dx, w),
        partial_sums: partials.storage,
      },
      workgroups: groupsFor(e, n, WG),
    });
    chunk0 += n;
  }
  const dgamma = e.empty([cols], "f32", "rmsNorm dgamma");
  finishColumnSums(partials, chunks, cols, cols, 0, dgamma);
  partials.dispose();
  return dgamma;
}

/** dgamma = Σ_rows g · x · rstd, through partial sums per chunk of rows. */
function gammaGrad(
  e: Engine,
  x: Tensor,
  g: Tensor,
  rstd: Tensor,
  rows: number,
  cols: number,
  suffix: string,
): Tensor {
  const plan = columnChunks(e, rows, cols);
  const partials = e.empty([plan.chunks, cols], "f32", "rmsNorm partials");
  for (const w of plan.windows) {
    RMS_NORM_KERNEL.dispatch(e.gpu, {
      label: "rms norm gamma partials",
      entry: `param_partials${suffix}`,
      params: {
        rows: w.rows,
        cols,
        eps: 0,
        row0: w.row,
        chunk_rows: plan.chunkRows,
        chunk0: w.chunk0,
      },
      buffers: { x: win(x, w), rstd: rstd.storage, g: win(g, w), partial_sums: partials.storage },
      workgroups: columnChunkGrid(e, suffix ? cols / 4 : cols, w.rows, plan.chunkRows),
    });
  }
  const dgamma = e.empty([cols], "f32", "rmsNorm dgamma");
  finishColumnSums(partials, plan.chunks, cols, cols, 0, dgamma);
  partials.dispose();
  return dgamma;
}
