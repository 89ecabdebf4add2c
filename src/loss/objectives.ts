/**
 * The recommender's objectives, registered once: what each needs (negatives, how many), how it is
 * shown ("full softmax", "256 shared"), how much memory it takes beyond its inputs, and its loss
 * on the tape. The trainer, the memory estimate, the benchmarks, the sweep and the dashboard ask
 * this registry; nothing else compares objective names.
 */
import type { Tensor } from "../tensor/tensor.ts";
import { scale } from "../tensor/ops/elementwise.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { CCE_FULL_MAX_SPLITS, cceRows, cceSampledRows } from "./cce.ts";
import { tableGradBytes } from "./cce_table_grad.ts";
import {
  binaryCrossEntropy,
  fullCrossEntropy,
  gbceBeta,
  type Negatives,
  sampledCrossEntropy,
} from "./losses.ts";
import type { NegativeSpec } from "./negatives.ts";

export type SamplerKind = "uniform" | "shared" | "popularity";
export const SAMPLER_KINDS: readonly SamplerKind[] = ["uniform", "shared", "popularity"];

/**
 * Where an objective gets its negatives: the data layer's samplers implement it. The fused
 * kernels draw from the spec themselves; the materialised losses take the ids.
 */
export interface NegativeSource {
  /** What the fused kernels draw step `step`'s negatives from. */
  spec(step: number): NegativeSpec;
  /** Step `step`'s negatives of `positions` positions, with the sampler's own logQ correction. */
  negatives(positions: number, step: number): Negatives;
}

/** The settings an objective may read (each reads only its own; see `flags`). */
export interface ObjectiveSettings {
  negatives: number;
  sampler: SamplerKind;
  logQ: boolean;
  gbceT: number;
  filterEps: number;
}

/** What an objective scores in one step: the hidden states of the real positions. */
export interface ObjectiveInputs {
  /** [N, d] hidden states of the positions that have a target. */
  h: Tensor;
  /** [C+1, d] tied item table, row 0 = padding (never scored). */
  table: Tensor;
  /** [N] target ids in 1..C. */
  targets: Int32Array;
  /** The run's negatives; null for objectives that need none. */
  negatives: NegativeSource | null;
  /** The optimiser step (negatives and dropout are functions of it). */
  step: number;
}

/** Shape of one step as the memory estimate sees it. */
export interface ObjectiveMemoryShape {
  /** Target positions of the largest batch. */
  positions: number;
  /** C: the table has C + 1 rows. */
  items: number;
  dim: number;
  settings: ObjectiveSettings;
}

export interface RecommenderObjective {
  readonly name: string;
  /** One line for --help. */
  readonly help: string;
  /** The training flags it reads, beyond the model's (shown in help and on the dashboard). */
  readonly flags: readonly string[];
  /** Negatives per position (per batch when shared) it scores, or null for a full softmax. */
  negativesPerPosition(s: ObjectiveSettings): number | null;
  /**
   * True when it writes a dense [C+1, d] table gradient (full softmax, fused kernels); false when
   * the gradient reaches the table as gathered rows.
   */
  readonly denseTableGradient: boolean;
  /** Bytes it allocates in a step beyond its inputs and the table gradient. */
  memoryBytes(shape: ObjectiveMemoryShape): number;
  /** Mean loss over the positions, recorded on the tape. */
  loss(inputs: ObjectiveInputs, s: ObjectiveSettings): Tensor;
}

const F32 = 4;

const mean = (rows: Tensor, n: number) => scale(sum(rows), 1 / n);

function needNegatives(name: string, inputs: ObjectiveInputs): NegativeSource {
  if (!inputs.negatives) throw new Error(`objective ${name} needs a negative sampler`);
  return inputs.negatives;
}

/** The negatives of a materialised loss, drawn on the host exactly as the fused kernels draw. */
function hostNegatives(name: string, inputs: ObjectiveInputs): Negatives {
  return needNegatives(name, inputs).negatives(inputs.targets.length, inputs.step);
}

/**
 * Logits, their gradient and the gathered rows of a materialised sampled loss: N·(K+1) logits in
 * six live copies through the ops, the gathered negative rows and their gradient, and the
 * positives' rows.
 */
function sampledMemory(k: number, { positions: n, dim: d, settings }: ObjectiveMemoryShape) {
  const shared = settings.sampler === "shared";
  const logits = 6 * n * (k + 1) * F32;
  const gathered = shared ? 2 * k * d * F32 : 2 * n * k * d * F32;
  return logits + gathered + 2 * n * d * F32;
}

const SAMPLED_FLAGS = ["negatives", "sampler", "alpha", "log-q"] as const;

const objectives: RecommenderObjective[] = [
  {
    name: "cce-",
    help: "fused sampled softmax (negatives drawn and scored in-kernel)",
    flags: SAMPLED_FLAGS,
    negativesPerPosition: (s) => s.negatives,
    denseTableGradient: true,
    // O(N) per-row state (LSE, loss, running max and sum), a [N, d] dh scratch and block sum;
    // for shared negatives their ids and per-slot sums, for per-position ones the table
    // gradient's N·K entries and per-item counts (tableGradBytes). Popularity negatives keep the
    // alias table on the device (8 bytes per item) and, with logQ, the log-probabilities (4).
    memoryBytes: ({ positions: n, items, dim: d, settings: s }) =>
      n * (6 + 2 * d) * F32 +
      (s.sampler === "shared" ? 3 * s.negatives * F32 : tableGradBytes(n, s.negatives, items, d)) +
      (s.sampler === "popularity" ? items * (8 + (s.logQ ? F32 : 0)) : 0),
    loss(inputs, s) {
      const { h, table, targets } = inputs;
      const source = needNegatives("cce-", inputs);
      const t = h.engine.tensor(targets, [targets.length], "i32", "targets");
      return mean(
        cceSampledRows(h, table, t, source.spec(inputs.step), { logQ: s.logQ }),
        targets.length,
      );
    },
  },
  {
    name: "cce",
    help: "fused full softmax (logits never stored)",
    flags: ["filter-eps"],
    negativesPerPosition: () => null,
    denseTableGradient: true,
    // Per row: LSE, loss, max and sum, ≤ CCE_FULL_MAX_SPLITS partial (max, sum) pairs, dh.
    memoryBytes: ({ positions: n, dim: d }) => n * (4 + 2 * CCE_FULL_MAX_SPLITS + 2 * d) * F32,
    loss({ h, table, targets }, s) {
      const t = h.engine.tensor(targets, [targets.length], "i32", "targets");
      return mean(cceRows(h, table, t, { filterEps: s.filterEps }), targets.length);
    },
  },
  {
    name: "ce",
    help: "materialised full softmax (N × C logits)",
    flags: [],
    negativesPerPosition: () => null,
    denseTableGradient: true,
    // The logits and their gradient, rows padded to a multiple of 4 for the vec4 matmul; when
    // C + 1 is not such a multiple, the zero-padded copy of the table and its gradient too.
    memoryBytes: ({ positions: n, items, dim: d }) => {
      const cols = Math.ceil((items + 1) / 4) * 4;
      const paddedTable = cols === items + 1 ? 0 : 2 * cols * d * F32;
      return 2 * n * cols * F32 + paddedTable;
    },
    loss: ({ h, table, targets }) => fullCrossEntropy(h, table, targets),
  },
  {
    name: "ce-",
    help: "materialised sampled softmax",
    flags: SAMPLED_FLAGS,
    negativesPerPosition: (s) => s.negatives,
    denseTableGradient: false,
    memoryBytes: (shape) => sampledMemory(shape.settings.negatives, shape),
    loss: (inputs, s) =>
      sampledCrossEntropy(inputs.h, inputs.table, inputs.targets, hostNegatives("ce-", inputs), {
        logQ: s.logQ,
      }),
  },
  {
    name: "bce",
    help: "binary cross-entropy with one negative (SASRec's original loss)",
    flags: ["sampler", "alpha"],
    negativesPerPosition: () => 1,
    denseTableGradient: false,
    memoryBytes: (shape) => sampledMemory(1, shape),
    loss: (inputs) =>
      binaryCrossEntropy(inputs.h, inputs.table, inputs.targets, hostNegatives("bce", inputs)),
  },
  {
    name: "gbce",
    help: "gSASRec's generalised BCE with K negatives",
    flags: [...SAMPLED_FLAGS.filter((f) => f !== "log-q"), "gbce-t"],
    negativesPerPosition: (s) => s.negatives,
    denseTableGradient: false,
    memoryBytes: (shape) => sampledMemory(shape.settings.negatives, shape),
    loss(inputs, s) {
      const neg = hostNegatives("gbce", inputs);
      const items = inputs.table.shape[0] - 1;
      return binaryCrossEntropy(
        inputs.h,
        inputs.table,
        inputs.targets,
        neg,
        gbceBeta(items, neg.k, s.gbceT),
      );
    },
  },
];

const byName = new Map(objectives.map((o) => [o.name, o]));

/** Every registered objective's name, the default first. */
export const OBJECTIVE_NAMES: readonly string[] = objectives.map((o) => o.name);

/** The objective called `name`, or an error listing the registered ones. */
export function objectiveOf(name: string): RecommenderObjective {
  const o = byName.get(name);
  if (!o) {
    throw new RangeError(`unknown objective "${name}": one of ${OBJECTIVE_NAMES.join(", ")}`);
  }
  return o;
}

/** True for an objective that scores the whole catalogue (no negatives). */
export function isFullSoftmax(name: string, s: ObjectiveSettings): boolean {
  return objectiveOf(name).negativesPerPosition(s) === null;
}

/** How an objective with its settings is shown: "full softmax", "256 shared", "1 uniform". */
export function objectiveLabel(name: string, s: ObjectiveSettings): string {
  const k = objectiveOf(name).negativesPerPosition(s);
  return k === null ? "full softmax" : `${k} ${s.sampler}`;
}

/**
 * A stored run configuration (JSON, any version) read through the registry: its objective, the
 * negatives it scored (null for a full softmax) and its label; null when the configuration
 * names no registered objective.
 */
export function describeStoredObjective(
  config: Record<string, unknown>,
): { name: string; negatives: number | null; label: string } | null {
  const name = config.loss;
  if (typeof name !== "string" || !byName.has(name)) return null;
  const settings: ObjectiveSettings = {
    negatives: typeof config.negatives === "number" ? config.negatives : 0,
    sampler: SAMPLER_KINDS.includes(config.sampler as SamplerKind)
      ? config.sampler as SamplerKind
      : "uniform",
    logQ: config.logQ === true,
    gbceT: typeof config.gbceT === "number" ? config.gbceT : 0,
    filterEps: typeof config.filterEps === "number" ? config.filterEps : 0,
  };
  return {
    name,
    negatives: objectiveOf(name).negativesPerPosition(settings),
    label: objectiveLabel(name, settings),
  };
}
