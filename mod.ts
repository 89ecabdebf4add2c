/**
 * cutrec's public API: the WebGPU runtime, tensors with autograd and their ops, layers, SASRec,
 * N:M sparse tensors and products, activation and weight pruning, fine-tuning of pruned models
 * (GIFT-SW, LoRA, full), a Llama-style language model, event-sequence self-supervised encoders
 * (CoLES, generative, MLEM), losses (materialised and fused), data, training, evaluation, sweeps
 * and the dashboard.
 */
export { acquireDevice, adapterSlug, NoAdapterError } from "./src/gpu/device.ts";
export { defaultMemoryLimit, Gpu, GpuValidationError } from "./src/gpu/gpu.ts";
export { Allocator, formatBytes, OutOfMemoryError, parseBytes } from "./src/gpu/allocator.ts";
export { KernelProfiler } from "./src/gpu/profiler.ts";
export { Engine } from "./src/tensor/engine.ts";
export { ShapeError, type SparseRows, Tensor } from "./src/tensor/tensor.ts";
export * from "./src/tensor/ops/mod.ts";
export * from "./src/tensor/random.ts";
export { rmsNorm } from "./src/tensor/ops/rmsnorm.ts";
export { rope, rotaryTable } from "./src/tensor/ops/rope.ts";
export { siluGate } from "./src/tensor/ops/swiglu.ts";
export { appendToCache, attendToCache } from "./src/tensor/ops/attention_cache.ts";
export { Module } from "./src/nn/module.ts";
export { Linear, type LinearInputTransform, type LinearWeightTransform } from "./src/nn/linear.ts";
export { LayerNorm } from "./src/nn/layernorm.ts";
export { SelfAttention } from "./src/nn/attention.ts";
export { FeedForward, TransformerBlock } from "./src/nn/transformer.ts";
export { RMSNorm } from "./src/nn/rmsnorm.ts";
export { DecoderLayer, GatedFeedForward, RotaryAttention } from "./src/nn/decoder.ts";
export { SasRec, type SasRecConfig } from "./src/models/sasrec.ts";
export { MostPop } from "./src/models/mostpop.ts";
export {
  assignWeights,
  KvCache,
  Llama,
  type LlamaConfig,
  WeightError,
} from "./src/models/llama.ts";
export { loadLlama2c, parseLlama2c } from "./src/models/llama2c.ts";
export {
  type DecodePath,
  generate,
  type GenerateOptions,
  type Generation,
} from "./src/models/generate.ts";
export {
  type DecodePlan,
  defaultDecodePlan,
  fusedDecodeBlocker,
  FusedDecoder,
} from "./src/models/decode.ts";
export { sampleToken } from "./src/models/sampling.ts";
export { tokenObjectiveOf } from "./src/loss/token_objectives.ts";
export { ByteTokenizer, CharTokenizer, splitText } from "./src/data/text.ts";
export { Llama2cTokenizer } from "./src/data/llama2c_tokenizer.ts";
export { HfTokenizer } from "./src/data/hf_tokenizer.ts";
export { evaluateText, loadLmRun, loadModelPath, trainLm } from "./src/train/lm.ts";
export { exportHfLlama, loadHfLlama } from "./src/train/hf.ts";
export { crossEntropyRows } from "./src/loss/ce.ts";
export * from "./src/loss/losses.ts";
export { cceRows, cceSampledRows } from "./src/loss/cce.ts";
export * from "./src/sparse/mod.ts";
export * from "./src/prune/mod.ts";
export * from "./src/finetune/mod.ts";
export { finetuneLm } from "./src/train/finetune.ts";
export { finetuneSasrec } from "./src/train/finetune_sasrec.ts";
export { openSasrecRun, readRunConfig } from "./src/train/sasrec_run.ts";
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
export { Gru } from "./src/nn/gru.ts";
export {
  EventDecoder,
  EventEncoder,
  type EventEncoderConfig,
  EventFeatures,
} from "./src/models/event_encoder.ts";
export {
  contrastiveLoss,
  eventObjectiveOf,
  reconstructionLoss,
  siglipLoss,
} from "./src/loss/event_objectives.ts";
export { pairLossRows } from "./src/loss/pair_losses.ts";
export {
  type EventSequences,
  labelClients,
  readTargets,
  readTransactions,
} from "./src/data/transactions.ts";
export { loadTransactions } from "./src/data/transactions_cache.ts";
export { splitClients, syntheticEvents } from "./src/data/event_synthetic.ts";
export { EventBatches, randomSlices, wholeSequences } from "./src/data/event_batches.ts";
export {
  anisotropy,
  crossValidatedAccuracy,
  fitLogistic,
  knnAccuracy,
  probeAccuracy,
} from "./src/train/probe.ts";
export { evaluateEmbeddings, loadSslRun, prepareEvents, trainSsl } from "./src/train/ssl.ts";
export { Adam } from "./src/train/optim.ts";
export { clipGradNorm } from "./src/train/clip.ts";
export { evaluateRanking } from "./src/train/evaluate.ts";
export { RankingMetrics } from "./src/train/metrics.ts";
export { prepareData, train } from "./src/train/recommender.ts";
export { RunStore } from "./src/store/runs.ts";
export { SweepStore } from "./src/store/sweeps.ts";
export {
  type EmbeddingKind,
  type Embeddings,
  readEmbeddings,
  writeEmbeddings,
} from "./src/store/embeddings.ts";
export { StoreReader } from "./src/store/read.ts";
export { type Sql, SqliteSql } from "./src/store/sql.ts";
export { PostgresSql } from "./src/store/postgres.ts";
export { openSql } from "./src/store/open.ts";
export { serveDashboard } from "./src/dashboard/serve.ts";
export { createApp } from "./src/dashboard/app.tsx";
