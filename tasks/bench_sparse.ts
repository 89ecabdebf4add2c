/** `deno task bench:sparse`: N:M sparse products against the dense matmul of this adapter. */
import { parseArgs } from "node:util";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { tuneMatmul } from "../src/tensor/ops/matmul_tune.ts";
import {
  DEFAULT_GRID,
  formatSparseReport,
  QUICK_GRID,
  runSparseBenchmark,
  type SparseGrid,
  type SparseReport,
} from "../bench/sparse.ts";
import { writeResult } from "../bench/util.ts";
import { positiveInt, runMain } from "./cli.ts";

const gridText = (g: SparseGrid) =>
  `T ${g.tokens.join(",")}; (in, out) ${g.shapes.map(([i, o]) => `(${i}, ${o})`).join(" ")}`;

const HELP = `Usage: deno task bench:sparse [flags]

Times Y = S(X)·Wᵀ (activation-sparse: each token's features pruned N:M) and Y = X·S(W)ᵀ
(weight-sparse) with the compressed operand read as is, for 2:4, 4:8, 8:16, 16:32 in both
metadata encodings and unstructured 50%, against the project's dense matmul (the tuned variant)
on the same shapes in the same run. Per cell: times, speedup, bytes moved at least once (values
+ metadata + dense operand + Y), stored metadata bits per element, and the prune kernel's time.
One token runs the GEMV kernels against the fastest dense GEMV of either layout, W [out, in] or
W stored transposed (every variant measured on each layer), and, activation-sparse, also the
sparse GEMV against W stored transposed ("Wᵀ speedup"); in each cell these alternate batch by
batch over --rounds rounds and every figure is the median of its rounds. 16 tokens also time
the untiled sparse kernel. Token counts run smallest first over every layer; from 512 tokens
each figure is a single call. A cell the library refuses (or the grid leaves out) stays in the
table with the reason. Prints a table and writes bench/results/sparse-<adapter>.json, rewritten after every
(T, layer) block ("complete": false until the grid is done).

Grid: ${gridText(DEFAULT_GRID)}
Quick grid (--quick): ${gridText(QUICK_GRID)}

Flags:
  --quick       the quick grid (minutes on a CPU adapter)
  --all-cells   every pattern at every T on a CPU adapter too (by default above T = ${DEFAULT_GRID.allCellsUpTo}
                only 8:16 and unstructured 50% run there: one 4096-token product of the larger
                layers takes 25-80 s on llvmpipe)
  --tokens LIST token counts to run instead of the grid's, e.g. 4096
  --shapes LIST layers (in)x(out) to run instead of the grid's, e.g. 1024x4096,4096x1024
                (with --tokens or --shapes the JSON is bench/results/sparse-cells-<adapter>.json)
  --repeats N   timed repetitions per figure (fastest reported) [default: 3]
  --rounds N    one token: rounds in which the dense and sparse GEMVs of a cell alternate, batch
                by batch (medians reported) [default: 9]
  --quiet       print only the final table
  --help        print this help`;

/** `base` with its token counts and layers replaced by the flags' lists, where given. */
function pickGrid(base: SparseGrid, tokens?: string, shapes?: string): SparseGrid {
  return {
    ...base,
    tokens: tokens ? tokens.split(",").map((t) => positiveInt("--tokens", t)) : base.tokens,
    shapes: shapes
      ? shapes.split(",").map((s) => {
        const [i, o, ...rest] = s.split("x");
        if (o === undefined || rest.length > 0) {
          throw new Error(`--shapes: expected (in)x(out), got "${s}"`);
        }
        return [positiveInt("--shapes", i), positiveInt("--shapes", o)] as [number, number];
      })
      : base.shapes,
  };
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      tokens: { type: "string" },
      "all-cells": { type: "boolean", default: false },
      shapes: { type: "string" },
      repeats: { type: "string", default: "3" },
      rounds: { type: "string", default: "9" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const repeats = positiveInt("--repeats", values.repeats);
  const rounds = positiveInt("--rounds", values.rounds);
  const engine = await Engine.create();
  try {
    const tuned = await tuneMatmul(engine, { cacheDir: "runs/cache" });
    console.error(`matmul variant ${tuned.variant.name} (${tuned.source})`);
    const picked = pickGrid(values.quick ? QUICK_GRID : DEFAULT_GRID, values.tokens, values.shapes);
    // A GPU runs every cell in minutes; a CPU adapter the larger T only for the compared cells.
    const everyCell = values["all-cells"] || !engine.gpu.isSoftware;
    const grid = everyCell ? { ...picked, allCellsUpTo: null } : picked;
    // Cells picked by --tokens or --shapes go to their own file, leaving the grid's intact.
    const name = values.tokens || values.shapes ? "sparse-cells" : "sparse";
    const write = (report: SparseReport, complete: boolean) =>
      writeResult(name, engine.gpu.adapterName, {
        quick: values.quick,
        complete,
        matmulVariant: tuned.variant.name,
        ...report,
      });
    const report = await runSparseBenchmark(engine, grid, {
      repeats,
      rounds,
      onProgress: values.quiet ? undefined : (line) => console.error(line),
      // Rewritten after every block: a run stopped early keeps the cells it measured.
      onBlock: async (partial) => void await write(partial, false),
    });
    console.log(formatSparseReport(report, engine.gpu.adapterName));
    const path = await write(report, true);
    console.log(`\nwrote ${path}`);
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
