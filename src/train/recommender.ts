/**
 * Training a sequential recommender: data → batches → SASRec → a registered objective → Adam,
 * run by the generic loop (loop.ts) inside a run session (session.ts), evaluated by
 * full-catalogue ranking against the MostPop baseline.
 */
import type { Dataset } from "../data/dataset.ts";
import { deriveSeed, itemCounts } from "../data/dataset.ts";
import { loadDataset } from "../data/load.ts";
import { globalTemporalSplit, leaveOneOut, type Split } from "../data/split.ts";
import { type Batch, BatchIterator, type BatchOptions, packBatch } from "../data/batches.ts";
import { makeSampler, type NegativeSampler } from "../data/samplers.ts";
import { parseCatalog, syntheticDataset } from "../data/synthetic.ts";
import { seededRandom } from "../tensor/random.ts";
import { SasRec } from "../models/sasrec.ts";
import { MostPop } from "../models/mostpop.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { gatherRows } from "../tensor/ops/gather.ts";
import { tuneMatmul } from "../tensor/ops/matmul_tune.ts";
import { reshape } from "../tensor/ops/shape.ts";
import {
  objectiveLabel,
  objectiveOf,
  type ObjectiveSettings,
  type RecommenderObjective,
} from "../loss/objectives.ts";
import { ConfigError, objectiveSettings, resumeConfig, type TrainConfig } from "./config.ts";
import { Adam } from "./optim.ts";
import { evalChunkSize, evaluateRanking } from "./evaluate.ts";
import { estimateTrainingMemory, MemoryBudgetError, type MemoryEstimate } from "./memory.ts";
import type { MetricGroup, TrainEvent } from "./events.ts";
import type { Logger } from "./log.ts";
import {
  type Evaluator,
  optimiserStep,
  runInSession,
  runLoop,
  type RunSummary,
  START,
  summaryOf,
} from "./loop.ts";
import { RunSession, storedRunConfig } from "./session.ts";
import { redactUrl } from "../store/postgres.ts";
import { attentionBlocker } from "../tensor/ops/attention.ts";

export interface TrainResult extends RunSummary {
  test: Record<string, number>;
  /** The MostPop baseline on the same test users. */
  mostPopTest: Record<string, number>;
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
  /** Validation ranks a fixed sample of the users (the catalogue is too large for all). */
  validationSample?: boolean;
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
  const source = c.data ?? label;
  if (c.split === "temporal" && !dataset.timestamps) {
    throw new ConfigError(
      `--split temporal: ${source} has no timestamps (a sequence file); use --split loo or an ` +
        "interaction log with a time column",
    );
  }
  const split = c.split === "temporal" ? globalTemporalSplit(dataset) : leaveOneOut(dataset);
  if (!split.valid.length) throw new Error(`${source}: no user has enough history to evaluate`);
  if (c.evalUsers > 0) return { dataset, split: subsampleEval(split, c.evalUsers, c.seed), label };
  const validationUsers = validationUserCap(dataset.items);
  if (split.valid.length <= validationUsers) return { dataset, split, label };
  // Every user is tested at the end; each epoch validates on a fixed sample, so that a huge
  // catalogue (100,000 users × 1M items: over an hour per pass here) shows its first figures
  // after an epoch, not after an hour of ranking.
  const sample = subsampleEval(split, validationUsers, c.seed);
  return { dataset, split: { ...split, valid: sample.valid }, label, validationSample: true };
}

/** Items scored per validation pass when --eval-users is 0: validation samples users beyond it. */
export const VALIDATION_SCORES = 2e9;

/** The most users one validation pass ranks against `items` items when --eval-users is 0. */
export function validationUserCap(items: number): number {
  return Math.max(1000, Math.floor(VALIDATION_SCORES / (items + 1)));
}

/** What a sampled validation is, for the run's first line: how many of whom, and how to change it. */
export function validationNote(data: PreparedData, c: TrainConfig): string {
  const { valid, test } = data.split;
  const scores = `${VALIDATION_SCORES / 1e9}·10⁹`;
  return `each epoch validates a fixed random ${valid.length} of the ${test.length} users ` +
    `(seed ${c.seed}; at most ${scores} scores per pass); the final test ranks them all; ` +
    "--eval-users N sets both";
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
  return expectedMaxSum(lengths, batchSize, batches);
}

/** The largest sum of `rows` of `lengths` drawn without replacement expected over `draws` draws. */
function expectedMaxSum(lengths: number[], batchSize: number, batches: number): number {
  const rows = Math.min(batchSize, lengths.length);
  const worst = [...lengths].sort((a, b) => b - a).slice(0, rows).reduce((a, b) => a + b, 0);
  if (!lengths.length) return 0;
  const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
  const variance = lengths.reduce((a, b) => a + (b - mean) ** 2, 0) / lengths.length;
  const spread = Math.sqrt(rows * variance) * Math.sqrt(2 * Math.log(Math.max(batches, 2)));
  return Math.min(worst, Math.ceil(rows * mean + spread));
}

/** How a configuration cuts its training batches. */
export function batchOptions(c: TrainConfig): BatchOptions {
  return {
    batchSize: c.batchSize,
    seqLen: c.seqLen,
    seed: c.seed,
    tokensPerBatch: c.tokensPerBatch > 0 ? c.tokensPerBatch : undefined,
  };
}

/** Peak GPU bytes of training `c` for `batches` steps (default: the whole run). */
export function estimateFor(
  c: TrainConfig,
  data: PreparedData,
  batches = Math.ceil(data.split.train.length / c.batchSize) * c.epochs,
): MemoryEstimate {
  const expected = expectedMaxPositions(data.split.train, c.batchSize, c.seqLen, batches);
  const evalChunk = evalChunkSize(data.dataset.items);
  return estimateTrainingMemory({
    items: data.dataset.items,
    dim: c.dim,
    blocks: c.blocks,
    seqLen: c.seqLen,
    batchSize: c.batchSize,
    maxPositions: c.tokensPerBatch > 0 ? Math.min(expected, c.tokensPerBatch) : expected,
    packed: !c.padded,
    objective: objectiveOf(c.loss),
    settings: objectiveSettings(c),
    evalChunk,
    // Evaluation packs each chunk's histories (the test ones, one item longer than validation's).
    evalPositions: c.padded ? evalChunk * c.seqLen : expectedMaxSum(
      data.split.test.map((e) => Math.min(e.history.length, c.seqLen)),
      evalChunk,
      Math.ceil(data.split.test.length / evalChunk),
    ),
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

/** The negative sampler of a configuration (null for objectives that score the whole catalogue). */
export function samplerFor(c: TrainConfig, data: PreparedData): NegativeSampler | null {
  const { dataset, split } = data;
  const k = objectiveOf(c.loss).negativesPerPosition(objectiveSettings(c));
  return k === null ? null : makeSampler({
    kind: c.sampler,
    items: dataset.items,
    k,
    seed: c.seed,
    counts: c.sampler === "popularity" ? itemCounts(split.train, dataset.items) : undefined,
    alpha: c.alpha,
  });
}

/** SASRec, its optimiser, sampler and objective: what one training step needs. */
export class RecommenderTraining {
  readonly model: SasRec;
  readonly optimizer: Adam;
  readonly sampler: NegativeSampler | null;
  readonly objective: RecommenderObjective;
  private readonly settings: ObjectiveSettings;

  /** `model`: one already built (a loaded run being fine-tuned); by default a fresh one. */
  constructor(
    readonly engine: Engine,
    readonly config: TrainConfig,
    data: PreparedData,
    model?: SasRec,
  ) {
    this.model = model ?? buildModel(engine, config, data.dataset.items);
    this.optimizer = optimizerFor(config, this.model);
    this.sampler = samplerFor(config, data);
    this.objective = objectiveOf(config.loss);
    this.settings = objectiveSettings(config);
  }

  /** The objective's mean loss over the batch's real positions, on the tape. */
  loss(batch: Batch, step: number): Tensor {
    const ctx = { training: true, seed: this.config.seed, step };
    if (!this.config.padded) {
      const packed = packBatch(batch);
      return this.objectiveLoss(this.model.forwardPacked(packed, ctx), packed.targets, step);
    }
    const e = this.engine;
    const { inputs, targets, len } = trimPadding(batch);
    const ids = e.tensor(inputs, [batch.batch, len], "i32", "batch items");
    const h = this.model.forward(ids, ctx);
    const rows: number[] = [];
    const wanted: number[] = [];
    for (let i = 0; i < targets.length; i++) {
      if (targets[i] !== 0) {
        rows.push(i);
        wanted.push(targets[i]);
      }
    }
    const hv = gatherRows(
      reshape(h, [batch.batch * len, this.config.dim]),
      Int32Array.from(rows),
    );
    return this.objectiveLoss(hv, Int32Array.from(wanted), step);
  }

  private objectiveLoss(h: Tensor, targets: Int32Array, step: number): Tensor {
    return this.objective.loss({
      h,
      table: this.model.itemEmbedding,
      targets,
      negatives: this.sampler,
      step,
    }, this.settings);
  }

  /** One optimiser step; returns the loss. */
  step(batch: Batch, step: number): Promise<number> {
    return optimiserStep(
      this.engine,
      this.model,
      this.optimizer,
      this.config.clip,
      () => this.loss(batch, step),
    );
  }

  dispose(): void {
    this.model.dispose();
    this.optimizer.dispose();
  }
}

/** Full-catalogue ranking: NDCG@10 selects the best epoch; the final test adds MostPop. */
class RankingEvaluator implements Evaluator {
  readonly select = { key: "ndcg@10", higherIsBetter: true };
  readonly headline = ["ndcg@10", "hr@10"];

  constructor(
    private readonly model: SasRec,
    private readonly data: PreparedData,
    private readonly c: TrainConfig,
  ) {}

  validate(): Promise<MetricGroup> {
    return evaluateRanking(this.model, this.data.split.valid, { keepSeen: this.c.keepSeen });
  }

  async final(): Promise<{ valid: MetricGroup; groups: Record<string, MetricGroup> }> {
    const { split, dataset } = this.data;
    const opts = { keepSeen: this.c.keepSeen };
    const valid = await evaluateRanking(this.model, split.valid, opts);
    const test = await evaluateRanking(this.model, split.test, opts);
    const baseline = new MostPop(this.model.engine, dataset.items, this.c.seqLen, split.train);
    const mostpop = await evaluateRanking(baseline, split.test, opts);
    baseline.dispose();
    return { valid, groups: { test, mostpop_test: mostpop } };
  }
}

export async function train(
  engine: Engine,
  c: TrainConfig,
  data: PreparedData,
  opts: TrainOptions,
): Promise<TrainResult> {
  const { logger } = opts;
  const estimate = estimateFor(c, data);
  const limit = engine.gpu.allocator.limitBytes;
  if (estimate.total > limit) {
    throw new MemoryBudgetError(
      { ...estimate },
      limit,
      "lower --batch-size, --negatives, --seq-len or --dim, or raise --memory-limit",
    );
  }
  const attention = attentionBlocker(engine, {
    T: c.seqLen,
    group: 1,
    headDim: c.dim / c.heads,
    dropout: c.dropout > 0,
    masked: c.padded,
  });
  if (attention) throw new ConfigError(`--seq-len ${c.seqLen}: ${attention}; lower --seq-len`);
  // A programmatic resume gets the same check as the command line's: nothing but the settings
  // that may change on resume differs from what the run was trained with.
  if (c.resume) {
    resumeConfig(
      await storedRunConfig(c.out, c.resume, c.store),
      c,
      Object.keys(c) as (keyof TrainConfig)[],
    );
  }
  const { dataset, split } = data;
  // The store's URL is recorded without its password.
  const recorded = { ...c, store: c.store === null ? null : redactUrl(c.store), task: "sasrec" };
  const session = await RunSession.open({
    out: c.out,
    store: c.store,
    resume: c.resume,
    name: c.name ?? `${data.label}-${c.loss}`,
    dataset: data.label,
    config: recorded,
    configFile: { ...recorded, items: dataset.items, users: dataset.users },
    sweepId: opts.sweepId,
    logger,
    onMetrics: opts.onMetrics,
  });
  const training = new RecommenderTraining(engine, c, data);
  const run = await runInSession(
    engine,
    session,
    () => training.dispose(),
    async () => {
      const position = session.resumed
        ? await session.restore(training.model, training.optimizer)
        : START;
      logger.emit({
        event: "run",
        run: session.runId,
        dataset: data.label,
        users: dataset.users,
        items: dataset.items,
        objective: `${c.loss} (${objectiveLabel(c.loss, objectiveSettings(c))})`,
        estimate_bytes: estimate.total,
        adapter: engine.gpu.adapterName,
        resumed: session.resumed,
        validation_users: split.valid.length,
        ...(data.validationSample ? { validation: validationNote(data, c) } : {}),
        test_users: split.test.length,
      });
      const batches = new BatchIterator(split.train, batchOptions(c));
      return await runLoop(
        engine,
        {
          model: training.model,
          optimizer: training.optimizer,
          batches,
          loss: (batch, step) => training.loss(batch, step),
          evaluator: new RankingEvaluator(training.model, data, c),
        },
        { epochs: c.epochs, evalEvery: c.evalEvery, patience: c.patience, clip: c.clip },
        session,
        position,
        opts,
      );
    },
  );
  return {
    ...summaryOf(session, run),
    test: run.result.groups.test ?? {},
    mostPopTest: run.result.groups.mostpop_test ?? {},
    estimate,
  };
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

/**
 * The adapter's fastest matmul variant for this run's engine: read from `<out>/cache`, or (when
 * `measure`) timed once and cached there; the first run on an adapter spends up to a minute on
 * llvmpipe compiling and timing the variants.
 */
export async function tuneKernels(
  engine: Engine,
  c: TrainConfig,
  logger: Logger,
  measure = true,
): Promise<void> {
  const tuned = await tuneMatmul(engine, {
    cacheDir: `${c.out}/cache`,
    retune: c.retune,
    measure: measure || c.retune,
  });
  logger.event("kernels", { matmul: tuned.variant.name, source: tuned.source });
}

/** A finished run's final metrics, as its process reports them. */
export function metricsEvent(r: TrainResult): TrainEvent {
  return {
    event: "metrics",
    groups: { valid: r.valid, test: r.test, mostpop_test: r.mostPopTest },
  };
}
