/**
 * `deno task finetune`: prunes a language-model run and fine-tunes it back (GIFT-SW, LoRA, full)
 * through the generic trainer; prints validation loss dense, pruned and after fine-tuning with the
 * trainable parameters and peak GPU memory, and writes them to <run folder>/finetune.json.
 */
import { ConfigError } from "../src/train/flags.ts";
import { finetuneHelp, parseFinetuneArgs } from "../src/train/finetune_config.ts";
import { finetuneLm } from "../src/train/finetune.ts";
import { Logger } from "../src/train/log.ts";
import { stopOnSignals } from "../src/train/session.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

async function main(args: string[]): Promise<number> {
  let config;
  try {
    const parsed = parseFinetuneArgs(args);
    if (parsed.help) {
      console.log(finetuneHelp());
      return 0;
    }
    config = parsed.config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`error: ${e.message}\n(see deno task finetune --help)`);
    return 2;
  }
  const logger = new Logger({ json: config.json });
  const engine = await Engine.create();
  const stop = stopOnSignals();
  try {
    const r = await finetuneLm(engine, config, { logger, signal: stop.signal });
    const summary = {
      run: r.runId,
      method: config.method + (config.noNoise ? " (no noise)" : ""),
      prune: `${config.prune} ${config.criterion}`,
      steps: config.steps,
      status: r.status,
      error: r.error,
      trainable_params: r.trainableParams,
      trainable_bytes: r.trainableBytes,
      peak_bytes: r.peakBytes,
      wall_seconds: r.wallSeconds,
      loss: Object.fromEntries(
        Object.entries(r.groups).filter(([g]) => g !== "budget").map(([g, m]) => [g, m.loss]),
      ),
    };
    await Deno.writeTextFile(`${r.runDir}/finetune.json`, JSON.stringify(summary, null, 2) + "\n");
    logger.event("finetune", summary);
    return r.status === "failed" ? 1 : 0;
  } finally {
    stop.dispose();
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
