/** `deno task bench:backends`: ops and training figures on each WebGPU backend, in one run. */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Engine } from "../src/tensor/engine.ts";
import { openAllBackends } from "../src/gpu/device.ts";
import "../src/tensor/ops/mod.ts";
import { tuneMatmul } from "../src/tensor/ops/matmul_tune.ts";
import { DEFAULTS, type TrainConfig } from "../src/train/config.ts";
import { prepareData } from "../src/train/recommender.ts";
import { runOpsBenchmark } from "../bench/ops.ts";
import { benchTrainVariant, type TrainVariant } from "../bench/train.ts";
import { type BackendFigures, formatBackendReport } from "../bench/backends.ts";
import { writeResult } from "../bench/util.ts";
import { positiveInt, runMain } from "./cli.ts";

const BEAUTY = fileURLToPath(new URL("../data/Beauty.txt", import.meta.url));

const VARIANTS: TrainVariant[] = [
  { label: "cce- 256 uniform", overrides: { loss: "cce-", negatives: 256, sampler: "uniform" } },
  { label: "ce- 256 shared", overrides: { loss: "ce-", negatives: 256, sampler: "shared" } },
  { label: "ce", overrides: { loss: "ce" } },
];

const HELP = `Usage: deno task bench:backends [flags]

Runs the ops benchmark and a few training steps of ${VARIANTS.map((v) => v.label).join(", ")} on the
Beauty configuration on each WebGPU backend named, one after the other in one process, and prints
each figure per backend with the first backend's ratio to the others. Writes
bench/results/backends-<adapter>.json. Deno picks Vulkan first once Mesa's lavapipe is installed
(Debian mesa-vulkan-drivers); this measures whether GL (llvmpipe) is faster.

Flags:
  --backends LIST  comma-separated DENO_WEBGPU_BACKEND values [default: gl,vulkan]
  --data PATH      training data [default: ${BEAUTY}]
  --steps N        timed training steps per variant [default: 10]
  --repeats N      timed repetitions per ops figure [default: 3]
  --help           print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      backends: { type: "string", default: "gl,vulkan" },
      data: { type: "string", default: BEAUTY },
      steps: { type: "string", default: "10" },
      repeats: { type: "string", default: "3" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const backends = values.backends.split(",").map((s) => s.trim()).filter(Boolean);
  if (backends.length < 1) {
    console.error("error: --backends: name at least one backend, e.g. gl,vulkan");
    return 2;
  }
  const steps = positiveInt("--steps", values.steps);
  const repeats = positiveInt("--repeats", values.repeats);
  const base: TrainConfig = { ...DEFAULTS, data: values.data };
  const data = await prepareData(base);
  const runs: BackendFigures[] = [];
  await openAllBackends();
  for (const backend of backends) {
    const engine = await Engine.create({ backend });
    try {
      const tuned = await tuneMatmul(engine, { cacheDir: "runs/cache" });
      console.error(`${backend}: ${engine.gpu.adapterName}; matmul ${tuned.variant.name}`);
      const ops = await runOpsBenchmark(engine, { repeats });
      const train = [];
      for (const v of VARIANTS) {
        train.push(await benchTrainVariant(engine, base, data, v, steps, 2));
      }
      runs.push({ backend, adapter: engine.gpu.adapterName, ops, train });
    } finally {
      engine.destroy();
    }
  }
  console.log(formatBackendReport(runs));
  const path = await writeResult("backends", runs[0].adapter, { data: data.label, steps, runs });
  console.log(`\nwrote ${path}`);
  return 0;
}

if (import.meta.main) await runMain(main);
