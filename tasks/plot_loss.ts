/** `deno task plot:loss`: the loss benchmark's peak memory against catalogue size, as a PNG. */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { findChromium, memoryPlotSvg, renderPng } from "../bench/plot.ts";
import { TARGET } from "../bench/loss.ts";
import type { LossCell } from "../bench/loss.ts";
import { runMain } from "./cli.ts";

const RESULTS = fileURLToPath(new URL("../bench/results/", import.meta.url));
const OUT = fileURLToPath(new URL("../bench/loss-memory.png", import.meta.url));

const HELP = `Usage: deno task plot:loss [flags]

Draws the peak GPU bytes of each loss against the catalogue size C (log-log) at one K and d from
a bench:loss result file, with the lower bound (inputs + gradients) as a dashed line; cells that
were not run (over budget or time) appear as hollow markers at their estimate. Renders an inline
SVG in headless Chromium (/usr/bin/chromium) and writes a PNG.

Flags:
  --input PATH      a bench:loss result [default: the newest ${RESULTS}loss-*.json]
  --out PATH        the PNG [default: ${OUT}]
  --svg PATH        also write the SVG there
  --negatives K     the sampled losses' K [default: ${TARGET.negatives}]
  --dim D           the width d [default: ${TARGET.dim}]
  --help            print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      input: { type: "string" },
      out: { type: "string", default: OUT },
      svg: { type: "string" },
      negatives: { type: "string", default: String(TARGET.negatives) },
      dim: { type: "string", default: String(TARGET.dim) },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const input = values.input ?? newestResult();
  const result = JSON.parse(await Deno.readTextFile(input)) as {
    adapter: string;
    cells: LossCell[];
  };
  const negatives = Number(values.negatives);
  const dim = Number(values.dim);
  const positions = result.cells.find((c) => c.dim === dim)?.positions ?? "?";
  const svg = memoryPlotSvg(result.cells, {
    negatives,
    dim,
    title: `Loss forward + backward, N = ${positions}, K = ${negatives}, d = ${dim}, on ` +
      result.adapter.replace(/, vendor .*$/, ""),
  });
  if (values.svg) await Deno.writeTextFile(values.svg, svg);
  const chromium = findChromium();
  if (!chromium) {
    console.error("error: no Chromium at /usr/bin/chromium (apt-get install -y chromium)");
    return 1;
  }
  await renderPng(svg, values.out, chromium);
  console.log(`wrote ${values.out} from ${input}`);
  return 0;
}

function newestResult(): string {
  let best: { path: string; mtime: number } | null = null;
  for (const entry of Deno.readDirSync(RESULTS)) {
    if (!/^loss-.*\.json$/.test(entry.name)) continue;
    const path = RESULTS + entry.name;
    const mtime = Deno.statSync(path).mtime?.getTime() ?? 0;
    if (!best || mtime > best.mtime) best = { path, mtime };
  }
  if (!best) throw new Error(`no loss-*.json in ${RESULTS}: run deno task bench:loss first`);
  return best.path;
}

if (import.meta.main) await runMain(main);
