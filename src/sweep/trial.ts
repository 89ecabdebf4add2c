/**
 * One sweep trial, in its own process: `deno run -A src/sweep/trial.ts <train flags> --sweep-id X`.
 * It trains like `deno task train --json`, links the run to the sweep, and writes JSON lines on
 * stdout that the sweep runner reads: "run" (the run id), "epoch", "done" (status, peak and
 * estimate in bytes, error). Errors go to stderr as one `error:` line. SIGINT/SIGTERM stop
 * training between two steps, so the run is recorded as stopped rather than left running.
 */
import { ConfigError, parseTrainArgs } from "../train/config.ts";
import { prepareData, train } from "../train/trainer.ts";
import { Logger } from "../train/log.ts";
import { formatBytes } from "../gpu/allocator.ts";
import { Engine } from "../tensor/engine.ts";
import "../tensor/ops/mod.ts";

/** Exit code of a trial stopped by a signal (the shell's 128 + SIGINT). */
export const STOPPED_EXIT = 130;

// parseTrainArgs returns extra flags under `rest` by flag name; `key` only matters for its own flags.
const EXTRA = {
  "sweep-id": { key: "name" as const, type: "string" as const, help: "sweep the run belongs to" },
};

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseTrainArgs(args, EXTRA);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`error: ${e.message}`);
    return 2;
  }
  const sweepId = parsed.rest["sweep-id"];
  if (typeof sweepId !== "string") {
    console.error("error: --sweep-id is required (trials are started by deno task sweep)");
    return 2;
  }
  const config = { ...parsed.config, json: true };
  const logger = new Logger({ json: true, progress: false });
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const data = await prepareData(config);
    const engine = await Engine.create({ memoryLimit: config.memoryLimit ?? undefined });
    try {
      const r = await train(engine, config, data, { logger, signal: abort.signal, sweepId });
      logger.event("done", {
        run: r.runId,
        status: r.status,
        error: r.error,
        epochs: r.epochs,
        best_epoch: r.bestEpoch,
        seconds_per_epoch: r.secondsPerEpoch,
        wall_seconds: r.wallSeconds,
        peak_bytes: r.peakBytes,
        estimate_bytes: r.estimate.total,
        peak_gpu: formatBytes(r.peakBytes),
        estimate: formatBytes(r.estimate.total),
      });
      if (r.status === "finished") {
        logger.event("metrics", { valid: r.valid, test: r.test, mostpop_test: r.mostPopTest });
      }
      return r.status === "finished" ? 0 : r.status === "stopped" ? STOPPED_EXIT : 1;
    } finally {
      engine.destroy();
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
