/**
 * Peak GPU memory of a training run, estimated before anything is allocated so that a
 * configuration that cannot fit is refused with the estimate. The terms mirror what the engine
 * allocates; `deno task bench:train` prints the estimate beside the allocator's measured peak.
 */
import type { ObjectiveSettings, RecommenderObjective } from "../loss/objectives.ts";
import { ARENA_BYTES } from "../gpu/gpu.ts";
import { formatBytes, sizeClass } from "../gpu/allocator.ts";

export interface MemoryShape {
  items: number;
  dim: number;
  blocks: number;
  seqLen: number;
  batchSize: number;
  /** The most non-padded target positions a batch of the run is expected to have. */
  maxPositions: number;
  /** The transformer computes only real positions (packed batches), not B·L. */
  packed: boolean;
  objective: RecommenderObjective;
  settings: ObjectiveSettings;
  /** Users scored at once during evaluation. */
  evalChunk: number;
  /** The most real history positions an evaluation chunk is expected to hold. */
  evalPositions: number;
}

export interface MemoryEstimate {
  parameters: number;
  optimizer: number;
  gradients: number;
  activations: number;
  loss: number;
  evaluation: number;
  /** Peak of a training step alone, with the size-class slack and the runtime's buffers. */
  step: number;
  /** The larger of a training step and an evaluation pass. */
  total: number;
}

export const F32 = 4;
/**
 * Tensors a block keeps alive per position for backward, in units of d floats, counted from the
 * ops of a pre-LN block (q, k, v, attention, projections, norms, feed-forward, dropout, residuals)
 * and checked against the allocator: a BCE step on Beauty (B·L = 6400, d = 64, 2 blocks) peaks at
 * 55.6 such units above the parameters, this model says 60.
 */
const SAVED_PER_BLOCK = 26;
/**
 * Allowance for size classes (a request rounds up by under 25%, typically 5-10%) and for the
 * allocator's pool of freed buffers (at most 1/8 of the live peak, mostly reused at once).
 */
export const SIZE_CLASS_SLACK = 1.1;
/**
 * The runtime's own buffers: the uniform arena, and readback staging plus the 256-byte minimum
 * size class of small tensors (biases, norms, scalars), which dominate tiny configurations.
 */
export const RUNTIME_BYTES = ARENA_BYTES + 512 * 1024;

/**
 * Peak bytes of `bytes` worth of tensors: the size-class slack on all but `exact` (buffers
 * already counted in their size class), and the runtime's own buffers.
 */
export function withSlack(bytes: number, exact = 0): number {
  return RUNTIME_BYTES + exact + Math.ceil((bytes - exact) * SIZE_CLASS_SLACK);
}

/** A configuration whose estimated peak is over the allocator's limit, refused before training. */
export class MemoryBudgetError extends Error {
  /** `remedy`: the flags that lower the estimate, as advice. */
  constructor(
    readonly estimate: { total: number } & Record<string, number>,
    readonly limit: number,
    remedy: string,
  ) {
    const parts = Object.entries(estimate)
      .filter(([k]) => k !== "total")
      .map(([k, v]) => `${k} ${formatBytes(v)}`)
      .join(", ");
    super(
      `configuration needs an estimated ${formatBytes(estimate.total)} of GPU memory ` +
        `(${parts}) but the budget is ${formatBytes(limit)}; ${remedy}`,
    );
    this.name = "MemoryBudgetError";
  }
}

export function estimateTrainingMemory(s: MemoryShape): MemoryEstimate {
  const d = s.dim;
  const table = (s.items + 1) * d;
  const perBlock = 6 * (d * d + d) + 4 * d;
  const params = table + s.seqLen * d + s.blocks * perBlock + 2 * d;
  const n = s.maxPositions;
  const positions = s.packed ? n : s.batchSize * s.seqLen;
  const k = s.objective.negativesPerPosition(s.settings) ?? 0;
  // The item table, its Adam moments and a dense table gradient are one buffer each, counted in
  // their exact size class: at 1M items they are most of the peak, and a class rounds a 12.8 MB
  // table up by 15% but a 256 MB one by 5%, so a flat slack misjudges one or the other.
  const tableBuffer = sizeClass(table * F32);
  const rest = (params - table) * F32;
  const parameters = tableBuffer + rest;
  const optimizer = 2 * parameters;
  // Full softmax and the fused kernels write a dense table gradient that becomes the table's
  // `.grad` as it is (the lookup's rows arrive sparse beside it): one copy. The materialised
  // sampled losses' gradient is row-sparse, ≤ N(K+1) rows, and like the small parameters'
  // gradients may meet a second copy while accumulating.
  const dense = s.objective.denseTableGradient;
  const sparseRows = Math.min(table, (n * (k + 1) + positions) * d) * F32;
  const gradients = 2 * rest + (dense ? tableBuffer : 2 * sparseRows);
  const tableBuffers = (dense ? 4 : 3) * tableBuffer;
  const activations = (s.blocks * SAVED_PER_BLOCK + 8) * positions * d * F32;
  const loss = s.objective.memoryBytes({
    positions: n,
    items: s.items,
    dim: d,
    settings: s.settings,
  });
  // Evaluation frees each block's intermediates when the block ends (no tape): one block's worth
  // plus the embeddings and the blocks' outputs are live beside the chunk's scores.
  const evaluation = s.evalChunk * (s.items + 1) * F32 +
    (SAVED_PER_BLOCK + s.blocks) * s.evalPositions * d * F32;
  const step = withSlack(parameters + optimizer + gradients + activations + loss, tableBuffers);
  const total = Math.max(step, withSlack(parameters + optimizer + evaluation, 3 * tableBuffer));
  return { parameters, optimizer, gradients, activations, loss, evaluation, step, total };
}
