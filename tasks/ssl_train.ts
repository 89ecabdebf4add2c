/** `deno task ssl:train`: trains an event-sequence encoder (CoLES, generative, MLEM). */
import { ConfigError } from "../src/train/flags.ts";
import { parseSslArgs, resumeSslConfig, sslHelp } from "../src/train/ssl_config.ts";
import { prepareEvents, trainSsl } from "../src/train/ssl.ts";
import { Logger } from "../src/train/log.ts";
import { stopOnSignals, storedRunConfig } from "../src/train/session.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { doneEvent } from "../src/train/loop.ts";
import { runMain } from "./cli.ts";

async function main(args: string[]): Promise<number> {
  let config;
  try {
    const parsed = parseSslArgs(args);
    if (parsed.help) {
      console.log(sslHelp());
      return 0;
    }
    config = parsed.config.resume
      ? resumeSslConfig(
        await storedRunConfig(parsed.config.out, parsed.config.resume, parsed.config.store),
        parsed.config,
        parsed.given,
      )
      : parsed.config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`error: ${e.message}\n(see deno task ssl:train --help)`);
    return 2;
  }
  const logger = new Logger({ json: config.json });
  const data = await prepareEvents(config);
  const engine = await Engine.create({ memoryLimit: config.memoryLimit ?? undefined });
  const stop = stopOnSignals();
  try {
    const r = await trainSsl(engine, config, data, { logger, signal: stop.signal });
    logger.emit(doneEvent(r, r.estimate.total));
    if (r.status === "finished") logger.emit({ event: "metrics", groups: r.groups });
    return r.status === "failed" ? 1 : 0;
  } finally {
    stop.dispose();
    engine.destroy();
  }
}

if (import.meta.main) await runMain(main);
