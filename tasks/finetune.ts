/**
 * `deno task finetune`: prunes a language-model or SASRec run (told apart by its stored
 * configuration) and fine-tunes it back (GIFT-SW, LoRA, full) through the generic trainer; prints
 * validation loss (LM) or validation and test NDCG@10 and HR@10 (SASRec) dense, pruned and after
 * fine-tuning with the trainable parameters and peak GPU memory, and writes them to
 * <run folder>/finetune.json.
 */
import { ConfigError } from "../src/train/flags.ts";
import { finetuneHelp, parseFinetuneArgs } from "../src/train/finetune_config.ts";
import { finetuneLm, type FinetuneResult, runLocation } from "../src/train/finetune.ts";
import { finetuneSasrec } from "../src/train/finetune_sasrec.ts";
import { readRunConfig } from "../src/train/sasrec_run.ts";
import { Logger } from "../src/train/log.ts";
import { runKindOf } from "../src/train/run_kind.ts";
import { stopOnSignals } from "../src/train/session.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

/** Per group: the LM's validation loss, or SASRec's validation and test NDCG@10 and HR@10. */
function metricsOf(r: FinetuneResult, sasrec: boolean) {
  const groups = Object.entries(r.groups).filter(([g]) => g !== "budget");
  return sasrec
    ? { ranking: Object.fromEntries(groups) }
    : { loss: Object.fromEntries(groups.map(([g, m]) => [g, m.loss])) };
}

export async function main(args: string[]): Promise<number> {
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
    const [out, id] = runLocation(config.model!, config.out);
    const saved = await readRunConfig(`${out}/${id}`);
    if (!saved) throw new Error(`--model ${config.model}: no config.json in ${out}/${id}`);
    const kind = runKindOf(saved);
    if (kind === "finetune") {
      throw new Error(`--model ${config.model}: a fine-tuning run; give the run it started from`);
    }
    if (kind === "ssl") {
      throw new Error(`--model ${config.model}: an event-sequence run; give an LM or SASRec run`);
    }
    const sasrec = kind === "sasrec";
    const r = sasrec
      ? await finetuneSasrec(engine, config, saved, { logger, signal: stop.signal })
      : await finetuneLm(engine, config, { logger, signal: stop.signal });
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
      ...metricsOf(r, sasrec),
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
