/**
 * Event-sequence self-supervised training (CoLES, generative, MLEM): transaction logs or the
 * synthetic generator → client-level splits → batches (slices or whole sequences) → the encoder
 * (and decoder) → a registered event objective → Adam, run by the generic loop (loop.ts) inside
 * a run session. Validation is the objective's loss on the validation clients; after training
 * the frozen embeddings of every client are probed (probe.ts) against a random encoder of the
 * same shape and written beside the checkpoints for the dashboard.
 */
import { type ClientSplit, splitClients, syntheticEvents } from "../data/event_synthetic.ts";
import {
  type EventBatch,
  EventBatches,
  type NumericStats,
  numericStats,
  wholeSequences,
} from "../data/event_batches.ts";
import {
  type ClientLabels,
  type EventSequences,
  labelClients,
  readTargets,
} from "../data/transactions.ts";
import { loadTransactions } from "../data/transactions_cache.ts";
import {
  type EventObjective,
  type EventObjectiveInputs,
  eventObjectiveOf,
  type EventObjectiveSettings,
  type ReconstructionTargets,
} from "../loss/event_objectives.ts";
import { EventDecoder, EventEncoder, type EventEncoderConfig } from "../models/event_encoder.ts";
import { Module } from "../nn/module.ts";
import { writeEmbeddings } from "../store/embeddings.ts";
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import type { MetricGroup } from "./events.ts";
import type { Logger } from "./log.ts";
import {
  type Evaluator,
  runInSession,
  runLoop,
  type RunSummary,
  START,
  summaryOf,
} from "./loop.ts";
import { Adam } from "./optim.ts";
import {
  anisotropy,
  crossValidatedAccuracy,
  knnAccuracy,
  probeAccuracy,
  type Vectors,
} from "./probe.ts";
import { RunSession } from "./session.ts";
import type { SslConfig } from "./ssl_config.ts";
import { MemoryBudgetError } from "./memory.ts";
import { estimateSslMemory, type SslMemoryEstimate } from "./ssl_memory.ts";
import { redactUrl } from "../store/postgres.ts";
import { GRU_CHOICE } from "../tensor/ops/gru.ts";

export interface SslData {
  label: string;
  sequences: EventSequences;
  labels: ClientLabels | null;
  split: ClientSplit;
  stats: NumericStats;
}

/** The synthetic data (with its classes) or a log with optional targets; split by client. */
export async function prepareEvents(c: SslConfig): Promise<SslData> {
  let sequences: EventSequences;
  let labels: ClientLabels | null = null;
  if (c.data === "synthetic") {
    ({ sequences, labels } = syntheticEvents({ clients: c.clients, seed: c.seed }));
  } else {
    sequences = await loadTransactions(c.data);
    if (c.targets) labels = labelClients(sequences, await readTargets(c.targets));
  }
  const split = splitClients(sequences.clientIds.length, c.seed);
  return {
    label: sequences.name,
    sequences,
    labels,
    split,
    stats: numericStats(sequences, split.train),
  };
}

export function encoderConfigOf(c: SslConfig, s: EventSequences): EventEncoderConfig {
  return {
    vocabs: s.categorical.map((f) => f.vocab.length),
    numericInputs: s.numeric.length + 1,
    categoryDim: c.categoryDim,
    numericDim: c.numericDim,
    encoder: c.encoder,
    hidden: c.hidden,
    layers: c.layers,
    heads: c.heads,
    maxLen: Math.max(c.maxLen, c.seqLen),
  };
}

export function settingsOf(c: SslConfig): EventObjectiveSettings {
  return {
    contrastive: c.contrastive,
    margin: c.margin,
    hardNegatives: c.hardNegatives,
    temperature: c.temperature,
    alignWeight: c.alignWeight,
  };
}

/** The trained parts: the encoder, the decoder (generative, MLEM) and SigLIP's (t', b) (MLEM). */
export class SslModel extends Module {
  readonly encoder: EventEncoder;
  readonly decoder: EventDecoder | null = null;
  readonly siglip: Tensor | null = null;

  constructor(engine: Engine, config: EventEncoderConfig, objective: EventObjective, seed: number) {
    super();
    this.encoder = new EventEncoder(engine, config, seed);
    this.children = { encoder: this.encoder };
    if (objective.decoder) {
      this.decoder = new EventDecoder(engine, config, config.hidden, seed + 1);
      this.children.decoder = this.decoder;
    }
    if (objective.teacher) {
      // SigLIP's initialisation: t' = log 10, b = −10.
      this.siglip = engine.parameter(Float32Array.from([Math.log(10), -10]), [2], "siglip");
      this.params.siglip = this.siglip;
    }
  }
}

function reconstructionTargets(b: EventBatch): Omit<ReconstructionTargets, "logits" | "numeric"> {
  const n = b.rows * b.steps;
  const width = b.numeric.length / n;
  const real = new Uint8Array(n);
  b.lengths.forEach((len, r) => real.fill(1, r * b.steps, r * b.steps + len));
  return {
    ids: b.categorical.map((ids) => ids.map((v, i) => (real[i] ? v : -1))),
    numericTruth: b.numeric,
    mask: Float32Array.from({ length: n * width }, (_, i) => real[Math.floor(i / width)]),
    events: b.lengths.reduce((a, v) => a + v, 0),
  };
}

/** The objective's loss on one batch (on the tape when one is recording). */
export function sslLoss(
  model: SslModel,
  objective: EventObjective,
  settings: EventObjectiveSettings,
  teacher: EventEncoder | null,
  b: EventBatch,
): Tensor {
  const z = model.encoder.forward(b);
  const inputs: EventObjectiveInputs = { z, clients: b.clients };
  if (model.decoder) {
    const rec = model.decoder.forward(z, b);
    inputs.reconstruction = {
      ...reconstructionTargets(b),
      logits: rec.logits,
      numeric: rec.numeric,
    };
  }
  if (teacher) {
    inputs.teacher = z.engine.noGrad(() => teacher.forward(b));
    inputs.siglip = model.siglip!;
  }
  return objective.loss(inputs, settings);
}

/** Clients embedded at once after training. */
const EMBED_CLIENTS = 256;

/** Embeddings [clients.length, hidden] of whole sequences (their last seqLen events). */
export async function embedClients(
  encoder: EventEncoder,
  data: SslData,
  clients: ArrayLike<number>,
  seqLen: number,
  batchClients = EMBED_CLIENTS,
): Promise<Float32Array> {
  const e = encoder.engine;
  const d = encoder.config.hidden;
  const out = new Float32Array(clients.length * d);
  for (let at = 0; at < clients.length; at += batchClients) {
    const part = Array.from(clients).slice(at, at + batchClients);
    const batch = wholeSequences(data.sequences, part, seqLen, data.stats);
    const z = e.noGrad(() => e.tidy(() => encoder.forward(batch)));
    out.set(await z.readF32(), at * d);
    z.dispose();
  }
  return out;
}

/** Probe metrics of embeddings of every client (row = client): test split, 5-fold CV, kNN. */
export function probeMetrics(vectors: Vectors, data: SslData, seed: number): MetricGroup {
  const metrics: MetricGroup = { anisotropy: anisotropy(vectors) };
  if (!data.labels) return metrics;
  const { labels, classes } = data.labels;
  const known = (idx: Int32Array) => Array.from(idx).filter((c) => labels[c] >= 0);
  const train = [...known(data.split.train), ...known(data.split.valid)];
  const test = known(data.split.test);
  const o = { classes: classes.length };
  const cv = crossValidatedAccuracy(vectors, labels, [...train, ...test], 5, seed, o);
  return {
    ...metrics,
    probe_accuracy: probeAccuracy(vectors, labels, train, test, o),
    cv_accuracy: cv.mean,
    cv_std: cv.std,
    knn_accuracy: knnAccuracy(vectors, labels, train, test, 5, classes.length),
  };
}

/** Every client's embedding, the probe's figures and the random encoder's (same shape). */
export async function evaluateEmbeddings(
  model: SslModel,
  data: SslData,
  c: SslConfig,
): Promise<{ vectors: Vectors; groups: Record<string, MetricGroup> }> {
  const all = Int32Array.from({ length: data.sequences.clientIds.length }, (_, i) => i);
  const dim = c.hidden;
  const vectors = {
    n: all.length,
    dim,
    data: await embedClients(model.encoder, data, all, c.seqLen),
  };
  const random = new EventEncoder(model.encoder.engine, model.encoder.config, c.seed + 1000);
  let baseline: Vectors;
  try {
    baseline = { n: all.length, dim, data: await embedClients(random, data, all, c.seqLen) };
  } finally {
    random.dispose();
  }
  return {
    vectors,
    groups: {
      test: probeMetrics(vectors, data, c.seed),
      random: probeMetrics(baseline, data, c.seed),
    },
  };
}

/** Writes the client embeddings for the dashboard, coloured by the target where known. */
export function saveClientEmbeddings(dir: string, vectors: Vectors, data: SslData): void {
  const labels = data.labels;
  writeEmbeddings(dir, {
    kind: "clients",
    ids: data.sequences.clientIds,
    dim: vectors.dim,
    vectors: Float32Array.from(vectors.data),
    ...(labels
      ? {
        colour: {
          name: "target",
          values: Array.from(labels.labels, (l) => (l >= 0 ? labels.classes[l] : "unknown")),
        },
      }
      : {}),
  });
}

class SslEvaluator implements Evaluator {
  readonly select = { key: "loss", higherIsBetter: false };
  readonly headline = ["loss"];
  private readonly batches: EventBatch[];

  constructor(
    private readonly model: SslModel,
    private readonly objective: EventObjective,
    private readonly teacher: EventEncoder | null,
    private readonly data: SslData,
    private readonly c: SslConfig,
    private readonly runDir: string,
  ) {
    // Fixed validation batches: the same slices every epoch.
    this.batches = [...batchesOf(data.split.valid, objective, data, c).epoch(0)];
  }

  async validate(): Promise<MetricGroup> {
    const e = this.model.encoder.engine;
    let total = 0;
    let rows = 0;
    for (const b of this.batches) {
      const loss = e.noGrad(() =>
        e.tidy(() => sslLoss(this.model, this.objective, settingsOf(this.c), this.teacher, b))
      );
      total += (await loss.read())[0] * b.rows;
      rows += b.rows;
      loss.dispose();
    }
    return { loss: total / Math.max(rows, 1) };
  }

  async final(): Promise<{ valid: MetricGroup; groups: Record<string, MetricGroup> }> {
    const valid = await this.validate();
    const { vectors, groups } = await evaluateEmbeddings(this.model, this.data, this.c);
    saveClientEmbeddings(this.runDir, vectors, this.data);
    return { valid, groups };
  }
}

function batchesOf(clients: Int32Array, objective: EventObjective, data: SslData, c: SslConfig) {
  const how = objective.slices
    ? { kind: "slices" as const, slices: { slices: c.slices, minLen: c.minLen, maxLen: c.maxLen } }
    : { kind: "whole" as const, maxLen: c.seqLen };
  return new EventBatches(data.sequences, clients, c.batchClients, how, data.stats, c.seed);
}

/** What config.json holds: the configuration and what rebuilds the encoder. */
export interface SslRunFile extends SslConfig {
  task: "ssl";
  encoderConfig: EventEncoderConfig;
  clientsTotal: number;
}

/** An SSL run's recorded configuration (its config.json). */
export async function readSslRun(out: string, runId: string): Promise<SslRunFile> {
  const dir = `${out}/${runId}`;
  let run: SslRunFile;
  try {
    run = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  } catch (e) {
    throw new Error(`run ${runId}: cannot read ${dir}/config.json (${(e as Error).message})`);
  }
  if (run.task !== "ssl") throw new Error(`run ${runId} (${dir}) is not an event-sequence run`);
  return run;
}

/** A trained SSL run's model (best checkpoint) and its recorded configuration. */
export async function loadSslRun(
  engine: Engine,
  out: string,
  runId: string,
): Promise<{ model: SslModel; run: SslRunFile }> {
  const dir = `${out}/${runId}`;
  const run = await readSslRun(out, runId);
  const model = new SslModel(engine, run.encoderConfig, eventObjectiveOf(run.method), run.seed);
  try {
    await loadCheckpoint(`${dir}/best.safetensors`, model, null);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, run };
}

export interface SslTrainResult extends RunSummary {
  groups: Record<string, MetricGroup>;
  estimate: SslMemoryEstimate;
}

/**
 * Peak GPU bytes of training `c` on `data` (with the MLEM teacher's encoder when given): its
 * largest batch has every client of a batch at the longest sequence the slices or the kept
 * events allow.
 */
export function estimateSslFor(
  engine: Engine,
  c: SslConfig,
  data: SslData,
  teacher: EventEncoderConfig | null,
): SslMemoryEstimate {
  const objective = eventObjectiveOf(c.method);
  const s = data.sequences;
  const lengths = Array.from(s.clientIds, (_, i) => s.offsets[i + 1] - s.offsets[i]);
  const longest = lengths.reduce((a, b) => Math.max(a, b), 1);
  const batchClients = Math.min(c.batchClients, data.split.train.length);
  const embedRows = Math.min(EMBED_CLIENTS, s.clientIds.length);
  // Valid events of the batch of the longest clients: a slice's expected length (uniform between
  // its clamped bounds), or the sequence cut to --seq-len.
  const sliceEvents = (n: number) => (Math.min(c.minLen, n) + Math.min(c.maxLen, n)) / 2;
  const events = (perClient: (n: number) => number, clients: number) =>
    Math.ceil(lengths.map(perClient).sort((a, b) => b - a).slice(0, clients).reduce(sum, 0));
  const whole = (n: number) => Math.min(n, c.seqLen);
  return estimateSslMemory({
    encoder: encoderConfigOf(c, s),
    objective,
    teacher,
    tiledGru: GRU_CHOICE.of(engine).layout === "tiled",
    trainRows: batchClients * (objective.slices ? c.slices : 1),
    trainSteps: Math.min(objective.slices ? c.maxLen : c.seqLen, longest),
    trainEvents: objective.slices
      ? c.slices * events(sliceEvents, batchClients)
      : events(whole, batchClients),
    embedRows,
    embedSteps: Math.min(c.seqLen, longest),
    embedEvents: events(whole, embedRows),
  });
}

const sum = (a: number, b: number) => a + b;

export async function trainSsl(
  engine: Engine,
  c: SslConfig,
  data: SslData,
  opts: { logger: Logger; signal?: AbortSignal },
): Promise<SslTrainResult> {
  const objective = eventObjectiveOf(c.method);
  const encoderConfig = encoderConfigOf(c, data.sequences);
  const teacherFile = c.teacher ? await readSslRun(c.out, c.teacher) : null;
  if (teacherFile && teacherFile.method !== "coles") {
    throw new Error(`--teacher ${c.teacher} is a ${teacherFile.method} run, not coles`);
  }
  const estimate = estimateSslFor(engine, c, data, teacherFile?.encoderConfig ?? null);
  const limit = engine.gpu.allocator.limitBytes;
  if (estimate.total > limit) {
    throw new MemoryBudgetError(
      { ...estimate },
      limit,
      "lower --batch-clients, --slices, --max-len, --seq-len or --hidden, or raise --memory-limit",
    );
  }
  const teacherRun = c.teacher ? await loadSslRun(engine, c.out, c.teacher) : null;
  // The store's URL is recorded without its password.
  const recorded = { ...c, store: c.store === null ? null : redactUrl(c.store), task: "ssl" };
  const session = await RunSession.open({
    out: c.out,
    store: c.store,
    resume: c.resume,
    name: c.name ?? `${data.label}-${c.method}`,
    dataset: data.label,
    config: recorded,
    configFile: { ...recorded, encoderConfig, clientsTotal: data.sequences.clientIds.length },
    logger: opts.logger,
  });
  const model = new SslModel(engine, encoderConfig, objective, c.seed);
  const optimizer = new Adam(model.parameters(), { lr: c.lr });
  const teacher = teacherRun?.model.encoder ?? null;
  const run = await runInSession(
    engine,
    session,
    () => {
      model.dispose();
      optimizer.dispose();
      teacherRun?.model.dispose();
    },
    async () => {
      const position = session.resumed ? await session.restore(model, optimizer) : START;
      opts.logger.emit({
        event: "run",
        run: session.runId,
        dataset: data.label,
        objective: `${c.method} (${objective.help})`,
        estimate_bytes: estimate.total,
        adapter: engine.gpu.adapterName,
        resumed: session.resumed,
        clients: data.sequences.clientIds.length,
        train_clients: data.split.train.length,
        parameters: model.parameters().reduce((n, t) => n + t.size, 0),
      });
      // Batches of one configuration differ by a few percent in their events: near-steady.
      return await engine.gpu.allocator.withSteadyShapes(() =>
        runLoop(
          engine,
          {
            model,
            optimizer,
            batches: batchesOf(data.split.train, objective, data, c),
            loss: (b) => sslLoss(model, objective, settingsOf(c), teacher, b),
            evaluator: new SslEvaluator(model, objective, teacher, data, c, session.runDir),
            tokensOf: (b) => b.lengths.reduce((a, v) => a + v, 0),
          },
          { epochs: c.epochs, evalEvery: c.evalEvery, patience: c.patience, clip: c.clip },
          session,
          position,
          opts,
        )
      );
    },
  );
  return { ...summaryOf(session, run), groups: run.result.groups, estimate };
}
