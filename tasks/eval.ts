/** `deno task eval`: evaluates a run's checkpoint on validation and test (full ranking). */
import { parseArgs } from "node:util";
import { DEFAULTS, type TrainConfig } from "../src/train/config.ts";
import { runKindOf } from "../src/train/run_kind.ts";
import { buildModel, prepareData } from "../src/train/recommender.ts";
import { loadCheckpoint } from "../src/train/checkpoint.ts";
import { evaluateRanking } from "../src/train/evaluate.ts";
import { formatMetricsTable } from "../src/train/metrics.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

const HELP = `Usage: deno task eval --run ID [flags]

Evaluates a trained run over the whole catalogue and prints HR, NDCG, MRR and Coverage @1,5,10,20,100.

Flags:
  --run ID           run id (a folder under --out) [required]
  --out DIR          runs folder [default: runs]
  --checkpoint NAME  best or last [default: best]
  --keep-seen        rank items already in the user's history too [default: as trained]
  --eval-users N     evaluate a fixed random subset of N users (0: all) [default: as trained]
  --json             print the metrics as one JSON line
  --help             print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      run: { type: "string" },
      out: { type: "string", default: "runs" },
      checkpoint: { type: "string", default: "best" },
      "keep-seen": { type: "boolean" },
      "eval-users": { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.run) {
    console.error("error: --run is required (see deno task eval --help)");
    return 2;
  }
  if (values.checkpoint !== "best" && values.checkpoint !== "last") {
    console.error(`error: --checkpoint must be best or last, got ${values.checkpoint}`);
    return 2;
  }
  const dir = `${values.out}/${values.run}`;
  const saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  const kind = runKindOf(saved);
  if (kind !== "sasrec") {
    console.error(
      `error: run ${values.run} is a run of task ${kind}; deno task eval scores recommender runs ` +
        "(lm:eval language-model runs, ssl:eval event-sequence runs)",
    );
    return 2;
  }
  const config: TrainConfig = { ...DEFAULTS, ...saved, out: values.out };
  if (values["keep-seen"] !== undefined) config.keepSeen = values["keep-seen"];
  if (values["eval-users"] !== undefined) config.evalUsers = Number(values["eval-users"]);
  const data = await prepareData(config);
  const engine = await Engine.create();
  try {
    const model = buildModel(engine, config, data.dataset.items);
    await loadCheckpoint(`${dir}/${values.checkpoint}.safetensors`, model, null);
    const opts = { keepSeen: config.keepSeen };
    const valid = await evaluateRanking(model, data.split.valid, opts);
    const test = await evaluateRanking(model, data.split.test, opts);
    if (values.json) console.log(JSON.stringify({ run: values.run, valid, test }));
    else console.log(formatMetricsTable({ valid, test }));
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
