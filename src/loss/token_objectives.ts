/**
 * Language-model objectives over a vocabulary, registered once like the recommender's
 * (objectives.ts): the trainer, the memory figure and the benchmark ask this registry by name.
 * Unlike an item table, every vocabulary row is a real token (no padding row 0).
 */
import type { Tensor } from "../tensor/tensor.ts";
import { scale } from "../tensor/ops/elementwise.ts";
import { concat } from "../tensor/ops/slice.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { crossEntropyRows } from "./ce.ts";

/** What a token objective scores in one step. */
export interface TokenObjectiveInputs {
  /** [N, d] hidden states of the positions that predict a token. */
  h: Tensor;
  /** [V, d] output head (the token embedding when tied). */
  head: Tensor;
  /** [N] next-token ids in [0, V). */
  targets: Int32Array;
}

export interface TokenObjective {
  readonly name: string;
  /** One line for --help. */
  readonly help: string;
  /** Bytes it allocates in a step for N positions over V tokens, beyond its inputs. */
  memoryBytes(positions: number, vocab: number): number;
  /** Mean loss in nats per position, recorded on the tape. */
  loss(inputs: TokenObjectiveInputs): Tensor;
}

const F32 = 4;

/** V rounded up to a multiple of 4: rows of zeros let every product take the vec4 kernels. */
const paddedVocab = (vocab: number) => Math.ceil(vocab / 4) * 4;

const objectives: TokenObjective[] = [
  {
    name: "ce",
    help: "softmax cross-entropy over the whole vocabulary (N × V logits materialised)",
    // The logits and their gradient, the padded head and its gradient, per-row LSE and loss.
    memoryBytes: (n, vocab) =>
      2 * n * paddedVocab(vocab) * F32 + 2 * paddedVocab(vocab) * F32 + 2 * n * F32,
    loss({ h, head, targets }) {
      const e = h.engine;
      const [vocab, d] = head.shape;
      const pad = paddedVocab(vocab) - vocab;
      const padded = pad === 0 ? head : concat([head, e.zeros([pad, d], "f32", "head padding")], 0);
      const logits = matmul(h, padded, { transB: true });
      const rows = crossEntropyRows(
        logits,
        e.tensor(targets, [targets.length], "i32", "next tokens"),
        { validCols: vocab },
      );
      return scale(sum(rows), 1 / targets.length);
    },
  },
];

const byName = new Map(objectives.map((o) => [o.name, o]));

/** Every registered token objective's name, the default first. */
export const TOKEN_OBJECTIVE_NAMES: readonly string[] = objectives.map((o) => o.name);

/** The token objective called `name`, or an error listing the registered ones. */
export function tokenObjectiveOf(name: string): TokenObjective {
  const o = byName.get(name);
  if (!o) {
    throw new RangeError(
      `unknown token objective "${name}": one of ${TOKEN_OBJECTIVE_NAMES.join(", ")}`,
    );
  }
  return o;
}
