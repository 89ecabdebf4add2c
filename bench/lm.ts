/**
 * Language-model throughput and memory: training tokens/s (optimiser steps on random windows),
 * prefill tokens/s (one forward of a prompt into a kv cache) and batch-1 decoding tokens/s, with
 * the allocator's peaks. Decoding is measured on both paths of generate(): fused (the GPU decodes
 * and samples, ids read back in bulk) and layer by layer (one cached step and one readback of the
 * logits per token), in the same run. The fused rate, like the peer's, is greedy decoding of
 * `decodeTokens` tokens after a prompt of `decodePromptTokens`, timed over `decodeRuns` runs after
 * an untimed one that compiles the kernels (the prompt's prefill and first token are not timed).
 */
import type { Engine } from "../src/tensor/engine.ts";
import type { Llama } from "../src/models/llama.ts";
import { generate } from "../src/models/generate.ts";
import { defaultDecodePlan } from "../src/models/decode.ts";
import { RandomWindows } from "../src/data/text.ts";
import { tokenObjectiveOf } from "../src/loss/token_objectives.ts";
import { windowLoss } from "../src/train/lm.ts";
import { Adam } from "../src/train/optim.ts";
import { optimiserStep, PipelinedSteps } from "../src/train/loop.ts";
import { formatBytes } from "../src/gpu/allocator.ts";
import {
  type BlockPartner,
  blockSizes,
  type Cell,
  formatRoundRatios,
  formatTable,
} from "./util.ts";

export interface LmBenchCase {
  label: string;
  /** Builds the model (random or loaded weights); the bench disposes it. */
  model: () => Promise<Llama>;
  /** The token stream training windows are drawn from. */
  tokens: Int32Array;
  batchSize: number;
  seqLen: number;
  lr: number;
  clip: number;
  promptTokens: number;
  /** The prompt decoding starts from: short, so that a run decodes most of the context. */
  decodePromptTokens: number;
  decodeTokens: number;
  /** Timed decoding runs, after a warm-up run. */
  decodeRuns: number;
}

export interface LmBenchFigures {
  label: string;
  parameters: number;
  batchSize: number;
  seqLen: number;
  msPerStep: number;
  trainTokensPerSecond: number;
  /** Seconds of each timed block of training steps (one block unless interleaved). */
  trainBlockSeconds: number[];
  trainBlockSteps: number[];
  trainPeakBytes: number;
  meanLoss: number;
  promptTokens: number;
  prefillTokensPerSecond: number;
  decodeTokens: number;
  decodeRuns: number;
  /** The fused path's rate, and its plan ("tokens/lanes", "split/rows", …). */
  decodeTokensPerSecond: number;
  decodePlan: string;
  /** The layer-by-layer path's rate, for the ratio. */
  layerDecodeTokensPerSecond: number;
  inferencePeakBytes: number;
}

export interface PeerLmFigures {
  label: string;
  parameters: number;
  trainTokensPerSecond: number;
  /** Seconds of each block of training steps, run in turns with ours (LmBenchFigures'). */
  trainBlockSeconds: number[];
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** The thread count of the peer's best decoding rate (of 1 and 2). */
  decodeThreads: number;
  trainLoss: number;
}

/**
 * Trains `warmup` untimed then `steps` timed steps (in `partner.blocks` blocks, each followed by
 * one of the partner's when it is given), then measures prefill and decoding.
 */
export async function benchLm(
  engine: Engine,
  c: LmBenchCase,
  steps: number,
  warmup: number,
  partner?: { trainer: BlockPartner; blocks: number },
): Promise<LmBenchFigures> {
  const allocator = engine.gpu.allocator;
  allocator.trimPool();
  await engine.gpu.sync();
  allocator.resetPeaks();
  const model = await c.model();
  const optimizer = new Adam(model.parameters(), { lr: c.lr, decoupled: true });
  const objective = tokenObjectiveOf("ce");
  const batches = new RandomWindows(c.tokens, {
    batchSize: c.batchSize,
    seqLen: c.seqLen,
    stepsPerEpoch: warmup + steps,
    seed: 0,
  })
    .epoch(0)[Symbol.iterator]();
  const step = () =>
    optimiserStep(
      engine,
      model,
      optimizer,
      c.clip,
      () => windowLoss(model, objective, batches.next().value),
    );
  let lossSum = 0;
  const blocks = blockSizes(steps, partner?.blocks ?? 1);
  // As in lm:train (src/train/lm.ts): steps of one shape keep what they free for the next.
  const blockSeconds = await allocator.withSteadyShapes(async () => {
    for (let i = 0; i < warmup; i++) await step();
    const seconds: number[] = [];
    for (const blockSteps of blocks) {
      const t0 = performance.now();
      const timed = new PipelinedSteps<void>((loss) => {
        lossSum += loss;
      });
      for (let i = 0; i < blockSteps; i++) await timed.push(step);
      await timed.flush();
      seconds.push((performance.now() - t0) / 1000);
      await partner?.trainer.train(blockSteps);
    }
    return seconds;
  });
  const trainSeconds = blockSeconds.reduce((a, b) => a + b, 0);
  const trainPeakBytes = allocator.peakReservedBytes;
  optimizer.dispose();

  allocator.trimPool();
  await engine.gpu.sync();
  allocator.resetPeaks();
  const prompt = Array.from(c.tokens.subarray(0, c.promptTokens));
  const prefillOnce = async () => {
    const cache = model.newCache(1, c.promptTokens);
    const logits = model.prefill(
      engine.tensor(Int32Array.from(prompt), [1, prompt.length], "i32"),
      cache,
    );
    await logits.read();
    logits.dispose();
    cache.dispose();
  };
  await prefillOnce();
  const reps = 3;
  const t1 = performance.now();
  for (let i = 0; i < reps; i++) await prefillOnce();
  const prefillSeconds = (performance.now() - t1) / 1000 / reps;
  // A warm-up generation compiles each path's kernels; each timed one decodes decodeTokens.
  const decodeRate = async (decode: "fused" | "layers", runs: number) => {
    const opts = { temperature: 0, topK: 0, seed: 0, decode, maxTokens: c.decodeTokens + 1 };
    const start = Array.from(c.tokens.subarray(0, c.decodePromptTokens));
    await generate(model, start, opts);
    let [tokens, seconds] = [0, 0];
    for (let i = 0; i < runs; i++) {
      const g = await generate(model, start, opts);
      tokens += g.ids.length - 1;
      seconds += g.decodeSeconds;
    }
    return { rate: tokens / seconds, tokens: tokens / runs };
  };
  const fused = await decodeRate("fused", c.decodeRuns);
  // The layer path pays a readback per token: one run gives its rate.
  const layers = await decodeRate("layers", 1);
  const plan = defaultDecodePlan(model, c.decodePromptTokens + c.decodeTokens + 1);
  const inferencePeakBytes = allocator.peakReservedBytes;
  const parameters = model.parameters().reduce((n, t) => n + t.size, 0);
  model.dispose();
  return {
    label: c.label,
    parameters,
    batchSize: c.batchSize,
    seqLen: c.seqLen,
    // No steps (--decode-only): no training figures.
    msPerStep: steps > 0 ? (trainSeconds / steps) * 1000 : NaN,
    trainTokensPerSecond: steps > 0 ? (steps * c.batchSize * c.seqLen) / trainSeconds : NaN,
    trainBlockSeconds: blockSeconds,
    trainBlockSteps: blocks,
    trainPeakBytes,
    meanLoss: lossSum / steps,
    promptTokens: c.promptTokens,
    prefillTokensPerSecond: c.promptTokens / prefillSeconds,
    decodeTokens: fused.tokens,
    decodeRuns: c.decodeRuns,
    decodeTokensPerSecond: fused.rate,
    decodePlan: `${plan.schedule}/${plan.laneRows ? "lanes" : "rows"}`,
    layerDecodeTokensPerSecond: layers.rate,
    inferencePeakBytes,
  };
}

/**
 * Training ×peer of every round (our block against the peer's block right after it) and their
 * median, one line per model: how much a ratio moves with the machine.
 */
export function formatLmRounds(rows: LmBenchFigures[], peers: PeerLmFigures[]): string[] {
  return rows.flatMap((f) => {
    const p = peers.find((x) => x.label === f.label);
    const rounds = p && formatRoundRatios(f.trainBlockSeconds, p.trainBlockSeconds);
    return rounds ? [`${f.label}: training ×peer by round ${rounds}`] : [];
  });
}

export function formatLmReport(rows: LmBenchFigures[], peers: PeerLmFigures[]): string {
  const ratio = (ours: number, peer: number | undefined) => (peer ? ours / peer : "-");
  // Training figures of a --decode-only run are NaN.
  const shown = (v: number): Cell => Number.isFinite(v) ? v : "-";
  const cells: Cell[][] = rows.map((f) => {
    const p = peers.find((x) => x.label === f.label);
    return [
      f.label,
      f.parameters,
      `${f.batchSize}×${f.seqLen}`,
      shown(f.msPerStep),
      shown(f.trainTokensPerSecond),
      ratio(f.trainTokensPerSecond, p?.trainTokensPerSecond),
      f.prefillTokensPerSecond,
      ratio(f.prefillTokensPerSecond, p?.prefillTokensPerSecond),
      `${f.decodeTokens}×${f.decodeRuns}`,
      f.decodeTokensPerSecond,
      ratio(f.decodeTokensPerSecond, p?.decodeTokensPerSecond),
      f.layerDecodeTokensPerSecond,
      formatBytes(f.trainPeakBytes),
      formatBytes(f.inferencePeakBytes),
    ];
  });
  for (const p of peers) {
    cells.push([
      `peer ${p.label}`,
      p.parameters,
      "-",
      "-",
      shown(p.trainTokensPerSecond),
      1,
      p.prefillTokensPerSecond,
      1,
      `${p.decodeThreads} thread${p.decodeThreads === 1 ? "" : "s"}`,
      p.decodeTokensPerSecond,
      1,
      "-",
      "-",
      "-",
    ]);
  }
  return formatTable(
    [
      "model",
      "params",
      "B×T",
      "ms/step",
      "train tok/s",
      "×peer",
      "prefill tok/s",
      "×peer",
      "decoded",
      "decode tok/s",
      "×peer",
      "layer-path decode",
      "peak train",
      "peak infer",
    ],
    cells,
  );
}
