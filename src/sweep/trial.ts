/**
 * One sweep trial, in its own process: `deno run -A src/sweep/trial.ts <train flags> --sweep-id X`.
 * It trains like `deno task train --json`, links the run to the sweep, and writes JSON lines on
 * stdout that the sweep runner reads (src/train/events.ts). Errors go to stderr as one `error:` line. SIGINT/SIGTERM stop
 * training between two steps, so the run is recorded as stopped rather than left running, and so
 * does the end of stdin: the sweep or worker that started it holds that pipe open, and a parent
 * killed without a word (SIGKILL) closes it, so no trial trains on for a parent that is gone.
 */
import { ConfigError, parseTrainArgs } from "../train/config.ts";
import { doneEvent } from "../train/loop.ts";
import { metricsEvent, prepareData, train, tuneKernels } from "../train/recommender.ts";
import { Logger } from "../train/log.ts";
import { stopOnSignals } from "../train/session.ts";
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
  const stop = stopOnSignals();
  const orphaned = new AbortController();
  void Deno.stdin.readable.pipeTo(new WritableStream()).finally(() => orphaned.abort());
  const signal = AbortSignal.any([stop.signal, orphaned.signal]);
  try {
    const data = await prepareData(config);
    const engine = await Engine.create({ memoryLimit: config.memoryLimit ?? undefined });
    try {
      // Trials run side by side: they take the choice an earlier `train --out` cached (or
      // --retune measures), never time each other.
      await tuneKernels(engine, config, logger, false);
      const r = await train(engine, config, data, { logger, signal, sweepId });
      logger.emit(doneEvent(r, r.estimate.total));
      if (r.status === "finished") logger.emit(metricsEvent(r));
      return r.status === "finished" ? 0 : r.status === "stopped" ? STOPPED_EXIT : 1;
    } finally {
      engine.destroy();
    }
  } finally {
    stop.dispose();
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
