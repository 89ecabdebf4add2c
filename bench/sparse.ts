/**
 * The sparse benchmark: N:M and unstructured 50% products against the project's dense kernels in
 * the same run (issue 13). Per cell: the sparse product's time and the dense baseline's on the same
 * shapes (one token: the dense GEMV; more: the tiled matmul), the bytes each moves at least once,
 * the metadata's bits per element and the time of the prune kernel that makes the compressed
 * operand. One token also times both against W stored transposed (activation-sparse), and 16
 * tokens the untiled sparse kernel the tiled one replaces. From 512 tokens on, each figure is one
 * call after a warm-up (4096: one call, the pipelines compiled by the smaller T), so that the full
 * grid fits a CPU adapter's half hour.
 */
import type { Engine } from "../src/tensor/engine.ts";
import { matmul } from "../src/tensor/ops/matmul.ts";
import {
  NM_PATTERNS,
  type NmEncoding,
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
import { gemv, GEMV_CHOICE } from "../src/tensor/ops/gemv.ts";
import { matmulVariantOf } from "../src/tensor/ops/matmul.ts";
import { SPARSE_GEMV_CHOICE, TRANSPOSED_SPARSE_GEMV_CHOICE } from "../src/sparse/gemv.ts";
import { SPARSE_TILED_CHOICE } from "../src/sparse/tiled.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { seededRandom } from "../src/tensor/random.ts";
import { type Cell, formatTable, timeGpu, type TimingOptions } from "./util.ts";

export type Role = "activation" | "weight";

export interface SparseGrid {
  tokens: number[];
  /** (in, out) of the layer y = x·Wᵀ. */
  shapes: [number, number][];
  roles: Role[];
  encodings: NmEncoding[];
}

export const DEFAULT_GRID: SparseGrid = {
  tokens: [1, 16, 512, 4096],
  shapes: [[1024, 1024], [1024, 4096], [4096, 1024]],
  roles: ["activation", "weight"],
  encodings: ["combinatorial", "indices"],
};

/** What llvmpipe gets through in minutes: the decoding and small-batch end of the grid. */
export const QUICK_GRID: SparseGrid = {
  tokens: [1, 16],
  shapes: [[1024, 1024]],
  roles: ["activation", "weight"],
  encodings: ["combinatorial", "indices"],
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
  /** The library's kernel for T (GEMV for one token, tiled otherwise). */
  sparseMs: number;
  /** The dense baseline: the dense GEMV for one token, the tiled matmul otherwise. */
  denseMs: number;
  /** denseMs / sparseMs. */
  speedup: number;
  /** The dense tiled matmul (at T = 1 too, for comparison with the GEMV). */
  matmulMs: number;
  /** T = 1, activation-sparse: W stored transposed [in, out], sparse and dense GEMV. */
  sparseTransposedMs: number | null;
  denseTransposedMs: number | null;
  /** T = 16: the untiled sparse kernel (an invocation per output). */
  untiledMs: number | null;
  sparseBytes: number;
  denseBytes: number;
  pruneMs: number;
}

export interface SparseReport {
  grid: SparseGrid;
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
function sparseBytes(nm: NmTensor, role: Role, tokens: number, inF: number, out: number): number {
  const compressed = (nm.values.size + nm.meta.size) * 4;
  const dense = role === "weight"
    ? tokens * inF * 4
    : tokens === 1
    ? out * nm.layout.kept * 4
    : out * inF * 4;
  return compressed + dense + tokens * out * 4;
}

/** Fewer calls as T grows: a 4096-token product on a CPU adapter takes seconds. */
function timingFor(tokens: number, repeats: number): TimingOptions {
  if (tokens >= 4096) return { warmup: 0, repeats: 1, calls: 1 };
  if (tokens >= 512) return { warmup: 1, repeats: 1, calls: 1 };
  return { repeats, warmup: 1, targetMs: 200 };
}

/**
 * The fastest repetition of timeGpu (cores shared with other jobs only ever slow a run down), or
 * with no warm-up a single timed call (the pipelines already compiled).
 */
async function timeWork(e: Engine, work: () => void, t: TimingOptions): Promise<number> {
  if (t.warmup !== 0) return (await timeGpu(e.gpu, work, t)).minMs;
  const start = performance.now();
  work();
  await e.gpu.sync();
  return performance.now() - start;
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
    onProgress?: (line: string) => void;
    onBlock?: (partial: SparseReport) => Promise<void>;
  },
): Promise<SparseReport> {
  const start = performance.now();
  const rows: SparseRow[] = [];
  const layers: Layer[] = grid.shapes.map(([inF, out]) => {
    const wData = randomArray(out * inF, 2);
    return {
      inF,
      out,
      w: e.tensor(wData, [out, inF], "f32", "bench W"),
      wt: e.tensor(transpose(wData, out, inF), [inF, out], "f32", "bench Wt"),
      pruned: new Map(),
    };
  });
  const report = (): SparseReport => ({
    grid,
    kernels: {
      matmul: matmulVariantOf(e).name,
      gemv: GEMV_CHOICE.of(e).name,
      sparseGemv: SPARSE_GEMV_CHOICE.of(e).name,
      sparseGemvTransposed: TRANSPOSED_SPARSE_GEMV_CHOICE.of(e).name,
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

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
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
  opts: { repeats: number; onProgress?: (line: string) => void },
): Promise<SparseRow[]> {
  const { inF, out, w, wt } = layer;
  const timing = timingFor(tokens, opts.repeats);
  const time = (work: () => void) => timeWork(e, work, timing);
  const rows: SparseRow[] = [];
  const x = e.tensor(randomArray(tokens * inF, 1), [tokens, inF], "f32", "bench X");
  // Small T: the dense baselines are timed again beside every cell, so that both figures of a
  // ratio see the same load from the other jobs on the cores.
  const dense = async () => {
    const matmulMs = await time(() => matmul(x, w, { transB: true }).dispose());
    const gemvMs = tokens === 1 ? await time(() => gemv(x, w).dispose()) : null;
    const gemvTMs = tokens === 1
      ? await time(() => gemv(x, wt, { transposed: true }).dispose())
      : null;
    return { matmulMs, gemvTMs, denseMs: gemvMs ?? matmulMs };
  };
  const once = await dense();
  const denseBytes = (tokens * inF + out * inF + tokens * out) * 4;
  for (const role of grid.roles) {
    for (const [s, encoding] of CELLS.filter(([, enc]) => grid.encodings.includes(enc))) {
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
      const { matmulMs, gemvTMs, denseMs } = tokens <= 16 ? await dense() : once;
      const sparseMs = await time(() => product().dispose());
      const transposed = tokens === 1 && role === "activation";
      const sparseTMs = transposed
        ? await time(() => sparseActivationGemvTransposed(nm, wt).dispose())
        : null;
      const untiledMs = tokens === 16 ? await time(() => product("untiled").dispose()) : null;
      const row: SparseRow = {
        tokens,
        in: inF,
        out,
        role,
        sparsity: sparsityName(s),
        encoding,
        metadataBitsPerElement: (nm.meta.size * 32) / (nm.layout.lanes * inF),
        sparseMs,
        denseMs,
        speedup: denseMs / sparseMs,
        matmulMs,
        sparseTransposedMs: sparseTMs,
        denseTransposedMs: transposed ? gemvTMs : null,
        untiledMs,
        sparseBytes: sparseBytes(nm, role, tokens, inF, out),
        denseBytes,
        pruneMs,
      };
      if (role === "activation") nm.dispose();
      rows.push(row);
      opts.onProgress?.(progressLine(row));
    }
  }
  x.dispose();
  return rows;
}

function progressLine(r: SparseRow): string {
  const extra = r.sparseTransposedMs !== null
    ? `; Wᵀ: ${r.sparseTransposedMs.toFixed(3)} vs ${r.denseTransposedMs!.toFixed(3)} ms`
    : r.untiledMs !== null
    ? `; untiled ${r.untiledMs.toFixed(3)} ms`
    : "";
  return `T=${r.tokens} ${r.in}→${r.out} ${r.role} ${r.sparsity} ${r.encoding}: ${
    r.sparseMs.toFixed(3)
  } ms vs dense ${r.denseMs.toFixed(3)} ms (${r.speedup.toFixed(2)}×)${extra}`;
}

export function formatSparseReport(r: SparseReport, adapter: string): string {
  const rows: Cell[][] = r.rows.map((x) => [
    String(x.tokens),
    `${x.in}→${x.out}`,
    x.role,
    x.sparsity,
    x.encoding,
    x.metadataBitsPerElement,
    x.sparseMs,
    x.denseMs,
    x.speedup,
    x.sparseTransposedMs ?? "",
    x.denseTransposedMs ?? "",
    x.untiledMs ?? "",
    x.sparseBytes / 2 ** 20,
    x.denseBytes / 2 ** 20,
    x.pruneMs,
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
      "speedup",
      "sparse Wᵀ ms",
      "dense Wᵀ ms",
      "untiled ms",
      "sparse MiB",
      "dense MiB",
      "prune ms",
    ], rows),
  ].join("\n");
}
