/**
 * Fused cross-entropy losses of the recommender's output (methods.md §1): the same per-position
 * values as the materialised CE and CE- of losses.ts, without ever storing the N×(C+1) or N×K
 * logits. Beyond their inputs and gradients they keep O(N) floats (the full one also N·splits
 * partial sums, splits ≤ 64; CCE-'s backward one [N, d] block sum, and with per-position
 * negatives the N·K entries of its table gradient, about 10 bytes each: cce_table_grad.ts);
 * their backward kernels recompute the logits. Every gradient is the same bits run to run.
 *
 * Every kernel runs in passes (a dispatch each) short enough for llvmpipe, which silently stops
 * an invocation's loops after 65,535 iterations in all: the host counts the iterations a step of
 * each kernel costs and cuts the slots, items or positions it walks into ranges under a budget.
 *
 * Inputs: h f32 [N, d] (d ≤ 4096), table f32 [C+1, d] (row 0 = padding, never scored: its
 * gradient is 0), targets i32 [N] in 1..C made with engine.tensor (their host copy orders the
 * table gradient's sums). The table may exceed one storage binding: every kernel runs once per
 * window of its rows.
 */
import sampledShader from "../../shaders/cce_sampled.wgsl" with { type: "text" };
import fullShader from "../../shaders/cce_full.wgsl" with { type: "text" };
import type { Binding } from "../gpu/gpu.ts";
import { withGatheredDot } from "../sparse/gathered_dot.ts";
import type { Engine } from "../tensor/engine.ts";
import {
  assertDType,
  declareKernel,
  groupsFor,
  type RowWindow,
  rowWindows,
} from "../tensor/kernel.ts";
import { idsToCsr } from "../tensor/ops/embedding.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";
import {
  addNegativeTableGrad,
  assertEntriesFit,
  bucketNegatives,
  type TableGradEntries,
} from "./cce_table_grad.ts";
import {
  assertNegativeSpec,
  drawNegatives,
  logQOf,
  negativeAliasBuffer,
  negativeLogQBuffer,
  negativeParams,
  type NegativeSpec,
  withNegatives,
} from "./negatives.ts";
import { LOOP_BUDGET } from "../gpu/device.ts";

export interface CceSampledOptions {
  /** Add the sampler's logQ correction −log(K·q_id) to negative logits (see logQOf). */
  logQ?: boolean;
}

export interface CceOptions {
  /**
   * Gradient filtering: the backward skips the products of a tile of positions × items whose
   * |softmax − onehot| are all below this (0, the default, is exact).
   */
  filterEps?: number;
}

/** Widest rows: a step of any kernel stays a small share of the loop budget. */
const MAX_D = 4096;
/** Slots the CCE- kernels sum apart before adding into a position's total (cce_sampled.wgsl). */
const BLOCK = 64;
/** Positions (or items) per invocation and items (or positions) per tile of the full kernels. */
const TM = 16;
const TN = 16;
/** Lanes per workgroup of the full kernels: one SIMD vector on llvmpipe. */
const LANES = 8;
/** Workgroups the full forward aims for by splitting the item range (enough for 16+ cores). */
const TARGET_GROUPS = 256;
/** Item splits of one full forward pass at most: its partial (max, sum) are [splits, N, 2]. */
const MAX_SPLITS = 64;

/** The kernels' shape constants, for estimates of the memory and work of a call. */
export {
  BLOCK as CCE_SAMPLED_BLOCK,
  LANES as CCE_FULL_LANES,
  MAX_SPLITS as CCE_FULL_MAX_SPLITS,
  TARGET_GROUPS as CCE_FULL_TARGET_GROUPS,
  TM as CCE_FULL_TILE_ROWS,
  TN as CCE_FULL_TILE_COLS,
};

interface LossInputs {
  n: number;
  d: number;
  /** C: the table has C + 1 rows. */
  items: number;
  targets: Int32Array;
}

function checkInputs(op: string, h: Tensor, table: Tensor, targets: Tensor): LossInputs {
  assertDType(`${op} h`, h, "f32");
  assertDType(`${op} table`, table, "f32");
  assertDType(`${op} targets`, targets, "i32");
  const [n, d] = h.shape;
  if (
    h.rank !== 2 || table.rank !== 2 || targets.rank !== 1 || table.shape[1] !== d ||
    targets.shape[0] !== n || table.shape[0] < 2
  ) {
    throw new ShapeError(
      op,
      `h ${shapeString(h.shape)}, table ${shapeString(table.shape)} and targets ${
        shapeString(targets.shape)
      } do not match (want [N, d], [C+1, d] with C ≥ 1, [N])`,
    );
  }
  if (!(d >= 1 && d <= MAX_D)) throw new ShapeError(op, `d = ${d} is outside [1, ${MAX_D}]`);
  const e = h.engine;
  if (n * d * 4 > e.gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(op, `h ${shapeString(h.shape)} does not fit one storage binding`);
  }
  const host = targets.host as Int32Array | null;
  if (!host) {
    throw new Error(`${op}: targets have no host copy; create them with engine.tensor`);
  }
  const items = table.shape[0] - 1;
  host.forEach((t, i) => {
    if (!(t >= 1 && t <= items)) {
      throw new RangeError(`${op}: target ${t} at position ${i} is outside 1..${items}`);
    }
  });
  return { n, d, items, targets: host };
}

const SAMPLED_KERNEL = declareKernel({
  name: "cce-",
  source: withGatheredDot(withNegatives(sampledShader)),
  params: {
    n: "u32",
    d: "u32",
    kind: "u32",
    k: "u32",
    items: "u32",
    seed: "u32",
    row0: "u32",
    rows: "u32",
    first: "u32",
    last: "u32",
    shift: "f32",
    scatter: "u32",
    start: "u32",
    count: "u32",
    uniques: "u32",
    lo: "u32",
    hi: "u32",
  },
  buffers: [
    "negative_alias",
    "h",
    "table",
    "targets",
    "stats",
    "loss",
    "scratch",
    "dh",
    "dtable",
    "shared_ids",
    "target_csr",
    "negative_log_q",
    "counts",
    "rowmax",
    "list",
    "list_coefs",
  ],
});
type SampledBuffer = (typeof SAMPLED_KERNEL.buffers)[number];
type SampledBuffers = { [K in SampledBuffer]?: Binding };

const FULL_KERNEL = declareKernel({
  name: "cce",
  source: `const TM: u32 = ${TM}u;\nconst TN: u32 = ${TN}u;\n${fullShader}`,
  params: {
    n: "u32",
    d: "u32",
    row0: "u32",
    rows: "u32",
    lo: "u32",
    hi: "u32",
    span: "u32",
    splits: "u32",
    first: "u32",
    last: "u32",
    eps: "f32",
  },
  buffers: ["h", "table", "targets", "lse", "loss", "partials", "state", "dloss", "grad"],
});

function windowOf(t: Tensor, w: RowWindow): Binding {
  return { alloc: t.storage, offset: w.offset, size: w.size };
}

/** [start, end) of the entries of an ascending array that fall in [lo, hi). */
function rangeIn(sorted: ArrayLike<number>, lo: number, hi: number): [number, number] {
  let start = 0;
  while (start < sorted.length && sorted[start] < lo) start++;
  let end = start;
  while (end < sorted.length && sorted[end] < hi) end++;
  return [start, end];
}

/** [from, to) ranges of [lo, hi) of at most `size` each (one empty range when it is empty). */
function chunks(lo: number, hi: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let from = lo; from < hi || out.length === 0; from += size) {
    out.push([from, Math.min(from + size, hi)]);
  }
  return out;
}

/** The first window-relative row of a table window that is scored: row 0 is padding. */
const firstScored = (w: RowWindow) => (w.row === 0 ? 1 : 0);

/** How many steps of `perStep` loop iterations fit the budget after `setup` iterations. */
function stepsPerPass(op: string, d: number, perStep: number, setup: number): number {
  const steps = Math.floor((LOOP_BUDGET - setup) / perStep);
  if (steps < 1) throw new ShapeError(op, `d = ${d} is too wide for one step of its kernels`);
  return steps;
}

/** Loop iterations of a dot product and of a row update over d columns (4 per step, then 1s). */
const dotLoops = (d: number) => Math.floor(d / 4) + (d % 4) + 2;

/**
 * Per-position CE- losses [N]: log(e^{s_t} + Σ_k e^{s̃_{n,k}}) − s_t over the negatives that
 * `spec` (items = C) draws, a negative equal to the target left out; with `logQ`, s̃ includes the
 * spec's correction (logQOf). Equals sampledCrossEntropy's rows fed with drawNegatives(spec, N)
 * and that correction. Gradients reach h and table.
 */
export function cceSampledRows(
  h: Tensor,
  table: Tensor,
  targets: Tensor,
  spec: NegativeSpec,
  opts: CceSampledOptions = {},
): Tensor {
  const op = "cceSampledRows";
  const inputs = checkInputs(op, h, table, targets);
  const { n, d, items } = inputs;
  if (spec.items !== items) {
    throw new RangeError(
      `${op}: the spec draws from 1..${spec.items}, the table ${
        shapeString(table.shape)
      } has C = ${items}`,
    );
  }
  assertNegativeSpec(op, spec, n);
  const e = h.engine;
  if (table.requiresGrad && spec.kind !== "shared") assertEntriesFit(e, op, spec, n);
  // [2, N]: the LSE of each position, then the upstream gradient, copied in by the backward.
  const stats = e.empty([2, n], "f32", "cce- lse and dloss");
  const logQ = opts.logQ ? logQOf(spec) : null;
  const pass: SampledPass = {
    e,
    op,
    spec,
    n,
    d,
    shift: logQ?.shift ?? 0,
    constants: { LOG_Q_PER_ID: logQ?.logProbabilities ? 1 : 0 },
    windows: rowWindows(e, items + 1, d * 4),
    inputs: (w) => ({
      negative_alias: negativeAliasBuffer(e, spec).storage,
      h: h.storage,
      table: windowOf(table, w),
      targets: targets.storage,
      stats: stats.storage,
      negative_log_q: negativeLogQBuffer(e, spec, logQ).storage,
    }),
  };
  const loss = e.empty([n], "f32", "cce- loss");
  const running = e.empty([n, 2], "f32", "cce- running max and sum");
  const dot = dotLoops(d);
  runSampled(
    pass,
    "forward",
    spec.k,
    stepsPerPass(op, d, dot + 2, dot),
    () => n,
    () => ({ loss: loss.storage, scratch: running.storage }),
  );
  running.dispose();
  return e.record({
    op,
    inputs: [h, table],
    output: loss,
    backward: (dloss) => {
      const wantTable = table.requiresGrad;
      const scatter = wantTable && spec.kind !== "shared";
      if (n > 0) e.gpu.copy(dloss.storage, 0, stats.storage, n * 4, n * 4);
      const dh = e.zeros([n, d], "f32", "cce- dh");
      const blockSums = e.zeros([n, d], "f32", "cce- dh block sums");
      const dtable = e.zeros(wantTable ? table.shape : [1], "f32", "cce- dtable");
      const dtableIn = (w: RowWindow) => wantTable ? windowOf(dtable, w) : dtable.storage;
      const perSlot = 1 + 2 * dot + Math.ceil((d + 2) / BLOCK) + (scatter ? 3 : 0);
      const buckets = scatter ? bucketNegatives(e, spec, n, d, h, targets) : null;
      const entries = buckets?.entries ?? unusedEntries(e);
      runSampled(
        pass,
        "backward",
        spec.k,
        stepsPerPass(op, d, perSlot, 2 * dot + 2 * d + 2),
        () => n,
        () => ({
          scratch: blockSums.storage,
          dh: dh.storage,
          counts: entries.counts.storage,
          rowmax: entries.rowmax.storage,
          list: entries.list.storage,
          list_coefs: entries.listCoefs.storage,
        }),
        { ...NO_EXTRA, scatter: scatter ? 1 : 0 },
      );
      blockSums.dispose();
      if (buckets) addNegativeTableGrad(e, buckets, pass.windows, dtableIn);
      else for (const t of Object.values(entries)) t.dispose();
      if (wantTable) {
        const outputs = (w: RowWindow) => ({ dtable: dtableIn(w) });
        if (spec.kind === "shared") sharedTableGrad(pass, drawNegatives(spec, n), outputs);
        targetTableGrad(pass, inputs.targets, outputs);
      }
      if (!h.requiresGrad) dh.dispose();
      return [h.requiresGrad ? dh : null, wantTable ? dtable : null];
    },
  });
}

/** One-cell stand-ins for the table-gradient entries when the backward records none. */
function unusedEntries(e: Engine): TableGradEntries {
  return {
    counts: e.zeros([1], "u32", "cce- no entries"),
    rowmax: e.zeros([1], "u32", "cce- no entries"),
    list: e.zeros([1], "u32", "cce- no entries"),
    listCoefs: e.zeros([1], "f32", "cce- no entries"),
  };
}

/** What every kernel of one CCE- call shares. */
interface SampledPass {
  e: Engine;
  op: string;
  spec: NegativeSpec;
  n: number;
  d: number;
  shift: number;
  constants: Record<string, number>;
  windows: RowWindow[];
  inputs: (w: RowWindow) => SampledBuffers;
}

/** The uniform's fields for the item-major kernels (zeros elsewhere) and the backward's scatter. */
interface SampledExtra {
  scatter: number;
  start: number;
  count: number;
  uniques: number;
}
const NO_EXTRA: SampledExtra = { scatter: 0, start: 0, count: 0, uniques: 0 };

/**
 * Runs `entry` in passes: per table window, per range of at most `perPass` of the `walk` steps
 * its invocations loop over, with `invocations(w)` invocations. Buffers: the inputs, minus the
 * `unused` ones, and `outputs`.
 */
function runSampled(
  s: SampledPass,
  entry: string,
  walk: number,
  perPass: number,
  invocations: (w: RowWindow) => number,
  outputs: (w: RowWindow) => SampledBuffers,
  extra: SampledExtra | ((w: RowWindow) => SampledExtra) = NO_EXTRA,
  unused: SampledBuffer[] = [],
): void {
  const ranges = chunks(0, walk, perPass);
  s.windows.forEach((w, k) => {
    const count = invocations(w);
    if (count === 0) return;
    const buffers: SampledBuffers = { ...s.inputs(w), ...outputs(w) };
    for (const b of unused) delete buffers[b];
    ranges.forEach(([from, to], r) => {
      SAMPLED_KERNEL.dispatch(s.e.gpu, {
        label: `cce- ${entry}`,
        entry,
        constants: s.constants,
        params: {
          n: s.n,
          d: s.d,
          ...negativeParams(s.spec),
          row0: w.row,
          rows: w.rows,
          first: k === 0 && r === 0 ? 1 : 0,
          last: k === s.windows.length - 1 && r === ranges.length - 1 ? 1 : 0,
          shift: s.shift,
          ...(typeof extra === "function" ? extra(w) : extra),
          lo: from,
          hi: to,
        },
        buffers,
        workgroups: groupsFor(s.e, count, 64),
      });
    });
  });
}

/**
 * Adds the table-gradient rows of `ids` (ascending, distinct), an invocation per id of each
 * window walking `walk` steps (positions or list entries); the kernel reads `list` as buffer
 * `binding` and does not use the `unused` inputs.
 */
function sumRows(
  s: SampledPass,
  entry: string,
  ids: ArrayLike<number>,
  walk: number,
  list: Tensor,
  binding: "shared_ids" | "target_csr",
  outputs: (w: RowWindow) => SampledBuffers,
  unused: SampledBuffer[],
): void {
  const range = (w: RowWindow) => rangeIn(ids, w.row, w.row + w.rows);
  const perStep = 2 * dotLoops(s.d) + 1;
  runSampled(
    s,
    entry,
    walk,
    stepsPerPass(s.op, s.d, perStep, 0),
    (w) => range(w)[1] - range(w)[0],
    (w) => ({ ...outputs(w), [binding]: list.storage }),
    (w) => ({
      scatter: 0,
      start: range(w)[0],
      count: range(w)[1] - range(w)[0],
      uniques: ids.length,
    }),
    unused,
  );
  list.dispose();
}

/** Shared negatives' gradient rows, each distinct id weighted by how many slots drew it. */
function sharedTableGrad(
  s: SampledPass,
  drawn: Int32Array,
  outputs: (w: RowWindow) => SampledBuffers,
): void {
  const distinct: number[] = [];
  const cells: number[] = [];
  for (const id of drawn.sort()) {
    if (distinct.at(-1) === id) cells[cells.length - 1]++;
    else {
      distinct.push(id);
      cells.push(id, 1);
    }
  }
  const list = s.e.tensor(new Uint32Array(cells), [distinct.length, 2], "u32", "shared negatives");
  sumRows(s, "shared_table_grad", distinct, s.n, list, "shared_ids", outputs, ["negative_alias"]);
}

/** The targets' gradient rows, each target's positions summed in ascending order. */
function targetTableGrad(
  s: SampledPass,
  targets: Int32Array,
  outputs: (w: RowWindow) => SampledBuffers,
): void {
  const { unique, csr } = idsToCsr(targets);
  let most = 0;
  for (let u = 0; u < unique.length; u++) most = Math.max(most, csr[u + 1] - csr[u]);
  const packed = new Uint32Array(unique.length + csr.length);
  packed.set(unique);
  packed.set(csr, unique.length);
  const list = s.e.tensor(packed, [packed.length], "u32", "cce- target csr");
  sumRows(s, "target_table_grad", unique, most, list, "target_csr", outputs, [
    "negative_alias",
    "targets",
    "negative_log_q",
  ]);
}

/**
 * Per-position full-catalogue CE losses [N]: LSE over the items 1..C of h_n·E_i, minus the
 * target's logit (fullCrossEntropy's rows). Gradients reach h and table; the padding row 0 is not
 * scored and its gradient row is 0.
 */
export function cceRows(
  h: Tensor,
  table: Tensor,
  targets: Tensor,
  opts: CceOptions = {},
): Tensor {
  const op = "cceRows";
  const { n, d } = checkInputs(op, h, table, targets);
  const eps = opts.filterEps ?? 0;
  if (!(eps >= 0 && eps < 1)) throw new RangeError(`${op}: filterEps ${eps} is outside [0, 1)`);
  const e = h.engine;
  const windows = rowWindows(e, table.shape[0], d * 4);
  const vec4s = Math.ceil(d / 4);
  const aligned = d % 4 === 0 ? 1 : 0;
  const forwardTiles = stepsPerPass(op, d, vec4s + 2, TM * (vec4s + 1));
  const passes = windows.flatMap((w) =>
    forwardPasses(e, op, n, firstScored(w), w.rows, forwardTiles * TN).map((pass) => ({
      w,
      ...pass,
    }))
  );
  const uniform = (
    w: RowWindow,
    from: number,
    to: number,
    flags = { span: 0, splits: 0, first: 0, last: 0 },
  ) => ({ n, d, row0: w.row, rows: w.rows, lo: from, hi: to, ...flags, eps });
  const lse = e.empty([n], "f32", "cce lse");
  const loss = e.empty([n], "f32", "cce loss");
  const state = e.empty([n, 2], "f32", "cce running max and sum");
  const partials = e.empty(
    [Math.max(...passes.map((p) => p.splits)), n, 2],
    "f32",
    "cce partial max and sum",
  );
  passes.forEach(({ w, from, to, span, splits }, i) => {
    const flags = { span, splits, first: i === 0 ? 1 : 0, last: i === passes.length - 1 ? 1 : 0 };
    FULL_KERNEL.dispatch(e.gpu, {
      label: "cce forward tiles",
      entry: "forward_partial",
      constants: { ALIGNED: aligned },
      params: uniform(w, from, to, flags),
      buffers: {
        h: h.storage,
        table: windowOf(table, w),
        targets: targets.storage,
        loss: loss.storage,
        partials: partials.storage,
      },
      workgroups: [...groupsFor(e, n, LANES * TM), splits],
    });
    FULL_KERNEL.dispatch(e.gpu, {
      label: "cce forward merge",
      entry: "merge",
      params: uniform(w, from, to, flags),
      buffers: {
        lse: lse.storage,
        loss: loss.storage,
        partials: partials.storage,
        state: state.storage,
      },
      workgroups: groupsFor(e, n, 64),
    });
  });
  state.dispose();
  partials.dispose();
  const gradTiles = stepsPerPass(op, d, 2 * vec4s + 3, 0);
  return e.record({
    op,
    inputs: [h, table],
    output: loss,
    backward: (dloss) => {
      const gradRows = (out: Tensor, itemMajor: boolean) => {
        for (const w of windows) {
          const own = itemMajor ? w.rows : n;
          const walked = itemMajor
            ? chunks(0, n, gradTiles * TN)
            : chunks(firstScored(w), w.rows, gradTiles * TN);
          for (const [from, to] of walked) {
            FULL_KERNEL.dispatch(e.gpu, {
              label: itemMajor ? "cce dtable" : "cce dh",
              entry: "grad_rows",
              constants: { ITEM_MAJOR: itemMajor ? 1 : 0, ALIGNED: aligned },
              params: uniform(w, from, to),
              buffers: {
                h: h.storage,
                table: windowOf(table, w),
                targets: targets.storage,
                lse: lse.storage,
                dloss: dloss.storage,
                grad: itemMajor ? windowOf(out, w) : out.storage,
              },
              workgroups: groupsFor(e, own, LANES * TM),
            });
          }
        }
        return out;
      };
      return [
        h.requiresGrad ? gradRows(e.zeros([n, d], "f32", "cce dh"), false) : null,
        table.requiresGrad ? gradRows(e.zeros(table.shape, "f32", "cce dtable"), true) : null,
      ];
    },
  });
}

/**
 * Splits of the item range the full forward aims for with `n` positions: enough that about
 * TARGET_GROUPS workgroups of LANES·TM positions run, at most MAX_SPLITS (the binding limit on
 * the partial sums may lower it further).
 */
export function cceFullSplits(n: number): number {
  return Math.min(MAX_SPLITS, Math.ceil(TARGET_GROUPS / Math.ceil(n / (LANES * TM))));
}

/** One forward pass of the full kernel: items [from, to) of a window in `splits` splits. */
interface ForwardPass {
  from: number;
  to: number;
  span: number;
  splits: number;
}

/**
 * Cuts the items [lo, rows) of a window into splits of at most `maxSpan` items (the loop budget),
 * small enough that about TARGET_GROUPS workgroups run, grouped into passes of at most
 * MAX_SPLITS splits whose partial sums [splits, N, 2] fit one binding.
 */
function forwardPasses(
  e: Engine,
  op: string,
  n: number,
  lo: number,
  rows: number,
  maxSpan: number,
): ForwardPass[] {
  if (lo >= rows) return [];
  const fit = Math.floor(e.gpu.limits.maxStorageBufferBindingSize / (n * 8));
  if (fit < 1) throw new ShapeError(op, `${n} positions' partial sums do not fit one binding`);
  const perPass = Math.min(MAX_SPLITS, fit);
  const wanted = Math.min(perPass, cceFullSplits(n));
  const span = Math.min(maxSpan, Math.ceil((rows - lo) / wanted / TN) * TN);
  return chunks(lo, rows, span * perPass).map(([from, to]) => ({
    from,
    to,
    span,
    splits: Math.ceil((to - from) / span),
  }));
}
