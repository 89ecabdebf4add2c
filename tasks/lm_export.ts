/** `deno task lm:export`: writes a run's model or a model file in the Hugging Face layout. */
import { parseArgs } from "node:util";
import { loadLmRun, loadModelPath } from "../src/train/lm.ts";
import { exportHfLlama } from "../src/train/hf.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

const HELP = `Usage: deno task lm:export (--run ID | --model PATH) --to DIR [flags]

Writes config.json and model.safetensors (Hugging Face's LlamaForCausalLM layout, float32; q and
k rows in its half-split rotary order) to DIR.

Flags:
  --run ID          a lm:train run (its best checkpoint)
  --out DIR         runs folder for --run [default: runs]
  --model PATH      a llama2.c checkpoint (.bin) or a Hugging Face folder / config.json
  --to DIR          the folder to write [required]
  --shard-bytes N   split into shards of at most N bytes, with model.safetensors.index.json
  --help            print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      run: { type: "string" },
      out: { type: "string", default: "runs" },
      model: { type: "string" },
      to: { type: "string" },
      "shard-bytes": { type: "string", default: "0" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.run === !values.model || !values.to) {
    console.error("error: give --to DIR and one of --run ID or --model PATH (see --help)");
    return 2;
  }
  const shardBytes = Number(values["shard-bytes"]);
  if (!Number.isInteger(shardBytes) || shardBytes < 0) {
    throw new Error(`--shard-bytes: expected a whole number ≥ 0, got "${values["shard-bytes"]}"`);
  }
  const engine = await Engine.create();
  try {
    const model = values.run
      ? (await loadLmRun(engine, values.out, values.run)).model
      : await loadModelPath(engine, values.model!);
    await exportHfLlama(model, values.to, { shardBytes });
    console.log(`wrote ${values.to}/config.json and the model's tensors`);
    model.dispose();
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
