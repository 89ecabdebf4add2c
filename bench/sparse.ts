/**
 * The sparse benchmark: N:M and unstructured 50% products against the project's dense kernels in
 * the same run (issue 13). Per cell: the sparse product's time and the dense baseline's on the same
 * shapes (one token: the dense GEMV; more: the tiled matmul), the bytes each moves at least once,
 * the metadata's bits per element and the time of the prune kernel that makes the compressed
 * operand. One token also times both against W stored transposed (activation-sparse), and 16
 * tokens the untiled sparse kernel the tiled one replaces. One token's dense baseline is the
 * fastest dense GEMV of either layout: the variants of each layout are timed against each other
 * once per layer, and in every cell the fastest of each layout and the sparse GEMVs alternate
 * batch by batch over several rounds, each figure the median of its rounds (one call is too
 * short for the machine's drift between two separately timed figures not to swing their ratio).
 * From 512 tokens on, each figure is one call (the pipelines compiled by T = 16), so that the full
 * grid fits a CPU adapter's half hour. A cell the library refuses (a binding or loop limit) stays
 * in the table with the reason.
 */
import type { Engine } from "../src/tensor/engine.ts";
import { matmul } from "../src/tensor/ops/matmul.ts";
import { transpose } from "../src/tensor/ops/transpose.ts";
import {
  NM_PATTERNS,
  type NmEncoding,
  type NmLayout,
  nmLayout,
  type NmPattern,
  NmTensor,
  patternName,
} from "../src/sparse/format.ts";
import { keepAtRatio, pruneNm, pruneUnstructured } from "../src/sparse/prune.ts";
import {
  sparseActivationGemvTransposed,
  sparseActivationMatmul,
  type SparseMatmulVariant,
  sparseWeightMatmul,
} from "../src/sparse/matmul.ts";
import {
  gemv,
  GEMV_CHOICE,
  GEMV_VARIANTS,
  type GemvVariant,
  TRANSPOSED_GEMV_CHOICE,
} from "../src/tensor/ops/gemv.ts";
import { matmulVariantOf } from "../src/tensor/ops/matmul.ts";
import { SPARSE_GEMV_CHOICE, TRANSPOSED_SPARSE_GEMV_CHOICE } from "../src/sparse/gemv.ts";
import { SPARSE_TILED_CHOICE } from "../src/sparse/tiled.ts";
import { ShapeError, type Tensor } from "../src/tensor/tensor.ts";
import { seededRandom } from "../src/tensor/random.ts";
import { type Cell, formatTable, timeGpu, timeInterleaved, type TimingOptions } from "./util.ts";

export type Role = "activation" | "weight";

export interface SparseGrid {
  tokens: number[];
  /** (in, out) of the layer y = x·Wᵀ. */
  shapes: [number, number][];
  roles: Role[];
  encodings: NmEncoding[];
  /**
   * Larger token counts run only 8:16 and unstructured 50% (the cells the issue compares); the
   * other patterns are listed as not run. null: every cell at every T.
   */
  allCellsUpTo: number | null;
}

export const DEFAULT_GRID: SparseGrid = {
  tokens: [1, 16, 512, 4096],
  shapes: [[1024, 1024], [1024, 4096], [4096, 1024]],
  roles: ["activation", "weight"],
  encodings: ["combinatorial", "indices"],
  // On llvmpipe one 4096-token sparse product of the larger layers takes 25-80 s: all 18 cells of
  // each would take the grid past half an hour.
  allCellsUpTo: 512,
};

/** What llvmpipe gets through in minutes: the decoding and small-batch end of the grid. */
export const QUICK_GRID: SparseGrid = {
  tokens: [1, 16],
  shapes: [[1024, 1024]],
  roles: ["activation", "weight"],
  encodings: ["combinatorial", "indices"],
  allCellsUpTo: null,
};

export interface SparseRow {
  tokens: number;
  in: number;
  out: number;
  role: Role;
  sparsity: string;
  encoding: NmEncoding;
  /** Metadata bits stored per dense element (the lanes' padding to whole words included). */
  metadataBitsPerElement: number;
  /**
   * The library's kernel for T (GEMV for one token, tiled otherwise), W [out, in]; null where the
   * cell was refused (see `refused`).
   */
  sparseMs: number | null;
  /**
   * The dense baseline: for one token the faster of the fastest dense GEMV on W [out, in] and on
   * Wᵀ [in, out] (`denseVariant` says which), the tiled matmul otherwise.
   */
  denseMs: number;
  /** T = 1: the dense GEMV variant behind denseMs, with its layout. */
  denseVariant: string | null;
  /** denseMs / sparseMs. */
  speedup: number | null;
  /** The dense tiled matmul (at T = 1 too, for comparison with the GEMV). */
  matmulMs: number;
  /**
   * T = 1, activation-sparse: the sparse GEMV against W stored transposed [in, out] (the engine's
   * variant), the fastest dense GEMV on that layout, and denseMs / sparseTransposedMs.
   */
  sparseTransposedMs: number | null;
  denseTransposedMs: number | null;
  speedupTransposed: number | null;
  /** T = 16: the untiled sparse kernel (an invocation per output). */
  untiledMs: number | null;
  sparseBytes: number;
  denseBytes: number;
  /** The prune kernel's time; null where the cell was not run. */
  pruneMs: number | null;
  /**
   * Why the cell has no sparse figure: the library refused its shapes (a binding or loop limit),
   * or the grid leaves it out at this T (allCellsUpTo); null when measured.
   */
  notRun: string | null;
}

export interface SparseReport {
  grid: SparseGrid;
  /** One token: the interleaved rounds behind every median. */
  oneTokenRounds: number;
  /** The kernels the engine picked (by adapter kind). */
  kernels: Record<string, string>;
  rows: SparseRow[];
  seconds: number;
}

type Sparsity = NmPattern | "unstructured";

function randomArray(n: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => 2 * r() - 1);
}

const sparsityName = (s: Sparsity) => (s === "unstructured" ? "unstructured 50%" : patternName(s));

/**
 * Bytes a product must move at least once: the compressed operand (values and metadata), the
 * dense one and Y. Activation-sparse at T = 1 reads only the kept columns of W; with more tokens
 * the union of their kept columns is all of W (16 random halves leave 2^-16 of it unread).
 */
function sparseBytes(l: NmLayout, role: Role, tokens: number, inF: number, out: number): number {
  const compressed = l.lanes * (l.kept + l.words) * 4;
  const dense = role === "weight"
    ? tokens * inF * 4
    : tokens === 1
    ? out * l.kept * 4
    : out * inF * 4;
  return compressed + dense + tokens * out * 4;
}

/**
 * Fewer calls as T grows: a product of 512 or more tokens on a CPU adapter takes seconds, so it is
 * timed once, after a warm-up only when no smaller batch (`compiled`) has compiled the pipelines
 * of this run. One token (the matmul and the prune; the GEMVs alternate, see timeOneToken): as
 * many calls per repetition as fill `targetMs` by a batch's rate (`calibrate`), since one call is
 * far shorter than the wait for the GPU that ends a repetition (about 10 ms on llvmpipe) and
 * timeGpu sizes its batches by a single call and its wait.
 */
function timingFor(
  tokens: number,
  repeats: number,
  compiled: boolean,
): TimingOptions & { calibrate?: boolean } {
  if (tokens >= 512) return { warmup: compiled ? 0 : 1, repeats: 1, calls: 1 };
  if (tokens === 1) return { repeats, warmup: 1, targetMs: 200, calibrate: true };
  return { repeats, warmup: 1, targetMs: 200 };
}

/** Calls per batch when calibrating: enough to make the GPU wait a small part of the batch. */
const CALIBRATION_CALLS = 16;

/** A call slower than this needs no calibration: the wait for the GPU is a small part of it. */
const CALIBRATION_BELOW_MS = 25;

/**
 * The fastest repetition of timeGpu (cores shared with other jobs only ever slow a run down), or
 * with no warm-up a single timed call (the pipelines already compiled).
 */
async function timeWork(
  e: Engine,
  work: () => void,
  t: TimingOptions & { calibrate?: boolean },
): Promise<number> {
  if (t.calibrate) {
    work(); // compiles the pipelines
    await e.gpu.sync();
    let start = performance.now();
    work();
    await e.gpu.sync();
    if (performance.now() - start < CALIBRATION_BELOW_MS) {
      start = performance.now();
      for (let c = 0; c < CALIBRATION_CALLS; c++) work();
      await e.gpu.sync();
      const perCall = (performance.now() - start) / CALIBRATION_CALLS;
      const calls = Math.max(1, Math.round((t.targetMs ?? 200) / perCall));
      return (await timeGpu(e.gpu, work, { warmup: 1, repeats: t.repeats, calls })).minMs;
    }
  }
  if (t.warmup !== 0) return (await timeGpu(e.gpu, work, t)).minMs;
  const start = performance.now();
  work();
  await e.gpu.sync();
  return performance.now() - start;
}

/**
 * The fastest variant of `variants` on `run`: all timed against each other in interleaved rounds
 * (medians), so that a disturbed measurement does not pick a slower variant as the baseline; a
 * variant refused on these shapes (its loops would overrun) is left out.
 */
async function fastestGemv(
  e: Engine,
  variants: readonly GemvVariant[],
  run: (v: GemvVariant) => void,
): Promise<GemvVariant> {
  const runnable = variants.filter((v) => refusal(() => run(v)) === null);
  const times = await timeInterleaved(e.gpu, runnable.map((v) => () => run(v)), VARIANT_ROUNDS);
  return runnable[times.reduce((best, t, i) => (t.ms < times[best].ms ? i : best), 0)];
}

/** Rounds that pick the fastest dense GEMV variant of each layout for a layer. */
const VARIANT_ROUNDS = { rounds: 5, targetMs: 50 };

/** Why the library refuses `work` on its shapes (a binding or loop limit), or null. */
function refusal(work: () => void): string | null {
  try {
    work();
    return null;
  } catch (err) {
    if (err instanceof ShapeError) return err.message;
    throw err;
  }
}

/** The cell's time, or why the library refused its shapes (a binding or loop limit). */
async function timeOrRefusal(
  time: (work: () => void) => Promise<number>,
  work: () => void,
): Promise<number | string> {
  try {
    return await time(work);
  } catch (err) {
    if (err instanceof ShapeError) return err.message;
    throw err;
  }
}

const CELLS: [Sparsity, NmEncoding][] = [
  ...NM_PATTERNS.flatMap((p) =>
    (["combinatorial", "indices"] as NmEncoding[]).map((enc) => [p, enc] as [Sparsity, NmEncoding])
  ),
  ["unstructured", "indices"],
];

interface Layer {
  inF: number;
  out: number;
  w: Tensor;
  /** Wᵀ [in, out], for the one-token products against W stored transposed. */
  wt: Tensor;
  /** Compressed W and the prune time per cell (weights are pruned once per layer). */
  pruned: Map<string, { nm: NmTensor; ms: number }>;
}

/**
 * Every cell, token counts in the outer loop: the cheap small-T cells of every layer come first,
 * and `onBlock` receives the report so far after each (T, layer) block (a run cut short keeps them).
 */
export async function runSparseBenchmark(
  e: Engine,
  grid: SparseGrid,
  opts: {
    repeats: number;
    /** One token: interleaved rounds of dense and sparse GEMVs per cell (medians). */
    rounds: number;
    onProgress?: (line: string) => void;
    onBlock?: (partial: SparseReport) => Promise<void>;
  },
): Promise<SparseReport> {
  const start = performance.now();
  const rows: SparseRow[] = [];
  const layers: Layer[] = grid.shapes.map(([inF, out]) => {
    const w = e.tensor(randomArray(out * inF, 2), [out, inF], "f32", "bench W");
    return { inF, out, w, wt: transpose(w), pruned: new Map() };
  });
  const report = (): SparseReport => ({
    grid,
    oneTokenRounds: opts.rounds,
    kernels: {
      matmul: matmulVariantOf(e).name,
      gemv: GEMV_CHOICE.of(e).name,
      sparseGemv: SPARSE_GEMV_CHOICE.of(e).name,
      sparseGemvTransposed: TRANSPOSED_SPARSE_GEMV_CHOICE.of(e).name,
      gemvTransposed: TRANSPOSED_GEMV_CHOICE.of(e).name,
      sparseTiled: SPARSE_TILED_CHOICE.of(e).name,
    },
    rows,
    seconds: (performance.now() - start) / 1000,
  });
  try {
    for (const tokens of grid.tokens) {
      for (const layer of layers) {
        rows.push(...await runTokens(e, grid, layer, tokens, opts));
        await opts.onBlock?.(report());
      }
    }
  } finally {
    for (const layer of layers) {
      for (const { nm } of layer.pruned.values()) nm.dispose();
      layer.w.dispose();
      layer.wt.dispose();
    }
  }
  return report();
}

function prune(operand: Tensor, s: Sparsity, encoding: NmEncoding): NmTensor {
  const d = operand.shape[1];
  return s === "unstructured"
    ? pruneUnstructured(operand, keepAtRatio(d, { n: 1, m: 2 })).nm
    : pruneNm(operand, s, { encoding }).nm;
}

/** Every cell of one token count on one layer. */
async function runTokens(
  e: Engine,
  grid: SparseGrid,
  layer: Layer,
  tokens: number,
  opts: { repeats: number; rounds: number; onProgress?: (line: string) => void },
): Promise<SparseRow[]> {
  const { inF, out, w, wt } = layer;
  const compiled = grid.tokens.some((t) => t > 1 && t < tokens);
  const timing = timingFor(tokens, opts.repeats, compiled);
  const time = (work: () => void) => timeWork(e, work, timing);
  const rows: SparseRow[] = [];
  const x = e.tensor(randomArray(tokens * inF, 1), [tokens, inF], "f32", "bench X");
  const gemvs = tokens === 1 ? await fastestGemvs(e, x, w, wt) : null;
  const denseMatmul = () => matmul(x, w, { transB: true }).dispose();
  const matmulOnce = await time(denseMatmul);
  const denseBytes = (tokens * inF + out * inF + tokens * out) * 4;
  for (const role of grid.roles) {
    for (const [s, encoding] of CELLS.filter(([, enc]) => grid.encodings.includes(enc))) {
      if (grid.allCellsUpTo !== null && tokens > grid.allCellsUpTo && !comparedCell(s)) {
        const dense = { denseMs: matmulOnce, matmulMs: matmulOnce };
        const cell = { tokens, inF, out, role, s, encoding, denseBytes, dense };
        rows.push(leftOut(grid.allCellsUpTo, cell));
        opts.onProgress?.(progressLine(rows[rows.length - 1]));
        continue;
      }
      const key = `${sparsityName(s)} ${encoding}`;
      let nm: NmTensor;
      let pruneMs: number;
      if (role === "weight") {
        if (!layer.pruned.has(key)) {
          const ms = await time(() => prune(w, s, encoding).dispose());
          layer.pruned.set(key, { nm: prune(w, s, encoding), ms });
        }
        ({ nm, ms: pruneMs } = layer.pruned.get(key)!);
      } else {
        pruneMs = await time(() => prune(x, s, encoding).dispose());
        nm = prune(x, s, encoding);
      }
      const product = (variant: SparseMatmulVariant = "auto"): Tensor =>
        role === "activation"
          ? sparseActivationMatmul(nm, w, { variant })
          : sparseWeightMatmul(x, nm, { variant });
      // Small T: the dense matmul is timed again beside every cell, so that both figures of a
      // ratio see the same load from the other jobs on the cores (one token: see timeOneToken).
      const matmulMs = tokens <= 16 ? await time(denseMatmul) : matmulOnce;
      const figures = gemvs
        ? await timeOneToken(e, gemvs, { x, w, wt }, {
          sparse: () => product().dispose(),
          sparseTransposed: role === "activation"
            ? () => sparseActivationGemvTransposed(nm, wt).dispose()
            : null,
          rounds: opts.rounds,
        })
        : await timeBatch(time, () => product().dispose(), matmulMs);
      const { sparseMs, sparseTMs } = figures;
      const untiledMs = tokens === 16 && sparseMs !== null
        ? await time(() => product("untiled").dispose())
        : null;
      const row: SparseRow = {
        tokens,
        in: inF,
        out,
        role,
        sparsity: sparsityName(s),
        encoding,
        metadataBitsPerElement: (nm.meta.size * 32) / (nm.layout.lanes * inF),
        sparseMs,
        denseMs: figures.denseMs,
        denseVariant: figures.denseVariant,
        speedup: sparseMs === null ? null : figures.denseMs / sparseMs,
        matmulMs,
        sparseTransposedMs: sparseTMs,
        denseTransposedMs: sparseTMs === null ? null : figures.denseTMs,
        speedupTransposed: sparseTMs === null ? null : figures.denseMs / sparseTMs,
        untiledMs,
        sparseBytes: sparseBytes(nm.layout, role, tokens, inF, out),
        denseBytes,
        pruneMs,
        notRun: figures.refused === null ? null : `refused: ${figures.refused}`,
      };
      if (role === "activation") nm.dispose();
      rows.push(row);
      opts.onProgress?.(progressLine(row));
    }
  }
  x.dispose();
  return rows;
}

/** A cell's sparse and dense figures (the dense GEMVs' for one token, the matmul's otherwise). */
interface CellFigures {
  sparseMs: number | null;
  denseMs: number;
  denseVariant: string | null;
  /** Activation-sparse, one token: the sparse GEMV on Wᵀ and the fastest dense GEMV on Wᵀ. */
  sparseTMs: number | null;
  denseTMs: number | null;
  /** Why the library refused the sparse product (a binding or loop limit), or null. */
  refused: string | null;
}

/** More than one token: the sparse product timed on its own against the matmul's time. */
async function timeBatch(
  time: (work: () => void) => Promise<number>,
  sparse: () => void,
  matmulMs: number,
): Promise<CellFigures> {
  const t = await timeOrRefusal(time, sparse);
  return {
    sparseMs: typeof t === "number" ? t : null,
    denseMs: matmulMs,
    denseVariant: null,
    sparseTMs: null,
    denseTMs: null,
    refused: typeof t === "string" ? t : null,
  };
}

/** Milliseconds one batch of one work runs in the one-token rounds. */
const ONE_TOKEN_BATCH_MS = 100;

/**
 * One token: the fastest dense GEMV of each layout (W and Wᵀ), the sparse GEMV and, activation-
 * sparse, the sparse GEMV on Wᵀ, timed against each other in interleaved rounds (medians), so that
 * the machine's drift over the cell falls on dense and sparse alike. The dense figure is the
 * faster layout's median.
 */
async function timeOneToken(
  e: Engine,
  [rowsGemv, colsGemv]: [GemvVariant, GemvVariant],
  { x, w, wt }: { x: Tensor; w: Tensor; wt: Tensor },
  cell: { sparse: () => void; sparseTransposed: (() => void) | null; rounds: number },
): Promise<CellFigures> {
  const refused = refusal(cell.sparse);
  const sparseTransposed = cell.sparseTransposed && refusal(cell.sparseTransposed) === null
    ? cell.sparseTransposed
    : null;
  const works = [
    () => gemv(x, w, { variant: rowsGemv.name }).dispose(),
    () => gemv(x, wt, { variant: colsGemv.name, transposed: true }).dispose(),
    ...(refused === null ? [cell.sparse] : []),
    ...(sparseTransposed ? [sparseTransposed] : []),
  ];
  const t = await timeInterleaved(e.gpu, works, {
    rounds: cell.rounds,
    targetMs: ONE_TOKEN_BATCH_MS,
  });
  const [rowsMs, colsMs] = [t[0].ms, t[1].ms];
  return {
    sparseMs: refused === null ? t[2].ms : null,
    denseMs: Math.min(rowsMs, colsMs),
    denseVariant: rowsMs <= colsMs ? `${rowsGemv.name} (W)` : `${colsGemv.name} (Wᵀ)`,
    sparseTMs: sparseTransposed ? t[t.length - 1].ms : null,
    denseTMs: colsMs,
    refused,
  };
}

/** The cells the issue compares at every T: 8:16 and unstructured 50%. */
function comparedCell(s: Sparsity): boolean {
  return s === "unstructured" || (s.n === 8 && s.m === 16);
}

/** The row of a cell the grid leaves out at this T. */
function leftOut(
  upTo: number,
  c: {
    tokens: number;
    inF: number;
    out: number;
    role: Role;
    s: Sparsity;
    encoding: NmEncoding;
    denseBytes: number;
    dense: { denseMs: number; matmulMs: number };
  },
): SparseRow {
  const pattern = c.s === "unstructured"
    ? { n: keepAtRatio(c.inF, { n: 1, m: 2 }), m: c.inF }
    : c.s;
  const lanes = c.role === "weight" ? c.out : c.tokens;
  const layout = nmLayout("bench", [lanes, c.inF], 1, pattern, c.encoding, c.s === "unstructured");
  return {
    tokens: c.tokens,
    in: c.inF,
    out: c.out,
    role: c.role,
    sparsity: sparsityName(c.s),
    encoding: c.encoding,
    metadataBitsPerElement: (layout.words * 32) / c.inF,
    sparseMs: null,
    denseMs: c.dense.denseMs,
    denseVariant: null,
    speedup: null,
    matmulMs: c.dense.matmulMs,
    sparseTransposedMs: null,
    denseTransposedMs: null,
    speedupTransposed: null,
    untiledMs: null,
    sparseBytes: sparseBytes(layout, c.role, c.tokens, c.inF, c.out),
    denseBytes: c.denseBytes,
    pruneMs: null,
    notRun: `not run: above T = ${upTo} only 8:16 and unstructured 50% run (--all-cells)`,
  };
}

function progressLine(r: SparseRow): string {
  const extra = r.sparseTransposedMs !== null
    ? `; sparse Wᵀ ${r.sparseTransposedMs.toFixed(3)} ms (${
      r.speedupTransposed!.toFixed(2)
    }×), dense Wᵀ ${r.denseTransposedMs!.toFixed(3)} ms`
    : r.untiledMs !== null
    ? `; untiled ${r.untiledMs.toFixed(3)} ms`
    : "";
  const cell = `T=${r.tokens} ${r.in}→${r.out} ${r.role} ${r.sparsity} ${r.encoding}`;
  if (r.sparseMs === null) return `${cell}: ${r.notRun}`;
  return `${cell}: ${r.sparseMs.toFixed(3)} ms vs dense ${r.denseMs.toFixed(3)} ms${
    r.denseVariant ? ` (${r.denseVariant})` : ""
  } (${r.speedup!.toFixed(2)}×)${extra}`;
}

/** The fastest dense GEMV on W [out, in] and on Wᵀ [in, out] for this layer. */
async function fastestGemvs(
  e: Engine,
  x: Tensor,
  w: Tensor,
  wt: Tensor,
): Promise<[GemvVariant, GemvVariant]> {
  const rows = GEMV_VARIANTS.filter((v) => v.shape !== "cols");
  const cols = GEMV_VARIANTS.filter((v) => v.shape === "cols");
  return [
    await fastestGemv(e, rows, (v) => gemv(x, w, { variant: v.name }).dispose()),
    await fastestGemv(
      e,
      cols,
      (v) => gemv(x, wt, { variant: v.name, transposed: true }).dispose(),
    ),
  ];
}

export function formatSparseReport(r: SparseReport, adapter: string): string {
  const rows: Cell[][] = r.rows.map((x) => [
    String(x.tokens),
    `${x.in}→${x.out}`,
    x.role,
    x.sparsity,
    x.encoding,
    x.metadataBitsPerElement,
    x.sparseMs ?? x.notRun!,
    x.denseMs,
    x.denseVariant ?? "matmul",
    x.speedup ?? "",
    x.sparseTransposedMs ?? "",
    x.denseTransposedMs ?? "",
    x.speedupTransposed ?? "",
    x.untiledMs ?? "",
    x.sparseBytes / 2 ** 20,
    x.denseBytes / 2 ** 20,
    x.pruneMs ?? "",
  ]);
  return [
    `sparse products on ${adapter} (${r.seconds.toFixed(0)} s; kernels ${
      Object.entries(r.kernels).map(([k, v]) => `${k} ${v}`).join(", ")
    })`,
    formatTable([
      "T",
      "in→out",
      "sparse",
      "pattern",
      "encoding",
      "meta bits/el",
      "sparse ms",
      "dense ms",
      "dense kernel",
      "speedup",
      "sparse Wᵀ ms",
      "dense Wᵀ ms",
      "Wᵀ speedup",
      "untiled ms",
      "sparse MiB",
      "dense MiB",
      "prune ms",
    ], rows),
  ].join("\n");
}
