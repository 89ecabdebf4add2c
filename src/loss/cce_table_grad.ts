/**
 * CCE-'s table gradient for per-position negatives (uniform, popularity): deterministic, without
 * float atomics. The backward (cce_sampled.wgsl) records each scored (position, slot) entry's
 * coefficient, counts entries per id and bounds their size; here the entries are bucketed by id
 * on the GPU (a prefix sum of the counts, then a scatter of entry indices) and every bucket is
 * summed in 64-bit fixed point, whose additions are exact, so the gradient is the same bits
 * whatever order the scatter's threads wrote the buckets in (shaders/cce_table_grad.wgsl).
 *
 * It replaced a compare-exchange loop per float (N·K·d of them), which took 60% of a `cce- 256
 * uniform` training step on llvmpipe and made the table gradient differ run to run.
 */
import tableGradShader from "../../shaders/cce_table_grad.wgsl" with { type: "text" };
import type { Binding } from "../gpu/gpu.ts";
import type { Engine } from "../tensor/engine.ts";
import { declareKernel, groupsFor, type RowWindow } from "../tensor/kernel.ts";
import { ShapeError, type Tensor } from "../tensor/tensor.ts";
import {
  negativeAliasBuffer,
  negativeParams,
  type NegativeSpec,
  withNegatives,
} from "./negatives.ts";

/**
 * List entries one invocation sums: with a binary search per bucket it starts (log2 C steps) it
 * loops at most CHUNK·33 times, far below llvmpipe's 65,535.
 */
const CHUNK = 256;
/** Most blocks (and counts per block) of the prefix sum: one invocation scans the block sums. */
const SCAN_BLOCKS = 16384;

export { CHUNK as CCE_TABLE_GRAD_CHUNK };

const KERNEL = declareKernel({
  name: "cce- table gradient",
  source: withNegatives(tableGradShader),
  params: {
    n: "u32",
    d: "u32",
    kind: "u32",
    k: "u32",
    items: "u32",
    seed: "u32",
    row0: "u32",
    rows: "u32",
    span: "u32",
    blocks: "u32",
    chunk: "u32",
    quads: "u32",
  },
  buffers: [
    "negative_alias",
    "h",
    "targets",
    "counts",
    "rowmax",
    "offsets",
    "block_sums",
    "list",
    "coefs",
    "dtable",
    "carry",
  ],
});

type Buffer = (typeof KERNEL.buffers)[number];
type Buffers = { [K in Buffer]?: Binding };

/** The buffers each entry point uses (a bind group may hold no other). */
const USES = {
  scan_blocks: ["counts", "block_sums"],
  scan_top: ["block_sums"],
  scan_spread: ["counts", "offsets", "block_sums"],
  scatter: ["negative_alias", "targets", "counts", "list"],
  sum_runs: ["h", "rowmax", "offsets", "list", "coefs", "dtable", "carry"],
  carry_out: ["rowmax", "offsets", "dtable", "carry"],
} satisfies Record<string, Buffer[]>;
type Entry = keyof typeof USES;

/** What the backward fills for the table gradient (bound as counts, rowmax, coefs). */
export interface TableGradEntries {
  /** u32 [C + 2]: entries per id (the last cell stays 0). */
  counts: Tensor;
  /** u32 [C + 1]: bits of the largest |coef|·max|h_n| of each id's entries. */
  rowmax: Tensor;
  /** f32 [N·K]: each scored (position, slot)'s coefficient. */
  coefs: Tensor;
}

/** Zeroed counts and bounds, and room for the coefficients, of N positions' K negatives. */
export function tableGradEntries(e: Engine, spec: NegativeSpec, n: number): TableGradEntries {
  return {
    counts: e.zeros([spec.items + 2], "u32", "cce- entries per id"),
    rowmax: e.zeros([spec.items + 1], "u32", "cce- entry bound per id"),
    coefs: e.empty([n * spec.k], "f32", "cce- entry coefficients"),
  };
}

/** Refuses N·K entries whose index list would not fit one storage binding. */
export function assertEntriesFit(e: Engine, op: string, spec: NegativeSpec, n: number): void {
  const bytes = n * spec.k * 4;
  if (bytes > e.gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(
      op,
      `${n} positions × K=${spec.k} negatives: the table gradient's ${n * spec.k} entries ` +
        `(${bytes} bytes) exceed one storage binding; lower the batch's positions or K`,
    );
  }
}

/** Bytes the table gradient holds beyond its inputs and output (the memory estimate's term). */
export function tableGradBytes(n: number, k: number, items: number, d: number): number {
  const entries = n * k;
  const carry = Math.ceil(entries / CHUNK) * Math.ceil(d / 4) * 8;
  const blocks = Math.min(SCAN_BLOCKS, items + 2);
  return 4 * (2 * entries + 3 * (items + 2) + blocks + carry);
}

export interface TableGradCall {
  spec: NegativeSpec;
  n: number;
  d: number;
  h: Tensor;
  targets: Tensor;
  windows: RowWindow[];
  /** The table gradient's binding for a window (its rows are added to). */
  dtable: (w: RowWindow) => Binding;
  entries: TableGradEntries;
}

/** Adds the negatives' table-gradient rows recorded in `entries` to the table gradient. */
export function addNegativeTableGrad(e: Engine, call: TableGradCall): void {
  const { spec, n, d, entries } = call;
  const total = n * spec.k;
  if (total === 0) return;
  const items = spec.items;
  const span = Math.max(64, Math.ceil((items + 2) / SCAN_BLOCKS));
  const blocks = Math.ceil((items + 2) / span);
  const chunks = Math.ceil(total / CHUNK);
  const quads = Math.ceil(d / 4);
  const offsets = e.empty([items + 2], "u32", "cce- bucket offsets");
  const blockSums = e.empty([blocks], "u32", "cce- scan block sums");
  const list = e.empty([total], "u32", "cce- entries by id");
  const carry = e.zeros([chunks * quads * 8], "u32", "cce- crossing buckets' fixed-point sums");
  const params = (w: RowWindow | null) => ({
    n,
    d,
    ...negativeParams(spec),
    row0: w?.row ?? 0,
    rows: w?.rows ?? 0,
    span,
    blocks,
    chunk: CHUNK,
    quads,
  });
  const buffers: Buffers = {
    negative_alias: negativeAliasBuffer(e, spec).storage,
    h: call.h.storage,
    targets: call.targets.storage,
    counts: entries.counts.storage,
    rowmax: entries.rowmax.storage,
    offsets: offsets.storage,
    block_sums: blockSums.storage,
    list: list.storage,
    coefs: entries.coefs.storage,
    carry: carry.storage,
  };
  const run = (entry: Entry, workgroups: [number, number], w: RowWindow | null = null) => {
    const all: Buffers = w ? { ...buffers, dtable: call.dtable(w) } : buffers;
    KERNEL.dispatch(e.gpu, {
      label: `cce- table grad ${entry}`,
      entry,
      params: params(w),
      buffers: Object.fromEntries(USES[entry].map((b) => [b, all[b]])),
      workgroups,
    });
  };
  run("scan_blocks", groupsFor(e, blocks, 64));
  run("scan_top", [1, 1]);
  run("scan_spread", groupsFor(e, blocks, 64));
  run("scatter", groupsFor(e, total, 64));
  for (const w of call.windows) {
    run("sum_runs", groupsFor(e, chunks * quads, 64), w);
    run("carry_out", groupsFor(e, chunks * quads, 64), w);
  }
  for (const t of [offsets, blockSums, list, carry]) t.dispose();
}
