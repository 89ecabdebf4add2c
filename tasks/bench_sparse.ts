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
One token runs the GEMV kernels against the dense GEMV (and, activation-sparse, both against W
stored transposed); 16 tokens also time the untiled sparse kernel. Token counts run smallest
first over every layer; from 512 tokens each figure is a single call. Prints a table and writes
bench/results/sparse-<adapter>.json, rewritten after every (T, layer) block ("complete": false
until the grid is done).

Grid: ${gridText(DEFAULT_GRID)}
Quick grid (--quick): ${gridText(QUICK_GRID)}

Flags:
  --quick       the quick grid (minutes on a CPU adapter; the full grid is for a GPU)
  --repeats N   timed repetitions per figure (fastest reported) [default: 3]
  --quiet       print only the final table
  --help        print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      repeats: { type: "string", default: "3" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const repeats = positiveInt("--repeats", values.repeats);
  const engine = await Engine.create();
  try {
    const tuned = await tuneMatmul(engine, { cacheDir: "runs/cache" });
    console.error(`matmul variant ${tuned.variant.name} (${tuned.source})`);
    const grid = values.quick ? QUICK_GRID : DEFAULT_GRID;
    const write = (report: SparseReport, complete: boolean) =>
      writeResult("sparse", engine.gpu.adapterName, {
        quick: values.quick,
        complete,
        matmulVariant: tuned.variant.name,
        ...report,
      });
    const report = await runSparseBenchmark(engine, grid, {
      repeats,
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
