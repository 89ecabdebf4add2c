/** `deno task train`: trains SASRec and prints the final metrics table. */
import { ConfigError, parseTrainArgs, trainHelp } from "../src/train/config.ts";
import { prepareData, train } from "../src/train/trainer.ts";
import { Logger } from "../src/train/log.ts";
import { formatMetricsTable } from "../src/train/metrics.ts";
import { formatBytes } from "../src/gpu/allocator.ts";
import { Engine } from "../src/tensor/engine.ts";
import "../src/tensor/ops/mod.ts";
import { type Dashboard, serveDashboard } from "../src/dashboard/serve.ts";
import { runMain } from "./cli.ts";

const INTRO =
  "Trains a SASRec sequential recommender. Without --data it uses the synthetic catalogue.";

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseTrainArgs(args);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`error: ${e.message}\n(see deno task train --help)`);
    return 2;
  }
  if (parsed.help) {
    console.log(trainHelp("deno task train", INTRO));
    return 0;
  }
  const config = parsed.config;
  const logger = new Logger({ json: config.json });
  const dashboard = config.serve ? startDashboard(config.out) : null;
  if (dashboard) logger.event("dashboard", { url: dashboard.url });
  const data = await prepareData(config);
  const engine = await Engine.create({ memoryLimit: config.memoryLimit ?? undefined });
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  // SIGTERM (kill, a scheduler's stop) stops between two steps as Ctrl-C does, so the run is
  // recorded as stopped with its last checkpoint rather than left "running".
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const r = await train(engine, config, data, { logger, signal: abort.signal });
    logger.event("done", {
      run: r.runId,
      status: r.status,
      epochs: r.epochs,
      best_epoch: r.bestEpoch,
      seconds_per_epoch: r.secondsPerEpoch,
      wall_seconds: r.wallSeconds,
      peak_gpu: formatBytes(r.peakBytes),
      estimate: formatBytes(r.estimate.total),
    });
    if (r.status === "finished" && !config.json) {
      console.log(formatMetricsTable({ valid: r.valid, test: r.test, mostpop: r.mostPopTest }));
    }
    if (r.status === "finished" && config.json) {
      logger.event("metrics", { valid: r.valid, test: r.test, mostpop_test: r.mostPopTest });
    }
    return r.status === "failed" ? 1 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    engine.destroy();
    await dashboard?.close();
  }
}

/** The dashboard on its usual port, or on a free one when another process holds 8787. */
function startDashboard(runsDir: string): Dashboard {
  try {
    return serveDashboard({ runsDir });
  } catch (e) {
    if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    return serveDashboard({ runsDir, port: 0 });
  }
}

if (import.meta.main) await runMain(main);
