/**
 * Training throughput and memory per loss on one dataset: each variant trains the same batches
 * (same seed) for a few timed steps after warm-up, on a pool emptied before it starts, so its
 * peak bytes are its own. The PyTorch peer, when asked for and installed, trains one epoch of
 * the same configuration in the same run.
 */
import type { Engine } from "../src/tensor/engine.ts";
import { BatchIterator } from "../src/data/batches.ts";
import { objectiveSettings, type TrainConfig } from "../src/train/config.ts";
import {
  batchOptions,
  estimateFor,
  type PreparedData,
  RecommenderTraining,
} from "../src/train/recommender.ts";
import { objectiveOf } from "../src/loss/objectives.ts";
import { evaluateRanking } from "../src/train/evaluate.ts";
import { cpuUsage } from "node:process";
import { formatBytes } from "../src/gpu/allocator.ts";
import { PipelinedSteps } from "../src/train/loop.ts";
import type { KernelTime } from "../src/gpu/profiler.ts";
import { type Cell, formatTable } from "./util.ts";

export interface TrainVariant {
  label: string;
  overrides: Partial<TrainConfig>;
}

/** Where a variant's step time goes, from the profiler's per-kernel timestamps. */
export interface StepProfile {
  dispatchesPerStep: number;
  submitsPerStep: number;
  /** Wall milliseconds per step, and the kernels' share of it. */
  msPerStep: number;
  kernelMsPerStep: number;
  /** The most expensive kernels, milliseconds per step. */
  kernels: { kernel: string; msPerStep: number; callsPerStep: number }[];
}

export interface TrainFigures {
  label: string;
  loss: string;
  sampler: string;
  /** Null for a full softmax. */
  negatives: number | null;
  msPerStep: number;
  /**
   * CPU seconds per step of the whole process (all its threads; llvmpipe computes in them): what
   * a step costs however many other jobs share the cores.
   */
  cpuSecondsPerStep: number;
  sequencesPerSecond: number;
  /** Batches per epoch × seconds per step. */
  secondsPerEpoch: number;
  peakReservedBytes: number;
  peakLiveBytes: number;
  estimateBytes: number;
  meanLoss: number;
  /** With a profiling engine: where the timed steps' time went. */
  profile?: StepProfile;
  /** Asked for: one validation pass (what each epoch of `deno task train` ends with), timed. */
  validation?: ValidationFigures;
}

export interface ValidationFigures {
  users: number;
  seconds: number;
  cpuSeconds: number;
  /** Batches per epoch × s/step + the validation: when a run prints its first figures. */
  firstValidationSeconds: number;
}

export async function benchTrainVariant(
  engine: Engine,
  base: TrainConfig,
  data: PreparedData,
  v: TrainVariant,
  steps: number,
  warmup: number,
  validate = false,
): Promise<TrainFigures> {
  const c = { ...base, ...v.overrides };
  const allocator = engine.gpu.allocator;
  allocator.trimPool();
  await engine.gpu.sync();
  allocator.resetPeaks();
  const training = new RecommenderTraining(engine, c, data);
  const batches = new BatchIterator(data.split.train, batchOptions(c));
  const iter = batches.epoch(0);
  const next = () => {
    const r = iter.next();
    if (r.done) {
      throw new Error(`the dataset has fewer than ${warmup + steps} batches`);
    }
    return r.value;
  };
  let step = 0;
  for (let i = 0; i < warmup; i++) {
    await training.step(next(), ++step);
  }
  let lossSum = 0;
  let sequences = 0;
  const gpu = engine.gpu;
  await gpu.sync();
  gpu.profiler?.reset();
  const [dispatches0, submits0] = [gpu.dispatches, gpu.submits];
  const start = performance.now();
  const cpu0 = cpuUsage();
  const timed = new PipelinedSteps<void>((loss) => {
    lossSum += loss;
  });
  for (let i = 0; i < steps; i++) {
    const batch = next();
    const at = ++step;
    await timed.push(() => training.step(batch, at));
    sequences += batch.batch;
  }
  await timed.flush();
  const seconds = (performance.now() - start) / 1000;
  await gpu.sync();
  const cpuSeconds = cpuSecondsSince(cpu0);
  const profile = gpu.profiler
    ? stepProfile(gpu.profiler.report(), steps, seconds, {
      dispatches: gpu.dispatches - dispatches0,
      submits: gpu.submits - submits0,
    })
    : undefined;
  const negatives = objectiveOf(c.loss).negativesPerPosition(
    objectiveSettings(c),
  );
  const figures: TrainFigures = {
    label: v.label,
    loss: c.loss,
    sampler: negatives === null ? "-" : c.sampler,
    negatives,
    msPerStep: (seconds / steps) * 1000,
    cpuSecondsPerStep: cpuSeconds / steps,
    sequencesPerSecond: sequences / seconds,
    secondsPerEpoch: (seconds / steps) * batches.batchesPerEpoch,
    peakReservedBytes: allocator.peakReservedBytes,
    peakLiveBytes: allocator.peakLiveBytes,
    estimateBytes: estimateFor(c, data, warmup + steps).total,
    meanLoss: lossSum / steps,
    profile,
  };
  if (validate) {
    figures.validation = await timeValidation(training, data, c, figures);
  }
  training.dispose();
  return figures;
}

/** One validation pass over the split's validation users, as train() runs it after an epoch. */
async function timeValidation(
  training: RecommenderTraining,
  data: PreparedData,
  c: TrainConfig,
  f: TrainFigures,
): Promise<ValidationFigures> {
  await training.engine.gpu.sync();
  const start = performance.now();
  const cpu0 = cpuUsage();
  await evaluateRanking(training.model, data.split.valid, {
    keepSeen: c.keepSeen,
  });
  const seconds = (performance.now() - start) / 1000;
  return {
    users: data.split.valid.length,
    seconds,
    cpuSeconds: cpuSecondsSince(cpu0),
    firstValidationSeconds: f.secondsPerEpoch + seconds,
  };
}

function cpuSecondsSince(start: { user: number; system: number }): number {
  const now = cpuUsage(start);
  return (now.user + now.system) / 1e6;
}

/** Per variant with a timed validation: its users, seconds, and when the first one would print. */
export function formatValidations(rows: TrainFigures[]): string {
  const timed = rows.filter((f) => f.validation);
  if (!timed.length) return "";
  return formatTable(
    [
      "variant",
      "validation users",
      "validation s",
      "validation CPU s",
      "CPU s/step",
      "s/epoch",
      "first validation after",
    ],
    timed.map((f) => [
      f.label,
      f.validation!.users,
      f.validation!.seconds,
      f.validation!.cpuSeconds,
      f.cpuSecondsPerStep,
      f.secondsPerEpoch,
      `${(f.validation!.firstValidationSeconds / 60).toFixed(1)} min`,
    ]),
  );
}

export interface PeerFigures {
  label: string;
  /** The variants (by label) that this peer run is the reference for. */
  against: string[];
  secondsPerEpoch: number;
  sequencesPerSecond: number;
}

export function formatTrainReport(
  rows: TrainFigures[],
  peers: PeerFigures[],
): string {
  const peerFor = (f: TrainFigures) => peers.find((p) => p.against.includes(f.label));
  const cells: Cell[][] = rows.map((f) => {
    const peer = peerFor(f);
    return [
      f.label,
      f.msPerStep,
      f.cpuSecondsPerStep,
      f.sequencesPerSecond,
      f.secondsPerEpoch,
      formatBytes(f.peakReservedBytes),
      formatBytes(f.peakLiveBytes),
      formatBytes(f.estimateBytes),
      f.estimateBytes / f.peakReservedBytes,
      peer ? f.sequencesPerSecond / peer.sequencesPerSecond : "-",
    ];
  });
  for (const p of peers) {
    cells.push([
      p.label,
      "-",
      "-",
      p.sequencesPerSecond,
      p.secondsPerEpoch,
      "-",
      "-",
      "-",
      "-",
      1,
    ]);
  }
  return formatTable(
    [
      "variant",
      "ms/step",
      "CPU s/step",
      "seq/s",
      "s/epoch",
      "peak GPU",
      "peak live",
      "estimate",
      "est/peak",
      "×peer",
    ],
    cells,
  );
}

function stepProfile(
  kernels: KernelTime[],
  steps: number,
  seconds: number,
  counts: { dispatches: number; submits: number },
): StepProfile {
  const kernelMs = kernels.reduce((a, k) => a + k.totalMs, 0);
  return {
    dispatchesPerStep: counts.dispatches / steps,
    submitsPerStep: counts.submits / steps,
    msPerStep: (seconds * 1000) / steps,
    kernelMsPerStep: kernelMs / steps,
    kernels: kernels.slice(0, 12).map((k) => ({
      kernel: k.kernel,
      msPerStep: k.totalMs / steps,
      callsPerStep: k.count / steps,
    })),
  };
}

/** Per variant: dispatches and submits per step, kernel time against wall time, top kernels. */
export function formatProfiles(rows: TrainFigures[]): string {
  const out: string[] = [];
  for (const f of rows) {
    const p = f.profile;
    if (!p) continue;
    out.push(
      `${f.label}: ${p.msPerStep.toFixed(0)} ms/step wall, ${p.kernelMsPerStep.toFixed(0)} ms in ` +
        `kernels (${(100 * p.kernelMsPerStep / p.msPerStep).toFixed(0)}%), ` +
        `${p.dispatchesPerStep.toFixed(0)} dispatches and ${
          p.submitsPerStep.toFixed(1)
        } submits per step`,
      formatTable(
        ["kernel", "ms/step", "calls/step"],
        p.kernels.map((k) => [k.kernel, k.msPerStep, k.callsPerStep]),
      ),
      "",
    );
  }
  return out.join("\n");
}
