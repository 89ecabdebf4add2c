/**
 * cutrec's public API: the WebGPU runtime, tensors with autograd and their ops, layers, SASRec,
 * N:M sparse tensors and products, losses (materialised and fused), data, training, evaluation,
 * sweeps and the dashboard.
 */
export { acquireDevice, adapterSlug, NoAdapterError } from "./src/gpu/device.ts";
export { defaultMemoryLimit, Gpu, GpuValidationError } from "./src/gpu/gpu.ts";
export { Allocator, formatBytes, OutOfMemoryError, parseBytes } from "./src/gpu/allocator.ts";
export { KernelProfiler } from "./src/gpu/profiler.ts";
export { Engine } from "./src/tensor/engine.ts";
export { ShapeError, type SparseRows, Tensor } from "./src/tensor/tensor.ts";
export * from "./src/tensor/ops/mod.ts";
export * from "./src/tensor/random.ts";
export { Module } from "./src/nn/module.ts";
export { Linear } from "./src/nn/linear.ts";
export { LayerNorm } from "./src/nn/layernorm.ts";
export { SelfAttention } from "./src/nn/attention.ts";
export { FeedForward, TransformerBlock } from "./src/nn/transformer.ts";
export { SasRec, type SasRecConfig } from "./src/models/sasrec.ts";
export { MostPop } from "./src/models/mostpop.ts";
export { crossEntropyRows } from "./src/loss/ce.ts";
export * from "./src/loss/losses.ts";
export { cceRows, cceSampledRows } from "./src/loss/cce.ts";
export * from "./src/sparse/mod.ts";
export { loadDataset } from "./src/data/load.ts";
export { readInteractions, readSequences } from "./src/data/readers.ts";
export { globalTemporalSplit, leaveOneOut } from "./src/data/split.ts";
export { syntheticDataset } from "./src/data/synthetic.ts";
export {
  drawNegatives,
  type LogQ,
  logQOf,
  negativeId,
  type NegativeSpec,
} from "./src/loss/negatives.ts";
export { makeSampler, NegativeSampler } from "./src/data/samplers.ts";
export { Adam } from "./src/train/optim.ts";
export { clipGradNorm } from "./src/train/clip.ts";
export { evaluateRanking } from "./src/train/evaluate.ts";
export { RankingMetrics } from "./src/train/metrics.ts";
export { prepareData, train } from "./src/train/recommender.ts";
export { RunStore } from "./src/store/runs.ts";
export { SweepStore } from "./src/store/sweeps.ts";
export { serveDashboard } from "./src/dashboard/serve.ts";
export { createApp } from "./src/dashboard/app.tsx";
