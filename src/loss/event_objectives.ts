/**
 * The event-sequence objectives, registered once like the recommender's (objectives.ts) and the
 * language model's (token_objectives.ts): what each needs (CoLES slices or whole sequences, a
 * decoder, a frozen teacher) and its loss on the tape. The trainer, the benchmark and the task
 * help ask this registry by name.
 *
 * - coles: per client several random slices, positives are slices of one client; the margin loss
 *   with hard negatives on L2-normalised embeddings, or InfoNCE (`contrastive: "infonce"`).
 * - generative: the decoder rebuilds each event; cross-entropy per categorical field plus the
 *   mean squared error of the numeric inputs (standardised numerics and time gap).
 * - mlem: generative + 10 × SigLIP between the normalised embedding and a frozen CoLES encoder's.
 */
import type { Tensor } from "../tensor/tensor.ts";
import { add, mul, scale, sub } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { l2Normalize } from "../tensor/ops/normalize.ts";
import { mean, sum } from "../tensor/ops/reduce.ts";
import { crossEntropyRows } from "./ce.ts";
import { pairLossRows } from "./pair_losses.ts";

export type ContrastiveLoss = "margin" | "infonce";

export interface EventObjectiveSettings {
  contrastive: ContrastiveLoss;
  margin: number;
  hardNegatives: number;
  temperature: number;
  /** MLEM's weight of the alignment term (10 in the paper). */
  alignWeight: number;
}

/** What the decoder predicted and what it should have. */
export interface ReconstructionTargets {
  /** Per categorical field, logits [events, V]. */
  logits: Tensor[];
  /** Per field, the true ids [events], −1 at padding. */
  ids: Int32Array[];
  /** [events, numeric inputs] prediction and truth (zero at padding), with mask 1 for real events. */
  numeric: Tensor;
  numericTruth: Float32Array;
  mask: Float32Array;
  /** Real events. */
  events: number;
}

export interface EventObjectiveInputs {
  /** [rows, d] embeddings of the encoder being trained. */
  z: Tensor;
  /** Client of each row. */
  clients: Int32Array;
  reconstruction?: ReconstructionTargets;
  /** MLEM: the frozen CoLES embeddings of the same rows, and (t', b) [2]. */
  teacher?: Tensor;
  siglip?: Tensor;
}

export interface EventObjective {
  readonly name: "coles" | "generative" | "mlem";
  readonly help: string;
  /** CoLES trains on random slices; the others on whole sequences. */
  readonly slices: boolean;
  readonly decoder: boolean;
  readonly teacher: boolean;
  loss(i: EventObjectiveInputs, s: EventObjectiveSettings): Tensor;
}

/**
 * Mean over rows of the contrastive loss of slices grouped by client. (`mean` is one dispatch each
 * way, the same products as a sum scaled by 1 / rows, which took two.)
 */
export function contrastiveLoss(z: Tensor, clients: Int32Array, s: EventObjectiveSettings): Tensor {
  const u = l2Normalize(z);
  const sim = matmul(u, u, { transB: true });
  const rows = pairLossRows(sim, {
    mode: s.contrastive,
    groupsA: clients,
    groupsB: clients,
    skipSelf: true,
    margin: s.margin,
    negatives: s.hardNegatives,
    temperature: s.temperature,
  });
  return mean(rows);
}

/** Σ over fields of the mean cross-entropy per real event + the mean squared numeric error. */
export function reconstructionLoss(r: ReconstructionTargets): Tensor {
  const e = r.numeric.engine;
  const perEvent = 1 / Math.max(r.events, 1);
  let total: Tensor | null = null;
  r.logits.forEach((logits, k) => {
    const ids = e.tensor(r.ids[k], [r.ids[k].length], "i32", `field ${k} targets`);
    const ce = scale(sum(crossEntropyRows(logits, ids, { ignoreIndex: -1 })), perEvent);
    total = total ? add(total, ce) : ce;
  });
  const truth = e.tensor(r.numericTruth, r.numeric.shape, "f32", "numeric targets");
  const masked = mul(sub(r.numeric, truth), e.tensor(r.mask, r.numeric.shape, "f32", "event mask"));
  const mse = scale(sum(mul(masked, masked)), perEvent / r.numeric.shape[1]);
  return total ? add(total, mse) : mse;
}

/** SigLIP between two sets of embeddings of the same rows (a row is its own positive). */
export function siglipLoss(z: Tensor, teacher: Tensor, scalars: Tensor): Tensor {
  const rows = z.shape[0];
  const ids = Int32Array.from({ length: rows }, (_, i) => i);
  const sim = matmul(l2Normalize(z), l2Normalize(teacher), { transB: true });
  const loss = pairLossRows(sim, {
    mode: "siglip",
    groupsA: ids,
    groupsB: ids,
    skipSelf: false,
    scalars,
  });
  return mean(loss);
}

function needs<T>(v: T | undefined, what: string, name: string): T {
  if (v === undefined) throw new Error(`objective ${name} needs ${what}`);
  return v;
}

const objectives: EventObjective[] = [
  {
    name: "coles",
    help:
      "contrastive: random slices of a client are positives (margin with hard negatives, or InfoNCE)",
    slices: true,
    decoder: false,
    teacher: false,
    loss: (i, s) => contrastiveLoss(i.z, i.clients, s),
  },
  {
    name: "generative",
    help: "a decoder rebuilds the events from the embedding (CE per field, MSE numerics and gaps)",
    slices: false,
    decoder: true,
    teacher: false,
    loss: (i) => reconstructionLoss(needs(i.reconstruction, "a reconstruction", "generative")),
  },
  {
    name: "mlem",
    help: "generative + 10 × SigLIP alignment with a frozen CoLES encoder (--teacher RUN)",
    slices: false,
    decoder: true,
    teacher: true,
    loss: (i, s) => {
      const rec = reconstructionLoss(needs(i.reconstruction, "a reconstruction", "mlem"));
      const align = siglipLoss(
        i.z,
        needs(i.teacher, "a teacher", "mlem"),
        needs(i.siglip, "SigLIP scalars", "mlem"),
      );
      return add(rec, scale(align, s.alignWeight));
    },
  },
];

const byName = new Map(objectives.map((o) => [o.name, o]));

export const EVENT_OBJECTIVE_NAMES: readonly string[] = objectives.map((o) => o.name);

export function eventObjectiveOf(name: string): EventObjective {
  const o = byName.get(name as EventObjective["name"]);
  if (!o) {
    throw new RangeError(
      `unknown event objective "${name}": one of ${EVENT_OBJECTIVE_NAMES.join(", ")}`,
    );
  }
  return o;
}
