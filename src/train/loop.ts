/**
 * The generic training loop: any model, any objective, any batch stream, any evaluator. Per
 * step it records the objective on the tape, backpropagates, clips, steps the optimiser and reads
 * the loss back once, while the next step is recorded (a NaN stops training within two steps).
 * Per epoch it evaluates on the configured cadence, keeps the best and last checkpoints through
 * the run session, and stops early when the selected validation metric stops improving.
 */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Module } from "../nn/module.ts";
import type { Adam } from "./optim.ts";
import { gradNorm } from "./clip.ts";
import type { TrainingPosition } from "./checkpoint.ts";
import type { MetricGroup, TrainEvent } from "./events.ts";
import type { Logger } from "./log.ts";
import type { RunSession } from "./session.ts";

/** Batches, epoch by epoch (the order of epoch i is a function of the seed and i). */
export interface BatchStream<B> {
  epoch(index: number): Iterable<B>;
  readonly batchesPerEpoch: number;
}

/** Turns the model into named metrics. */
export interface Evaluator {
  /** The validation metric that picks the best checkpoint and drives early stopping. */
  readonly select: { key: string; higherIsBetter: boolean };
  /** Validation metrics shown with each epoch's line. */
  readonly headline: readonly string[];
  validate(): Promise<MetricGroup>;
  /**
   * After training, with the best weights loaded: the validation metrics again, and groups
   * recorded in the store as `<group>_<metric>` (test metrics, baselines).
   */
  final(): Promise<{ valid: MetricGroup; groups: Record<string, MetricGroup> }>;
}

export interface LoopParts<B> {
  model: Module;
  optimizer: Adam;
  batches: BatchStream<B>;
  /** The objective's mean loss on one batch, recorded on the tape. */
  loss: (batch: B, step: number) => Tensor;
  evaluator: Evaluator;
  /** Tokens a batch trains on: when given, each epoch records its tokens per second. */
  tokensOf?: (batch: B) => number;
}

export interface LoopSettings {
  epochs: number;
  evalEvery: number;
  /** Evaluations without a better selected metric before stopping. */
  patience: number;
  /** Global gradient-norm clip (0: off). */
  clip: number;
}

export interface LoopOptions {
  logger: Logger;
  /** Stops training between two steps; the last checkpoint stays. */
  signal?: AbortSignal;
}

export interface LoopResult {
  status: "finished" | "failed" | "stopped";
  error: string | null;
  epochs: number;
  bestEpoch: number;
  valid: MetricGroup;
  /** The evaluator's final groups (empty unless the run finished). */
  groups: Record<string, MetricGroup>;
  secondsPerEpoch: number;
}

export const START: TrainingPosition = {
  epoch: 0,
  step: 0,
  bestValid: null,
  bestEpoch: 0,
  evalsWithoutGain: 0,
};

class NonFiniteLossError extends Error {}

export async function runLoop<B>(
  engine: Engine,
  parts: LoopParts<B>,
  settings: LoopSettings,
  session: RunSession,
  start: TrainingPosition,
  opts: LoopOptions,
): Promise<LoopResult> {
  const { model, optimizer, batches, evaluator } = parts;
  const { logger } = opts;
  const position = { ...start };
  const epochSeconds: number[] = [];
  let status: LoopResult["status"] = "finished";
  let error: string | null = null;
  let lastValid: MetricGroup = {};
  const totals = { loss: 0, steps: 0, tokens: 0 };
  // Step k's loss is checked and recorded once step k+1 is submitted: a non-finite loss still
  // fails the run naming its epoch and step, though the following step has been applied too.
  const steps = new PipelinedSteps<{ epoch: number; step: number; batch: B }>(
    async (value, { epoch, step, batch }) => {
      if (!Number.isFinite(value)) {
        throw new NonFiniteLossError(`loss became ${value} at epoch ${epoch}, step ${step}`);
      }
      position.step = step;
      totals.loss += value;
      totals.steps++;
      totals.tokens += parts.tokensOf?.(batch) ?? 0;
      await session.recordStep({ epoch, step, key: "train_loss_step", value });
      logger.progress(
        `epoch ${epoch}`,
        totals.steps,
        batches.batchesPerEpoch,
        `loss ${value.toFixed(4)}`,
      );
    },
  );
  try {
    for (let epoch = position.epoch + 1; epoch <= settings.epochs; epoch++) {
      const t0 = performance.now();
      Object.assign(totals, { loss: 0, steps: 0, tokens: 0 });
      let submitted = position.step;
      for (const batch of batches.epoch(epoch - 1)) {
        if (opts.signal?.aborted) {
          status = "stopped";
          break;
        }
        const step = ++submitted;
        await steps.push(
          () =>
            optimiserStep(engine, model, optimizer, settings.clip, () => parts.loss(batch, step)),
          { epoch, step, batch },
        );
      }
      // No read-back crosses the end of an epoch (stop, validation, checkpoint).
      await steps.flush();
      await session.flush();
      if (status === "stopped") break;
      const seconds = (performance.now() - t0) / 1000;
      epochSeconds.push(seconds);
      const trainLoss = totals.loss / Math.max(totals.steps, 1);
      const at = (key: string, value: number) => ({ epoch, step: position.step, key, value });
      const points = [
        at("train_loss", trainLoss),
        at("epoch_seconds", seconds),
        at("peak_bytes", engine.gpu.allocator.peakReservedBytes),
      ];
      const tokensPerSecond = parts.tokensOf ? totals.tokens / seconds : undefined;
      if (tokensPerSecond !== undefined) points.push(at("tokens_per_second", tokensPerSecond));
      position.epoch = epoch;
      let headline: MetricGroup | undefined;
      if (epoch % settings.evalEvery === 0 || epoch === settings.epochs) {
        lastValid = await evaluator.validate();
        for (const [key, value] of Object.entries(lastValid)) {
          points.push(at(`valid_${key}`, value));
        }
        headline = Object.fromEntries(evaluator.headline.map((k) => [k, lastValid[k]]));
        if (improves(evaluator, lastValid, position.bestValid)) {
          position.bestValid = lastValid[evaluator.select.key];
          position.bestEpoch = epoch;
          position.evalsWithoutGain = 0;
          await session.saveBest(model, position);
          if (evaluator.select.key === "ndcg@10") {
            await session.recordBestNdcg10(position.bestValid);
          }
        } else {
          position.evalsWithoutGain++;
        }
      }
      await session.saveLast(model, optimizer, position);
      await session.record(points);
      logger.emit({
        event: "epoch",
        epoch,
        loss: trainLoss,
        seconds,
        ...(tokensPerSecond !== undefined ? { tokens_per_second: tokensPerSecond } : {}),
        ...(headline ? { valid: headline } : {}),
      });
      if (position.evalsWithoutGain >= settings.patience) {
        logger.emit({ event: "early_stop", epoch, best_epoch: position.bestEpoch });
        break;
      }
    }
  } catch (e) {
    status = "failed";
    error = (e as Error).message;
    await steps.drop();
    await session.flush();
  }
  let valid = lastValid;
  let groups: Record<string, MetricGroup> = {};
  if (status === "finished" && position.bestEpoch > 0) {
    await session.loadBest(model);
    ({ valid, groups } = await evaluator.final());
    for (const [group, metrics] of Object.entries(groups)) {
      await session.recordGroup(`${group}_`, metrics, position.bestEpoch, position.step);
    }
  }
  return {
    status,
    error,
    epochs: position.epoch,
    bestEpoch: position.bestEpoch,
    valid,
    groups,
    secondsPerEpoch: median(epochSeconds),
  };
}

/** How a run inside a session ended, with its wall time and the allocator's peak. */
export interface SessionRun {
  result: LoopResult;
  wallSeconds: number;
  peakBytes: number;
}

/** What every training task reports about a run that ended in its session. */
export interface RunSummary {
  runId: string;
  runDir: string;
  status: LoopResult["status"];
  error: string | null;
  epochs: number;
  bestEpoch: number;
  valid: MetricGroup;
  secondsPerEpoch: number;
  wallSeconds: number;
  peakBytes: number;
}

export function summaryOf(session: RunSession, run: SessionRun): RunSummary {
  const { result } = run;
  return {
    runId: session.runId,
    runDir: session.runDir,
    status: result.status,
    error: result.error,
    epochs: result.epochs,
    bestEpoch: result.bestEpoch,
    valid: result.valid,
    secondsPerEpoch: result.secondsPerEpoch,
    wallSeconds: run.wallSeconds,
    peakBytes: run.peakBytes,
  };
}

/** How a run ended, as its process reports it (`estimateBytes`: the task's memory estimate). */
export function doneEvent(r: RunSummary, estimateBytes: number): TrainEvent {
  return {
    event: "done",
    run: r.runId,
    status: r.status,
    error: r.error,
    epochs: r.epochs,
    best_epoch: r.bestEpoch,
    seconds_per_epoch: Number.isFinite(r.secondsPerEpoch) ? r.secondsPerEpoch : null,
    wall_seconds: r.wallSeconds,
    peak_bytes: r.peakBytes,
    estimate_bytes: estimateBytes,
  };
}

/**
 * Runs `body` (restore, log, the loop) with the allocator's peaks reset, records in the session
 * how it ended (a thrown error as a failed run, then rethrown) and disposes the model's parts.
 */
export async function runInSession(
  engine: Engine,
  session: RunSession,
  dispose: () => void,
  body: () => Promise<LoopResult>,
): Promise<SessionRun> {
  const start = performance.now();
  engine.gpu.allocator.resetPeaks();
  const ended = () => ({
    wallSeconds: (performance.now() - start) / 1000,
    peakBytes: engine.gpu.allocator.peakReservedBytes,
  });
  let result: LoopResult;
  try {
    result = await body();
  } catch (e) {
    await session.finish({ status: "failed", error: (e as Error).message, ...ended() });
    dispose();
    throw e;
  }
  const { wallSeconds, peakBytes } = ended();
  await session.finish({ status: result.status, error: result.error, wallSeconds, peakBytes });
  dispose();
  return { result, wallSeconds, peakBytes };
}

function improves(evaluator: Evaluator, valid: MetricGroup, best: number | null): boolean {
  const value = valid[evaluator.select.key];
  if (best === null) return true;
  return evaluator.select.higherIsBetter ? value > best : value < best;
}

/**
 * One optimiser step on the loss `record` puts on the tape, recorded and submitted before this
 * returns (a recording error throws here, not in the promise). The promise is the loss, whose
 * read-back is already under way, so the next step can be recorded meanwhile (PipelinedSteps).
 */
export function optimiserStep(
  engine: Engine,
  model: Module,
  optimizer: Adam,
  clip: number,
  record: () => Tensor,
): Promise<number> {
  const loss = engine.tidy(() => {
    engine.startTape();
    const loss = record();
    engine.backward(loss);
    optimizer.step(clip > 0 ? { norm: gradNorm(model.parameters()), maxNorm: clip } : undefined);
    optimizer.zeroGrad();
    return loss;
  });
  return loss.read().then((value) => {
    loss.dispose();
    return value[0];
  });
}

/**
 * Optimiser steps whose losses are settled one step late: step k's loss is awaited only after
 * step k+1 is submitted. A read-back round trip has a fixed cost (~11 ms on Deno's wgpu, even on
 * an idle queue) that awaiting every step adds to each; overlapped with the next step's
 * recording and GPU work it mostly disappears. The steps and their losses are the same, settled
 * in the same order.
 */
export class PipelinedSteps<T> {
  private pending: { loss: Promise<number>; tag: T } | null = null;

  constructor(private readonly settle: (loss: number, tag: T) => void | Promise<void>) {}

  /**
   * Starts a step (`start` records and submits it and returns its loss being read back, as
   * optimiserStep does), then settles the step before it. When recording throws, the step
   * before it is settled first, as if steps were awaited one by one.
   */
  async push(start: () => Promise<number>, tag: T): Promise<void> {
    let loss: Promise<number>;
    try {
      loss = start();
    } catch (e) {
      await this.flush();
      throw e;
    }
    // A failed read-back surfaces when its loss is awaited, not as an unhandled rejection
    // while the step before it is being settled.
    loss.catch(() => {});
    const previous = this.pending;
    this.pending = { loss, tag };
    if (previous) await this.settle(await previous.loss, previous.tag);
  }

  /** Settles the last step started; no read-back is in flight afterwards. */
  async flush(): Promise<void> {
    const last = this.pending;
    this.pending = null;
    if (last) await this.settle(await last.loss, last.tag);
  }

  /** After a failure: waits for the last step's read-back without settling it. */
  async drop(): Promise<void> {
    const last = this.pending;
    this.pending = null;
    await last?.loss.catch(() => {});
  }
}

function median(values: number[]): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
