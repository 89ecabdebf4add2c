/** `deno task lm:train`: trains a Llama-style decoder on a plain-text file. */
import { ConfigError } from "../src/train/config.ts";
import { lmTrainHelp, parseLmTrainArgs, resumeLmConfig } from "../src/train/lm_config.ts";
import { prepareText, trainLm } from "../src/train/lm.ts";
import { doneEvent } from "../src/train/loop.ts";
import { Logger } from "../src/train/log.ts";
import { stopOnSignals, storedRunConfig } from "../src/train/session.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { runMain } from "./cli.ts";

async function main(args: string[]): Promise<number> {
  let config;
  try {
    const parsed = parseLmTrainArgs(args);
    if (parsed.help) {
      console.log(lmTrainHelp());
      return 0;
    }
    config = parsed.config.resume
      ? resumeLmConfig(
        await storedRunConfig(parsed.config.out, parsed.config.resume, parsed.config.store),
        parsed.config,
        parsed.given,
      )
      : parsed.config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`error: ${e.message}\n(see deno task lm:train --help)`);
    return 2;
  }
  const logger = new Logger({ json: config.json });
  const data = await prepareText(config);
  const engine = await Engine.create({ memoryLimit: config.memoryLimit ?? undefined });
  const stop = stopOnSignals();
  try {
    const r = await trainLm(engine, config, data, { logger, signal: stop.signal });
    logger.emit(doneEvent(r, r.estimateBytes));
    if (r.status === "finished") {
      logger.event("valid", {
        run: r.runId,
        nats_per_token: r.valid.loss,
        perplexity: r.valid.ppl,
        bits_per_char: r.valid.bpc,
        tokens: r.valid.tokens,
      });
    }
    return r.status === "failed" ? 1 : 0;
  } finally {
    stop.dispose();
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
