/**
 * Dispatch shapes shared by several ops: flat kernels whose result depends on an element's
 * position in the whole tensor (a random counter), one storage-binding window at a time, and
 * column-chunk grids, where a thread owns one column and walks a chunk of rows (coalesced across
 * threads, no integer division, no barriers).
 */
import type { Binding } from "../../gpu/gpu.ts";
import type { Engine } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { groupsFor, type Kernel, type KernelCall, rowWindows, softwarePieces } from "../kernel.ts";

/** A windowed kernel's call: its parameters `n` (items in the window) and `first` come from it. */
export type WindowedCall<P extends string, B extends string> =
  & Omit<KernelCall<P, B>, "params" | "buffers" | "workgroups">
  & {
    params: Omit<KernelCall<P, B>["params"], "n" | "first">;
    /** Tensors of `items` items each, bound one window at a time. */
    windowed: { readonly [K in B]?: Tensor };
    /** Tensors bound in full for every window. */
    whole?: { readonly [K in B]?: Tensor };
  };

/**
 * Runs `kernel` over `items` items of `itemBytes` each (256 per workgroup), one binding window of
 * the `windowed` tensors at a time; the kernel reads the window's item count and first index from
 * its parameters `n` and `first`.
 */
export function dispatchWindowed<P extends string, B extends string>(
  engine: Engine,
  kernel: Kernel<P, B>,
  items: number,
  { windowed, whole = {}, params, ...call }: WindowedCall<P, B>,
  itemBytes = 4,
): void {
  for (const w of rowWindows(engine, items, itemBytes)) {
    const buffers: { [K in B]?: Binding } = {};
    for (const [name, t] of Object.entries(whole) as [B, Tensor][]) buffers[name] = t.storage;
    for (const [name, t] of Object.entries(windowed) as [B, Tensor][]) {
      buffers[name] = { alloc: t.storage, offset: w.offset, size: w.size };
    }
    kernel.dispatch(engine.gpu, {
      ...call,
      params: { ...params, n: w.rows, first: w.row } as KernelCall<P, B>["params"],
      buffers,
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

/**
 * Rows per thread for a column-chunk kernel that writes every element once (copies, bias). A GPU
 * wants many short chunks. llvmpipe runs the workgroups on its few threads with a cost for each
 * besides its work (16-row chunks made 399 workgroups of a copy of a CoLES batch's 6,376 rows), so
 * a software adapter takes about 16 chunks per core, as matmul's split of long products does,
 * each under llvmpipe's ~65,535 iterations of a loop.
 */
export function chunkRowsFor(engine: Engine, rows: number): number {
  const fewest = Math.max(16, Math.ceil(rows / engine.gpu.limits.maxComputeWorkgroupsPerDimension));
  if (!engine.gpu.isSoftware) return fewest;
  return Math.max(
    fewest,
    Math.min(Math.ceil(rows / softwarePieces()), 1 << 15),
  );
}
