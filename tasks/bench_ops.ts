/** `deno task bench:ops`: matmul, dispatch and elementwise figures of this adapter. */
import { parseArgs } from "node:util";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { tuneMatmul } from "../src/tensor/ops/matmul_tune.ts";
import { formatOpsReport, runOpsBenchmark } from "../bench/ops.ts";
import { writeResult } from "../bench/util.ts";

const HELP = `Usage: deno task bench:ops [flags]

Measures matmul GFLOP/s (1024³ in every transpose variant; the recommender's linear layers
6400×64×64, 6400×64×256, 6400×256×64 forward and backward) against the scalar baseline kernel,
the fixed cost of a dispatch, and the bandwidth of an elementwise add. Prints a table and writes
bench/results/ops-<adapter>.json.

Flags:
  --repeats N   timed repetitions per figure (median reported) [default: 5]
  --quiet       print only the final table
  --help        print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      repeats: { type: "string", default: "5" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const repeats = Number(values.repeats);
  if (!Number.isInteger(repeats) || repeats < 1) {
    console.error(`error: --repeats must be a positive integer, got ${values.repeats}`);
    return 2;
  }
  const engine = await Engine.create();
  try {
    const tuned = await tuneMatmul(engine, { cacheDir: "runs/cache" });
    console.error(`matmul variant ${tuned.variant.name} (${tuned.source})`);
    const report = await runOpsBenchmark(engine, {
      repeats,
      onProgress: values.quiet ? undefined : (line) => console.error(line),
    });
    console.log(formatOpsReport(report, engine.gpu.adapterName));
    const path = await writeResult("ops", engine.gpu.adapterName, { ...report });
    console.log(`\nwrote ${path}`);
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
