/**
 * Dispatch shapes shared by several ops: flat kernels whose result depends on an element's
 * position in the whole tensor (a random counter), one storage-binding window at a time, and
 * column-chunk grids, where a thread owns one column and walks a chunk of rows (coalesced across
 * threads, no integer division, no barriers).
 */
import type { Engine } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { groupsFor, params, rowWindows } from "../kernel.ts";

export interface WindowedKernel {
  kernel: string;
  shader: string;
  entry: string;
  constants?: Record<string, number>;
}

/**
 * Runs `k` over `items` items of `itemBytes` each (256 per workgroup). `windowed` tensors are bound
 * one window at a time (all hold `items` items), then `whole` tensors in full; `extra` follows
 * (count, first index) in the parameters.
 */
export function dispatchWindowed(
  engine: Engine,
  k: WindowedKernel,
  items: number,
  windowed: Tensor[],
  whole: Tensor[],
  extra: (number | { f32: number } | { i32: number })[],
  itemBytes = 4,
): void {
  for (const w of rowWindows(engine, items, itemBytes)) {
    engine.gpu.dispatch({
      ...k,
      params: params(w.rows, w.row, ...extra),
      bindings: [
        ...windowed.map((t) => ({ alloc: t.storage, offset: w.offset, size: w.size })),
        ...whole.map((t) => t.storage),
      ],
      workgroups: groupsFor(engine, w.rows),
    });
  }
}

/**
 * Grid for `cols` columns in workgroups of 64 threads (folded into x and y past the per-dimension
 * limit) by the chunks of `chunkRows` rows among `rows` (z).
 */
export function columnChunkGrid(
  engine: Engine,
  cols: number,
  rows: number,
  chunkRows: number,
): [number, number, number] {
  const [x, y] = groupsFor(engine, cols, 64);
  return [x, y, Math.ceil(rows / chunkRows)];
}

/** Rows per thread for a column-chunk kernel that writes every element once (copies, bias). */
export function chunkRowsFor(engine: Engine, rows: number): number {
  return Math.max(16, Math.ceil(rows / engine.gpu.limits.maxComputeWorkgroupsPerDimension));
}
