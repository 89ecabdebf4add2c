/**
 * The sparse benchmark: N:M and unstructured 50% products against the project's dense matmul in
 * the same run (issue 13). Per cell: the sparse product's time and the dense one's on the same
 * shapes, the bytes each moves at least once, the metadata's bits per element and the time of
 * the prune kernel that makes the compressed operand.
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
import { sparseActivationMatmul, sparseWeightMatmul } from "../src/sparse/matmul.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { seededRandom } from "../src/tensor/random.ts";
import { type Cell, formatTable, timeGpu } from "./util.ts";

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
  sparseMs: number;
  denseMs: number;
  /** denseMs / sparseMs. */
  speedup: number;
  sparseBytes: number;
  denseBytes: number;
  pruneMs: number;
}

export interface SparseReport {
  grid: SparseGrid;
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

export async function runSparseBenchmark(
  e: Engine,
  grid: SparseGrid,
  opts: { repeats: number; onProgress?: (line: string) => void },
): Promise<SparseReport> {
  const start = performance.now();
  const rows: SparseRow[] = [];
  const timing = { repeats: opts.repeats, warmup: 1, targetMs: 200 };
  for (const [inF, out] of grid.shapes) {
    const w = e.tensor(randomArray(out * inF, 2), [out, inF], "f32", "bench W");
    for (const tokens of grid.tokens) {
      const x = e.tensor(randomArray(tokens * inF, 1), [tokens, inF], "f32", "bench X");
      const dense = await timeGpu(e.gpu, () => matmul(x, w, { transB: true }).dispose(), timing);
      const denseBytes = (tokens * inF + out * inF + tokens * out) * 4;
      for (const role of grid.roles) {
        const operand = role === "activation" ? x : w;
        const cells: [Sparsity, NmEncoding][] = [
          ...NM_PATTERNS.flatMap((p) =>
            grid.encodings.map((enc) => [p, enc] as [Sparsity, NmEncoding])
          ),
          ["unstructured", "indices"],
        ];
        for (const [s, encoding] of cells) {
          const prune = (): NmTensor =>
            s === "unstructured"
              ? pruneUnstructured(operand, keepAtRatio(inF, { n: 1, m: 2 })).nm
              : pruneNm(operand, s, { encoding }).nm;
          const pruneTime = await timeGpu(e.gpu, () => prune().dispose(), timing);
          const nm = prune();
          const product = (): Tensor =>
            role === "activation" ? sparseActivationMatmul(nm, w) : sparseWeightMatmul(x, nm);
          const sparse = await timeGpu(e.gpu, () => product().dispose(), timing);
          const row: SparseRow = {
            tokens,
            in: inF,
            out,
            role,
            sparsity: sparsityName(s),
            encoding,
            metadataBitsPerElement: (nm.meta.size * 32) / (nm.layout.lanes * inF),
            sparseMs: sparse.ms,
            denseMs: dense.ms,
            speedup: dense.ms / sparse.ms,
            sparseBytes: sparseBytes(nm, role, tokens, inF, out),
            denseBytes,
            pruneMs: pruneTime.ms,
          };
          nm.dispose();
          rows.push(row);
          opts.onProgress?.(
            `T=${tokens} ${inF}→${out} ${role} ${row.sparsity} ${encoding}: ${
              row.sparseMs.toFixed(3)
            } ms vs dense ${row.denseMs.toFixed(3)} ms (${row.speedup.toFixed(2)}×)`,
          );
        }
      }
      x.dispose();
    }
    w.dispose();
  }
  return { grid, rows, seconds: (performance.now() - start) / 1000 };
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
    x.sparseBytes / 2 ** 20,
    x.denseBytes / 2 ** 20,
    x.pruneMs,
  ]);
  return [
    `sparse products on ${adapter} (${r.seconds.toFixed(0)} s)`,
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
      "sparse MiB",
      "dense MiB",
      "prune ms",
    ], rows),
  ].join("\n");
}
