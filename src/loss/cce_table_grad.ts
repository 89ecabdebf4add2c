/**
 * CCE-'s table gradient for per-position negatives (uniform, popularity): deterministic, without
 * float atomics. Before the backward, the negatives are counted per id and the counts prefix-summed
 * into item-major buckets (bucketNegatives); the backward (cce_sampled.wgsl) appends each scored
 * (position, coefficient) to its id's bucket and bounds the id's terms; then every bucket is summed
 * in 64-bit fixed point (addNegativeTableGrad), whose additions are exact, so the gradient is the
 * same bits whatever order the backward's threads filled the buckets in
 * (shaders/cce_table_grad.wgsl).
 *
 * It replaced a compare-exchange loop per float (N·K·d of them), which took 60% of a `cce- 256
 * uniform` training step on llvmpipe and made the table gradient differ run to run.
 */
import tableGradShader from "../../shaders/cce_table_grad.wgsl" with { type: "text" };
import rowsScalarShader from "../../shaders/cce_table_grad_rows_scalar.wgsl" with {
  type: "text",
};
import rowsVec4Shader from "../../shaders/cce_table_grad_rows_vec4.wgsl" with { type: "text" };
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
 * List entries one invocation sums at least (a piece of a bucket); more when N·K is so large that
 * a bucket could have over MAX_PIECES pieces, which scan_spread loops over. An invocation loops
 * over one piece, far below llvmpipe's 65,535 iterations.
 */
const MIN_CHUNK = 256;
const MAX_PIECES = 16384;
/** Column groups of 4 one invocation of sum_pieces sums (GROUP in the shader). */
const GROUP = 4;
/** Most blocks (and ids per block) of the prefix sum: one invocation scans the block sums. */
const SCAN_BLOCKS = 16384;

/** Entries per piece for `entries` entries. */
const chunkFor = (entries: number) => Math.max(MIN_CHUNK, Math.ceil(entries / MAX_PIECES));

/** Pieces at most: one per touched id, plus one per `chunk` entries. */
const maxPieces = (entries: number, items: number) =>
  Math.min(items, entries) + Math.ceil(entries / chunkFor(entries));

/** The kernels with h and the gradient rows moved as scalars or (d a multiple of 4) as vec4s. */
const declare = (rows: string) =>
  declareKernel({
    name: "cce- table gradient",
    source: withNegatives(`${rows}\n${tableGradShader}`),
    params: PARAMS,
    buffers: BUFFERS,
  });

const PARAMS = {
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
  groups: "u32",
} as const;

const BUFFERS = [
  "negative_alias",
  "h",
  "targets",
  "counts",
  "rowmax",
  "entry_offsets",
  "piece_offsets",
  "carry_offsets",
  "block_sums",
  "list",
  "list_coefs",
  "carry",
  "piece_ids",
  "carry_ids",
  "dtable",
] as const;

const KERNELS = { scalar: declare(rowsScalarShader), vec4: declare(rowsVec4Shader) };

type Buffer = (typeof BUFFERS)[number];
type Buffers = { [K in Buffer]?: Binding };

/** The buffers each entry point uses (a bind group may hold no other). */
const OFFSETS = ["entry_offsets", "piece_offsets", "carry_offsets"] as const;
const USES = {
  scan_blocks: ["counts", "block_sums"],
  scan_top: ["block_sums"],
  scan_spread: ["counts", ...OFFSETS, "block_sums", "piece_ids", "carry_ids"],
  count: ["negative_alias", "targets", "counts"],
  sum_pieces: ["h", "rowmax", ...OFFSETS, "list", "list_coefs", "dtable", "carry", "piece_ids"],
  carry_out: ["rowmax", "entry_offsets", "carry_offsets", "dtable", "carry", "carry_ids"],
} satisfies Record<string, Buffer[]>;
type Entry = keyof typeof USES;

/** What the backward fills for the table gradient (bound as counts, rowmax, list, list_coefs). */
export interface TableGradEntries {
  /** u32 [C + 2]: each id's bucket write cursor. */
  counts: Tensor;
  /** u32 [C + 1]: bits of the largest |coef|·max|h_n| of each id's entries. */
  rowmax: Tensor;
  /** u32 and f32 [N·K]: the buckets' entries, position and coefficient. */
  list: Tensor;
  listCoefs: Tensor;
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

/**
 * The byte sizes of the buffers the table gradient allocates beyond its inputs and output, for
 * N positions' K negatives over C items: cursors, bounds, the bucketed entries, offsets, scan
 * block sums, piece and carry ids and carry sums.
 */
export function tableGradBuffers(n: number, k: number, items: number, d: number): number[] {
  const entries = n * k;
  const slots = Math.ceil(entries / chunkFor(entries));
  const perId = (items + 2) * 4;
  const blocks = Math.ceil((items + 2) / Math.max(64, Math.ceil((items + 2) / SCAN_BLOCKS)));
  return [
    perId,
    (items + 1) * 4,
    entries * 4,
    entries * 4,
    perId,
    perId,
    perId,
    blocks * 16,
    maxPieces(entries, items) * 4,
    slots * 4,
    slots * Math.ceil(d / 4) * 32,
  ];
}

/** Bytes the table gradient holds beyond its inputs and output (the memory estimate's term). */
export function tableGradBytes(n: number, k: number, items: number, d: number): number {
  return tableGradBuffers(n, k, items, d).reduce((a, b) => a + b, 0);
}

/** The buckets of one CCE- backward's negatives: what the backward binds, and what sums them. */
export interface NegativeBuckets {
  entries: TableGradEntries;
  run: (entry: Entry, workgroups: [number, number], dtable?: { w: RowWindow; b: Binding }) => void;
  pieces: number;
  slots: number;
  groups: number;
  quads: number;
  dispose: () => void;
}

/**
 * Counts N positions' K negatives per id and turns the counts into bucket offsets and write
 * cursors: run before the backward, which fills the buckets (bound as `entries`).
 */
export function bucketNegatives(
  e: Engine,
  spec: NegativeSpec,
  n: number,
  d: number,
  h: Tensor,
  targets: Tensor,
): NegativeBuckets {
  const total = n * spec.k;
  const items = spec.items;
  const span = Math.max(64, Math.ceil((items + 2) / SCAN_BLOCKS));
  const blocks = Math.ceil((items + 2) / span);
  const chunk = chunkFor(total);
  const pieces = maxPieces(total, items);
  const slots = Math.ceil(total / chunk);
  const quads = Math.ceil(d / 4);
  const groups = Math.ceil(quads / GROUP);
  const entries: TableGradEntries = {
    counts: e.zeros([items + 2], "u32", "cce- entries per id"),
    rowmax: e.zeros([items + 1], "u32", "cce- entry bound per id"),
    list: e.empty([total], "u32", "cce- entries' positions by id"),
    listCoefs: e.empty([total], "f32", "cce- entries' coefficients by id"),
  };
  const offsets = OFFSETS.map((name) => e.empty([items + 2], "u32", `cce- ${name}`));
  const blockSums = e.empty([blocks, 4], "u32", "cce- scan block sums");
  const pieceIds = e.empty([pieces], "u32", "cce- piece ids");
  const carryIds = e.empty([slots], "u32", "cce- ids of buckets of several pieces");
  const carry = e.zeros([slots * quads * 8], "u32", "cce- fixed-point sums of long buckets");
  const owned = [...Object.values(entries), ...offsets, blockSums, pieceIds, carryIds, carry];
  const buffers: Buffers = {
    negative_alias: negativeAliasBuffer(e, spec).storage,
    h: h.storage,
    targets: targets.storage,
    counts: entries.counts.storage,
    rowmax: entries.rowmax.storage,
    entry_offsets: offsets[0].storage,
    piece_offsets: offsets[1].storage,
    carry_offsets: offsets[2].storage,
    block_sums: blockSums.storage,
    list: entries.list.storage,
    list_coefs: entries.listCoefs.storage,
    carry: carry.storage,
    piece_ids: pieceIds.storage,
    carry_ids: carryIds.storage,
  };
  const run = (entry: Entry, workgroups: [number, number], out?: { w: RowWindow; b: Binding }) => {
    const all: Buffers = out ? { ...buffers, dtable: out.b } : buffers;
    KERNELS[d % 4 === 0 ? "vec4" : "scalar"].dispatch(e.gpu, {
      label: `cce- table grad ${entry}`,
      entry,
      params: {
        n,
        d,
        ...negativeParams(spec),
        row0: out?.w.row ?? 0,
        rows: out?.w.rows ?? 0,
        span,
        blocks,
        chunk,
        quads,
        groups,
      },
      buffers: Object.fromEntries(USES[entry].map((b) => [b, all[b]])),
      workgroups,
    });
  };
  if (total > 0) {
    run("count", groupsFor(e, total, 64));
    run("scan_blocks", groupsFor(e, blocks, 64));
    run("scan_top", [1, 1]);
    run("scan_spread", groupsFor(e, blocks, 64));
  }
  return {
    entries,
    run,
    pieces,
    slots,
    groups,
    quads,
    dispose: () => owned.forEach((t) => t.dispose()),
  };
}

/**
 * Adds the buckets' sums to the table gradient, window by window (`dtable` binds a window; its
 * rows of the negatives are written once, into zeros), and frees the buckets.
 */
export function addNegativeTableGrad(
  e: Engine,
  b: NegativeBuckets,
  windows: RowWindow[],
  dtable: (w: RowWindow) => Binding,
): void {
  if (b.entries.list.size > 0) {
    for (const w of windows) {
      b.run("sum_pieces", groupsFor(e, b.pieces * b.groups, 64), { w, b: dtable(w) });
      b.run("carry_out", groupsFor(e, b.slots * b.quads, 64), { w, b: dtable(w) });
    }
  }
  b.dispose();
}
