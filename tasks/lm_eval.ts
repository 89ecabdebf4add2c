/** `deno task lm:eval`: a language-model run's validation loss, perplexity and bits per char. */
import { parseArgs } from "node:util";
import { evaluateText, loadLmRun, prepareText } from "../src/train/lm.ts";
import { tokenObjectiveOf } from "../src/loss/token_objectives.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

const HELP = `Usage: deno task lm:eval --run ID [flags]

Scores a language-model run's checkpoint on the whole validation split of its text (the last
10%): nats per token, perplexity and bits per character.

Flags:
  --run ID           run id (a folder under --out) [required]
  --out DIR          runs folder [default: runs]
  --checkpoint NAME  best or last [default: best]
  --json             print one JSON line
  --help             print this help`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      run: { type: "string" },
      out: { type: "string", default: "runs" },
      checkpoint: { type: "string", default: "best" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.run) {
    console.error("error: --run is required (see deno task lm:eval --help)");
    return 2;
  }
  if (values.checkpoint !== "best" && values.checkpoint !== "last") {
    console.error(`error: --checkpoint must be best or last, got ${values.checkpoint}`);
    return 2;
  }
  const engine = await Engine.create();
  try {
    const { model, run } = await loadLmRun(engine, values.out, values.run, values.checkpoint);
    const data = await prepareText(run);
    const { valid, validChars } = data.split;
    const m = await evaluateText(model, tokenObjectiveOf(run.loss), valid, {
      seqLen: run.seqLen,
      batchSize: run.batchSize,
      charsPerToken: validChars / valid.length,
    });
    if (values.json) {
      console.log(JSON.stringify({ run: values.run, checkpoint: values.checkpoint, ...m }));
    } else {
      console.log(
        `run ${values.run} (${values.checkpoint}), ${m.tokens} validation tokens of ` +
          `${data.label}:\n  ${m.loss.toFixed(4)} nats/token, perplexity ${m.ppl.toFixed(3)}, ` +
          `${m.bpc.toFixed(4)} bits/char`,
      );
    }
    model.dispose();
    return 0;
  } finally {
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
