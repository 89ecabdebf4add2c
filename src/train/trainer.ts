/**
 * The training loop: data → batches → SASRec → loss → Adam, with validation NDCG@10 early
 * stopping, atomic checkpoints, NaN detection and a record of everything in the run store.
 */
import type { Dataset } from "../data/dataset.ts";
import { deriveSeed, itemCounts } from "../data/dataset.ts";
import { loadDataset } from "../data/load.ts";
import { globalTemporalSplit, leaveOneOut, type Split } from "../data/split.ts";
import { type Batch, BatchIterator } from "../data/batches.ts";
import { makeSampler, type NegativeSampler } from "../data/samplers.ts";
import { parseCatalog, syntheticDataset } from "../data/synthetic.ts";
import { seededRandom } from "../nn/init.ts";
import { SasRec } from "../models/sasrec.ts";
import { MostPop } from "../models/mostpop.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { gatherRows } from "../tensor/ops/gather.ts";
import { reshape } from "../tensor/ops/shape.ts";
import { scale } from "../tensor/ops/elementwise.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { cceRows, cceSampledRows } from "../loss/cce.ts";
import {
  binaryCrossEntropy,
  fullCrossEntropy,
  gbceBeta,
  type Negatives,
  sampledCrossEntropy,
} from "../loss/losses.ts";
import { formatBytes } from "../gpu/allocator.ts";
import { newRunId, RunStore } from "../store/runs.ts";
import type { TrainConfig } from "./config.ts";
import { Adam } from "./optim.ts";
import { clipGradNorm } from "./clip.ts";
import { evalChunkSize, evaluateRanking } from "./evaluate.ts";
import { estimateTrainingMemory, type MemoryEstimate } from "./memory.ts";
import {
  loadCheckpoint,
  saveCheckpoint,
  type TrainingPosition,
  writeConfig,
} from "./checkpoint.ts";
import type { Logger } from "./log.ts";

export class MemoryBudgetError extends Error {
  constructor(readonly estimate: MemoryEstimate, readonly limit: number) {
    const parts = Object.entries(estimate)
      .filter(([k]) => k !== "total")
      .map(([k, v]) => `${k} ${formatBytes(v)}`)
      .join(", ");
    super(
      `configuration needs an estimated ${formatBytes(estimate.total)} of GPU memory ` +
        `(${parts}) but the budget is ${formatBytes(limit)}; lower --batch-size, --negatives, ` +
        "--seq-len or --dim, or raise --memory-limit",
    );
    this.name = "MemoryBudgetError";
  }
}

export interface TrainResult {
  runId: string;
  runDir: string;
  status: "finished" | "failed" | "stopped";
  error: string | null;
  epochs: number;
  bestEpoch: number;
  valid: Record<string, number>;
  test: Record<string, number>;
  /** The MostPop baseline on the same test users. */
  mostPopTest: Record<string, number>;
  secondsPerEpoch: number;
  wallSeconds: number;
  peakBytes: number;
  estimate: MemoryEstimate;
}

export interface TrainOptions {
  logger: Logger;
  /** Stops training between two steps (SIGINT); the last checkpoint stays. */
  signal?: AbortSignal;
  /** Called after each recorded metric batch (dashboards, tests). */
  onMetrics?: () => void;
  /** Links the run to a sweep in the run store. */
  sweepId?: string;
}

export interface PreparedData {
  dataset: Dataset;
  split: Split;
  label: string;
}

/** Reads or generates the data and splits it; writes nothing but the data cache. */
export async function prepareData(c: TrainConfig): Promise<PreparedData> {
  let dataset: Dataset;
  let label: string;
  if (c.data) {
    dataset = await loadDataset(c.data, {
      format: c.format === "csv" ? "interactions" : c.format === "seq" ? "sequences" : "auto",
      userCol: c.userCol ?? undefined,
      itemCol: c.itemCol ?? undefined,
      timeCol: c.timeCol ?? undefined,
      ratingCol: c.ratingCol ?? undefined,
      minRating: c.minRating ?? undefined,
      kCore: c.kCore > 0 ? c.kCore : undefined,
      cache: `${c.out}/cache`,
    });
    label = c.data.split("/").at(-1) ?? c.data;
  } else {
    // The data seed is fixed so that --seed varies the model, not the data it is compared on.
    dataset = syntheticDataset({ catalog: parseCatalog(c.catalog), seed: 0 });
    label = `synthetic-${c.catalog}`;
  }
  const split = c.split === "temporal" ? globalTemporalSplit(dataset) : leaveOneOut(dataset);
  if (!split.valid.length) throw new Error(`${label}: no user has enough history to evaluate`);
  return { dataset, split: subsampleEval(split, c.evalUsers, c.seed), label };
}

/** A fixed random subset of evaluation users (the same users for validation and test). */
function subsampleEval(split: Split, users: number, seed: number): Split {
  if (users <= 0 || users >= split.valid.length) return split;
  const random = seededRandom(deriveSeed(seed, 0x5eed));
  const chosen = new Set<number>();
  const all = [...new Set(split.valid.map((e) => e.user))];
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  for (const u of all.slice(0, users)) chosen.add(u);
  return {
    train: split.train,
    valid: split.valid.filter((e) => chosen.has(e.user)),
    test: split.test.filter((e) => chosen.has(e.user)),
  };
}

/**
 * The most target positions a batch is expected to hold over `batches` batches. A batch's count is
 * a sum of `batchSize` row lengths drawn without replacement, close to normal, and the expected
 * maximum of T normal draws is about mean + sd·√(2 ln T); the sum of the longest rows bounds it.
 */
export function expectedMaxPositions(
  train: readonly Int32Array[],
  batchSize: number,
  seqLen: number,
  batches: number,
): number {
  const lengths = train.map((s) => Math.min(Math.max(s.length - 1, 0), seqLen));
  const rows = Math.min(batchSize, lengths.length);
  const worst = [...lengths].sort((a, b) => b - a).slice(0, rows).reduce((a, b) => a + b, 0);
  if (!lengths.length) return 0;
  const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
  const variance = lengths.reduce((a, b) => a + (b - mean) ** 2, 0) / lengths.length;
  const spread = Math.sqrt(rows * variance) * Math.sqrt(2 * Math.log(Math.max(batches, 2)));
  return Math.min(worst, Math.ceil(rows * mean + spread));
}

/** Peak GPU bytes of training `c` for `batches` steps (default: the whole run). */
export function estimateFor(
  c: TrainConfig,
  data: PreparedData,
  batches = Math.ceil(data.split.train.length / c.batchSize) * c.epochs,
): MemoryEstimate {
  return estimateTrainingMemory({
    items: data.dataset.items,
    dim: c.dim,
    blocks: c.blocks,
    seqLen: c.seqLen,
    batchSize: c.batchSize,
    maxPositions: expectedMaxPositions(data.split.train, c.batchSize, c.seqLen, batches),
    loss: c.loss,
    negatives: c.negatives,
    sharedNegatives: c.sampler === "shared",
    evalChunk: evalChunkSize(data.dataset.items),
  });
}

export function buildModel(engine: Engine, c: TrainConfig, items: number): SasRec {
  return new SasRec(engine, {
    items,
    maxLen: c.seqLen,
    dim: c.dim,
    blocks: c.blocks,
    heads: c.heads,
    dropout: c.dropout,
    seed: c.seed,
  });
}

export function optimizerFor(c: TrainConfig, model: SasRec): Adam {
  return new Adam(model.parameters(), {
    lr: c.lr,
    weightDecay: c.weightDecay,
    decoupled: c.weightDecay > 0,
  });
}

/** The negative sampler of a configuration (null for the full softmax losses). */
export function samplerFor(c: TrainConfig, data: PreparedData): NegativeSampler | null {
  const { dataset, split } = data;
  const full = c.loss === "ce" || c.loss === "cce";
  return full ? null : makeSampler({
    kind: c.sampler,
    items: dataset.items,
    k: c.loss === "bce" ? 1 : c.negatives,
    seed: c.seed,
    counts: c.sampler === "popularity" ? itemCounts(split.train, dataset.items) : undefined,
    alpha: c.alpha,
  });
}

export async function train(
  engine: Engine,
  config: TrainConfig,
  data: PreparedData,
  opts: TrainOptions,
): Promise<TrainResult> {
  const { logger } = opts;
  const estimate = estimateFor(config, data);
  const limit = engine.gpu.allocator.limitBytes;
  if (estimate.total > limit) throw new MemoryBudgetError(estimate, limit);

  const store = RunStore.open(config.out);
  const resumed = config.resume ? store.getRun(config.resume) : null;
  if (config.resume && !resumed) {
    throw new Error(`--resume: no run "${config.resume}" in ${config.out}`);
  }
  const runId = resumed?.id ?? newRunId();
  const runDir = `${config.out}/${runId}`;
  const { dataset, split } = data;
  const c = config;
  const start = performance.now();
  engine.gpu.allocator.resetPeaks();

  const model = buildModel(engine, c, dataset.items);
  const optimizer = optimizerFor(c, model);
  let position: TrainingPosition = {
    epoch: 0,
    step: 0,
    bestValidNdcg10: -1,
    bestEpoch: 0,
    evalsWithoutGain: 0,
  };
  if (resumed) {
    position = await loadCheckpoint(`${runDir}/last.safetensors`, model, optimizer);
    store.truncateMetrics(runId, position.step);
    store.reopenRun(runId);
    logger.event("resume", { run: runId, epoch: position.epoch, step: position.step });
  } else {
    Deno.mkdirSync(runDir, { recursive: true });
    const name = c.name ?? `${data.label}-${c.loss}`;
    store.createRun({
      id: runId,
      name,
      dataset: data.label,
      config: { ...c },
      sweepId: opts.sweepId,
    });
    await writeConfig(`${runDir}/config.json`, {
      ...c,
      items: dataset.items,
      users: dataset.users,
    });
  }
  logger.event("run", {
    run: runId,
    dataset: data.label,
    users: dataset.users,
    items: dataset.items,
    loss: c.loss,
    estimate: formatBytes(estimate.total),
    adapter: engine.gpu.adapterName,
  });

  const batches = new BatchIterator(split.train, {
    batchSize: c.batchSize,
    seqLen: c.seqLen,
    seed: c.seed,
  });
  const sampler = samplerFor(c, data);
  const epochSeconds: number[] = [];
  let status: TrainResult["status"] = "finished";
  let error: string | null = null;
  let lastValid: Record<string, number> = {};
  const pending: { epoch: number; step: number; key: string; value: number }[] = [];

  try {
    for (let epoch = position.epoch + 1; epoch <= c.epochs; epoch++) {
      const t0 = performance.now();
      let lossSum = 0;
      let lossCount = 0;
      let done = 0;
      for (const batch of batches.epoch(epoch - 1)) {
        if (opts.signal?.aborted) {
          status = "stopped";
          break;
        }
        const step = position.step + 1;
        const value = await trainStep(engine, model, optimizer, sampler, c, batch, step);
        if (!Number.isFinite(value)) {
          throw new NonFiniteLossError(`loss became ${value} at epoch ${epoch}, step ${step}`);
        }
        position.step = step;
        lossSum += value;
        lossCount++;
        done++;
        pending.push({ epoch, step, key: "train_loss_step", value });
        if (pending.length >= 20) flushMetrics(store, runId, pending, opts);
        logger.progress(
          `epoch ${epoch}`,
          done,
          batches.batchesPerEpoch,
          `loss ${value.toFixed(4)}`,
        );
      }
      flushMetrics(store, runId, pending, opts);
      if (status === "stopped") break;
      const seconds = (performance.now() - t0) / 1000;
      epochSeconds.push(seconds);
      const trainLoss = lossSum / Math.max(lossCount, 1);
      const points = [
        { epoch, step: position.step, key: "train_loss", value: trainLoss },
        { epoch, step: position.step, key: "epoch_seconds", value: seconds },
        {
          epoch,
          step: position.step,
          key: "peak_bytes",
          value: engine.gpu.allocator.peakReservedBytes,
        },
      ];
      const fields: Record<string, unknown> = { epoch, loss: trainLoss, seconds };
      position.epoch = epoch;
      if (epoch % c.evalEvery === 0 || epoch === c.epochs) {
        lastValid = await evaluateRanking(model, split.valid, { keepSeen: c.keepSeen });
        for (const [key, value] of Object.entries(lastValid)) {
          points.push({ epoch, step: position.step, key: `valid_${key}`, value });
        }
        fields.valid_ndcg10 = lastValid["ndcg@10"];
        fields.valid_hr10 = lastValid["hr@10"];
        if (lastValid["ndcg@10"] > position.bestValidNdcg10) {
          position.bestValidNdcg10 = lastValid["ndcg@10"];
          position.bestEpoch = epoch;
          position.evalsWithoutGain = 0;
          await saveCheckpoint(`${runDir}/best.safetensors`, model, null, position);
          store.update(runId, { bestValidNdcg10: position.bestValidNdcg10 });
        } else {
          position.evalsWithoutGain++;
        }
      }
      await saveCheckpoint(`${runDir}/last.safetensors`, model, optimizer, position);
      store.addMetrics(runId, points);
      store.update(runId, { checkpoint: `${runDir}/last.safetensors` });
      opts.onMetrics?.();
      logger.event("epoch", fields);
      if (position.evalsWithoutGain >= c.patience) {
        logger.event("early_stop", { epoch, best_epoch: position.bestEpoch });
        break;
      }
    }
  } catch (e) {
    status = "failed";
    error = (e as Error).message;
    flushMetrics(store, runId, pending, opts);
  }

  let test: Record<string, number> = {};
  let mostPopTest: Record<string, number> = {};
  let valid = lastValid;
  if (status === "finished" && position.bestEpoch > 0) {
    await loadCheckpoint(`${runDir}/best.safetensors`, model, null);
    valid = await evaluateRanking(model, split.valid, { keepSeen: c.keepSeen });
    test = await evaluateRanking(model, split.test, { keepSeen: c.keepSeen });
    const baseline = new MostPop(engine, dataset.items, c.seqLen, split.train);
    mostPopTest = await evaluateRanking(baseline, split.test, { keepSeen: c.keepSeen });
    baseline.dispose();
    const point = (prefix: string) => ([key, value]: [string, number]) => ({
      epoch: position.bestEpoch,
      step: position.step,
      key: `${prefix}${key}`,
      value,
    });
    store.addMetrics(runId, [
      ...Object.entries(test).map(point("test_")),
      ...Object.entries(mostPopTest).map(point("mostpop_test_")),
    ]);
  }
  const wallSeconds = (performance.now() - start) / 1000;
  const peakBytes = engine.gpu.allocator.peakReservedBytes;
  store.update(runId, { status, error, wallSeconds, peakBytes, finished: true });
  store.close();
  model.dispose();
  optimizer.dispose();
  if (error) logger.event("failed", { run: runId, error });
  return {
    runId,
    runDir,
    status,
    error,
    epochs: position.epoch,
    bestEpoch: position.bestEpoch,
    valid,
    test,
    mostPopTest,
    secondsPerEpoch: median(epochSeconds),
    wallSeconds,
    peakBytes,
    estimate,
  };
}

class NonFiniteLossError extends Error {}

/** One optimiser step; returns the loss (one readback: a NaN stops training within one step). */
export async function trainStep(
  engine: Engine,
  model: SasRec,
  optimizer: Adam,
  sampler: NegativeSampler | null,
  c: TrainConfig,
  batch: Batch,
  step: number,
): Promise<number> {
  const { inputs, targets, len } = trimPadding(batch);
  const loss = engine.tidy(() => {
    engine.startTape();
    const ids = engine.tensor(inputs, [batch.batch, len], "i32", "batch items");
    const h = model.forward(ids, { training: true, seed: c.seed, step });
    const rows: number[] = [];
    const wanted: number[] = [];
    for (let i = 0; i < targets.length; i++) {
      if (targets[i] !== 0) {
        rows.push(i);
        wanted.push(targets[i]);
      }
    }
    const hv = gatherRows(reshape(h, [batch.batch * len, c.dim]), Int32Array.from(rows));
    const loss = lossOf(c, hv, model, Int32Array.from(wanted), sampler, step);
    engine.backward(loss);
    if (c.clip > 0) clipGradNorm(model.parameters(), c.clip);
    optimizer.step();
    optimizer.zeroGrad();
    return loss;
  });
  const value = (await loss.read())[0];
  loss.dispose();
  return value;
}

function lossOf(
  c: TrainConfig,
  h: Tensor,
  model: SasRec,
  targets: Int32Array,
  sampler: NegativeSampler | null,
  step: number,
): Tensor {
  const table = model.itemEmbedding;
  const n = targets.length;
  const mean = (rows: Tensor) => scale(sum(rows), 1 / n);
  if (c.loss === "ce" || !sampler) {
    if (c.loss === "cce") {
      const t = h.engine.tensor(targets, [n], "i32", "targets");
      return mean(cceRows(h, table, t, { filterEps: c.filterEps }));
    }
    return fullCrossEntropy(h, table, targets);
  }
  if (c.loss === "cce-") {
    const t = h.engine.tensor(targets, [n], "i32", "targets");
    return mean(cceSampledRows(h, table, t, sampler.spec(step), { logQ: c.logQ }));
  }
  const neg: Negatives = {
    ids: sampler.sample(n, step),
    k: sampler.k,
    shared: sampler.kind === "shared",
  };
  if (c.loss === "ce-") return sampledCrossEntropy(h, table, targets, neg, { logQ: c.logQ });
  const beta = c.loss === "gbce" ? gbceBeta(model.config.items, neg.k, c.gbceT) : 1;
  return binaryCrossEntropy(h, table, targets, neg, beta);
}

/** Drops leading columns that are padding in every row (the model counts positions from the right). */
function trimPadding(batch: Batch): { inputs: Int32Array; targets: Int32Array; len: number } {
  const { seqLen } = batch;
  let first = seqLen - 1;
  for (let r = 0; r < batch.batch; r++) {
    for (let j = 0; j < first; j++) {
      if (batch.targets[r * seqLen + j] !== 0) {
        first = j;
        break;
      }
    }
  }
  const len = seqLen - first;
  if (len === seqLen) return { inputs: batch.inputs, targets: batch.targets, len };
  const inputs = new Int32Array(batch.batch * len);
  const targets = new Int32Array(batch.batch * len);
  for (let r = 0; r < batch.batch; r++) {
    inputs.set(batch.inputs.subarray(r * seqLen + first, (r + 1) * seqLen), r * len);
    targets.set(batch.targets.subarray(r * seqLen + first, (r + 1) * seqLen), r * len);
  }
  return { inputs, targets, len };
}

function flushMetrics(
  store: RunStore,
  runId: string,
  pending: { epoch: number; step: number; key: string; value: number }[],
  opts: TrainOptions,
): void {
  if (!pending.length) return;
  store.addMetrics(runId, pending.splice(0));
  opts.onMetrics?.();
}

function median(values: number[]): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
