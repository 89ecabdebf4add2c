/** `deno task train`: trains SASRec and prints the final metrics table. */
import { ConfigError, parseTrainArgs, resumeConfig, trainHelp } from "../src/train/config.ts";
import { metricsEvent, prepareData, train, tuneKernels } from "../src/train/recommender.ts";
import { doneEvent } from "../src/train/loop.ts";
import { Logger } from "../src/train/log.ts";
import { stopOnSignals, storedRunConfig } from "../src/train/session.ts";
import { formatMetricsTable } from "../src/train/metrics.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { type Dashboard, serveDashboard } from "../src/dashboard/serve.ts";
import { runMain } from "./cli.ts";

const INTRO =
  "Trains a SASRec sequential recommender. Without --data it uses the synthetic catalogue.";

async function main(args: string[]): Promise<number> {
  let config;
  try {
    const parsed = parseTrainArgs(args);
    if (parsed.help) {
      console.log(trainHelp("deno task train", INTRO));
      return 0;
    }
    config = parsed.config.resume
      ? resumeConfig(
        await storedRunConfig(parsed.config.out, parsed.config.resume, parsed.config.store),
        parsed.config,
        parsed.given,
      )
      : parsed.config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`error: ${e.message}\n(see deno task train --help)`);
    return 2;
  }
  const logger = new Logger({ json: config.json });
  const dashboard = config.serve ? startDashboard(config.out, config.store) : null;
  if (dashboard) logger.event("dashboard", { url: dashboard.url });
  const data = await prepareData(config);
  const engine = await Engine.create({ memoryLimit: config.memoryLimit ?? undefined });
  const stop = stopOnSignals();
  try {
    await tuneKernels(engine, config, logger);
    const r = await train(engine, config, data, { logger, signal: stop.signal });
    logger.emit(doneEvent(r, r.estimate.total));
    if (r.status === "finished" && !config.json) {
      console.log(formatMetricsTable({ valid: r.valid, test: r.test, mostpop: r.mostPopTest }));
    }
    if (r.status === "finished" && config.json) logger.emit(metricsEvent(r));
    return r.status === "failed" ? 1 : 0;
  } finally {
    stop.dispose();
    engine.destroy();
    await dashboard?.close();
  }
}

/** The dashboard on its usual port, or on a free one when another process holds 8787. */
function startDashboard(runsDir: string, store: string | null): Dashboard {
  try {
    return serveDashboard({ runsDir, store });
  } catch (e) {
    if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    return serveDashboard({ runsDir, store, port: 0 });
  }
}

if (import.meta.main) await runMain(main);
