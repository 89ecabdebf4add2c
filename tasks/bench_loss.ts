/** `deno task bench:loss`: time and peak GPU bytes of CE, CE-, CCE and CCE- over C × K × d. */
import { parseArgs } from "node:util";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { formatBytes, parseBytes } from "../src/gpu/allocator.ts";
import {
  DEFAULT_GRID,
  formatCatalog,
  formatLossReport,
  LOSS_VARIANTS,
  type LossGrid,
  type LossVariant,
  QUICK_GRID,
  runLossBenchmark,
  variantLabel,
} from "../bench/loss.ts";
import { writeResult } from "../bench/util.ts";
import { positiveInt, positiveNumber, runMain } from "./cli.ts";

const list = (xs: (number | string)[]) => xs.join(",");

const QUICK = `C ${list(QUICK_GRID.catalogs)}, K ${list(QUICK_GRID.negatives)}, d ${
  list(QUICK_GRID.dims)
}`;

const HELP = `Usage: deno task bench:loss [flags]

Forward + backward of the output losses on their own (h [N, d] and the item table [C+1, d] as
leaves, the mean loss as output): CE (full softmax, logits materialised), CCE (fused), CE- with
per-position uniform negatives (gathered rows and logits materialised, as in the CCE- paper),
CE- with negatives shared by the batch, and CCE- (fused, the same per-position negatives drawn in
the kernel). Per cell: median time, the allocator's peak reserved bytes (everything included), the
lower bound (inputs + gradients: 4 × 2 × (N·d + (C+1)·d) bytes) and the estimate made before
allocating. Cells whose estimate exceeds the memory budget, or that need one buffer over the
device's maxBufferSize, are refused as "exceeds budget"; cells whose one forward + backward is
predicted (FLOPs and bytes, rescaled by the cells already measured) over --max-seconds are
skipped. Ends with the targets at C = 1M, K = 1024, d = 64. Prints a table and writes
bench/results/loss-<adapter>.json (after every cell, so an interrupted run keeps its cells).

Flags:
  --catalog LIST      catalogue sizes C [default: ${list(DEFAULT_GRID.catalogs)}]
  --negatives LIST    negatives K of the sampled losses [default: ${list(DEFAULT_GRID.negatives)}]
  --dim LIST          widths d [default: ${list(DEFAULT_GRID.dims)}]
  --variants LIST     of ${list(LOSS_VARIANTS)} [default: all]
  --batch B           sequences per batch [default: 128]
  --seq-len L         positions per sequence; N = B·L [default: 50]
  --quick             small grid: ${QUICK} (the flags above override it)
  --repeats N         timed runs per cell at most, median reported [default: 3]
  --max-seconds S     skip a cell whose one forward + backward is predicted over S seconds
                      [default: 120]
  --cell-seconds S    seconds a cell's runs may take together: one warm-up and up to --repeats
                      timed runs, fewer when they do not fit, down to one timed run without
                      warm-up [default: 30]
  --memory-limit B    GPU memory budget, e.g. 8GiB [default: 75% of RAM on a software adapter,
                      8 GiB on a GPU]
  --help              print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      catalog: { type: "string" },
      negatives: { type: "string" },
      dim: { type: "string" },
      variants: { type: "string" },
      batch: { type: "string", default: "128" },
      "seq-len": { type: "string", default: "50" },
      quick: { type: "boolean", default: false },
      repeats: { type: "string", default: "3" },
      "max-seconds": { type: "string", default: "120" },
      "cell-seconds": { type: "string", default: "30" },
      "memory-limit": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const base = values.quick ? QUICK_GRID : DEFAULT_GRID;
  const grid: LossGrid = {
    catalogs: values.catalog ? intList("--catalog", values.catalog) : base.catalogs,
    negatives: values.negatives ? intList("--negatives", values.negatives) : base.negatives,
    dims: values.dim ? intList("--dim", values.dim) : base.dims,
    variants: values.variants ? variantList(values.variants) : base.variants,
    positions: positiveInt("--batch", values.batch) * positiveInt("--seq-len", values["seq-len"]),
  };
  const memoryLimit = values["memory-limit"] ? parseBytes(values["memory-limit"]) : undefined;
  const engine = await Engine.create({ memoryLimit });
  try {
    const adapter = engine.gpu.adapterName;
    console.error(
      `${adapter}; N = ${grid.positions}; budget ${formatBytes(engine.gpu.allocator.limitBytes)}`,
    );
    const save = (data: Record<string, unknown>) => writeResult("loss", adapter, data);
    const report = await runLossBenchmark(engine, {
      grid,
      repeats: positiveInt("--repeats", values.repeats),
      maxSeconds: positiveNumber("--max-seconds", values["max-seconds"]),
      cellSeconds: positiveNumber("--cell-seconds", values["cell-seconds"]),
      onCell: async (c, cells) => {
        const k = c.negatives === null ? "" : ` K=${c.negatives}`;
        const what = c.status === "measured"
          ? `${(c.ms! / 1000).toFixed(2)} s, peak ${formatBytes(c.peakBytes!)}`
          : c.reason ?? c.status;
        console.error(
          `${variantLabel(c.variant)} C=${formatCatalog(c.catalog)}${k} d=${c.dim}: ${what}`,
        );
        await save({ grid, partial: true, cells });
      },
    });
    console.log(formatLossReport(report, adapter));
    const path = await save({ ...report });
    console.log(`\nwrote ${path}`);
  } finally {
    engine.destroy();
  }
  return 0;
}

function intList(flag: string, text: string): number[] {
  return text.split(",").map((s) => positiveInt(flag, s.trim()));
}

function variantList(text: string): LossVariant[] {
  return text.split(",").map((s) => {
    const v = s.trim() as LossVariant;
    if (!LOSS_VARIANTS.includes(v)) {
      throw new Error(`--variants: unknown variant "${s}" (want ${list(LOSS_VARIANTS)})`);
    }
    return v;
  });
}

if (import.meta.main) await runMain(main);
