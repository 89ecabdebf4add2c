/**
 * Training and evaluation batches, left-padded with item 0 to a fixed length (SASRec style: the
 * most recent items sit at the right end, where the causal model's last position reads them).
 */
import { deriveSeed } from "./dataset.ts";
import type { EvalExample } from "./split.ts";
import { seededRandom } from "../tensor/random.ts";

/** B rows of L positions, row-major; 0 is padding in both arrays. */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  batch: number;
  seqLen: number;
  /** The user of each row. */
  users: Int32Array;
  /** Non-padded target positions (N ≤ B·L). */
  positions: number;
}

export interface BatchOptions {
  batchSize: number;
  seqLen: number;
  seed: number;
  /**
   * Cut batches by real target positions instead of by rows: a batch takes shuffled users while
   * their positions (each row's, at most seqLen) fit this budget; batchSize still caps the rows.
   */
  tokensPerBatch?: number;
}

/**
 * Rows without padding: their real positions back to back. Row r owns positions
 * [offsets[r], offsets[r + 1]); `positions` holds each one's index in the left-padded row
 * (seqLen − length + j), so a model reads the same position embeddings as from the padded rows.
 */
export interface PackedRows {
  inputs: Int32Array;
  positions: Int32Array;
  offsets: Int32Array;
  rows: number;
  /** The longest row. */
  maxLength: number;
  seqLen: number;
}

/** A packed training batch: the targets beside their inputs. */
export interface PackedBatch extends PackedRows {
  targets: Int32Array;
}

/**
 * Packs `rows` left-padded rows of `seqLen` ids (0 = padding; real ids are ≥ 1, so a row's real
 * part is its nonzero tail), keeping their order; `extra` arrays laid out like `inputs` are
 * packed alongside.
 */
export function packRows(
  inputs: Int32Array,
  rows: number,
  seqLen: number,
  extra: Int32Array[] = [],
): { packed: PackedRows; extra: Int32Array[] } {
  const offsets = new Int32Array(rows + 1);
  let maxLength = 0;
  for (let r = 0; r < rows; r++) {
    let first = seqLen;
    while (first > 0 && inputs[r * seqLen + first - 1] !== 0) first--;
    const length = seqLen - first;
    offsets[r + 1] = offsets[r] + length;
    maxLength = Math.max(maxLength, length);
  }
  const total = offsets[rows];
  const out = [inputs, ...extra].map(() => new Int32Array(total));
  const positions = new Int32Array(total);
  for (let r = 0; r < rows; r++) {
    const length = offsets[r + 1] - offsets[r];
    const from = r * seqLen + seqLen - length;
    [inputs, ...extra].forEach((src, i) =>
      out[i].set(src.subarray(from, from + length), offsets[r])
    );
    for (let j = 0; j < length; j++) positions[offsets[r] + j] = seqLen - length + j;
  }
  return {
    packed: { inputs: out[0], positions, offsets, rows, maxLength, seqLen },
    extra: out.slice(1),
  };
}

/** The packed form of a padded training batch (rows keep their order). */
export function packBatch(batch: Batch): PackedBatch {
  const { packed, extra } = packRows(batch.inputs, batch.batch, batch.seqLen, [batch.targets]);
  return { ...packed, targets: extra[0] };
}

/**
 * Writes the training row of `seq` at `row`: inputs s[:-1], targets s[1:], keeping the last
 * `seqLen` pairs, left-padded with 0. Returns the number of target positions written.
 */
export function fillTrainingRow(
  seq: Int32Array,
  seqLen: number,
  inputs: Int32Array,
  targets: Int32Array,
  row: number,
): number {
  const pairs = Math.min(Math.max(seq.length - 1, 0), seqLen);
  const at = row * seqLen + seqLen - pairs;
  const n = seq.length;
  inputs.set(seq.subarray(n - 1 - pairs, n - 1), at);
  targets.set(seq.subarray(n - pairs, n), at);
  return pairs;
}

/** Writes the last `seqLen` items of `seq` at `row`, left-padded with 0. */
export function fillHistoryRow(seq: Int32Array, seqLen: number, out: Int32Array, row: number) {
  const take = Math.min(seq.length, seqLen);
  out.set(seq.subarray(seq.length - take), row * seqLen + seqLen - take);
}

/**
 * Shuffled training batches over the users whose training sequence has at least 2 items (fewer
 * give no (input, target) pair). Epoch e uses its own seeded shuffle, so any epoch can be
 * replayed; the last partial batch is kept (its `batch` is smaller).
 */
export class BatchIterator {
  /** Users that yield at least one target. */
  readonly users: Int32Array;

  constructor(readonly train: readonly Int32Array[], readonly opts: BatchOptions) {
    if (!(opts.batchSize >= 1 && opts.seqLen >= 1)) {
      throw new RangeError(
        `batchSize and seqLen must be ≥ 1, got ${opts.batchSize}, ${opts.seqLen}`,
      );
    }
    if (opts.tokensPerBatch !== undefined && !(opts.tokensPerBatch >= opts.seqLen)) {
      throw new RangeError(
        `tokensPerBatch must be ≥ seqLen (${opts.seqLen}) so that every row fits a batch, ` +
          `got ${opts.tokensPerBatch}`,
      );
    }
    const eligible: number[] = [];
    train.forEach((s, u) => s.length >= 2 && eligible.push(u));
    this.users = Int32Array.from(eligible);
  }

  /** Batches of epoch 0 (with a token budget, other epochs' counts differ by a few). */
  get batchesPerEpoch(): number {
    if (this.opts.tokensPerBatch === undefined) {
      return Math.ceil(this.users.length / this.opts.batchSize);
    }
    return this.cuts(shuffled(this.users, deriveSeed(this.opts.seed, 0))).length - 1;
  }

  /** The batches of epoch `epoch` (0-based) in shuffled order. */
  *epoch(epoch: number): Generator<Batch> {
    const order = shuffled(this.users, deriveSeed(this.opts.seed, epoch));
    const cuts = this.cuts(order);
    for (let i = 0; i + 1 < cuts.length; i++) {
      yield this.batchOf(order.subarray(cuts[i], cuts[i + 1]));
    }
  }

  /** Where the batches of `order` start, and its end: by rows, or by the token budget. */
  private cuts(order: Int32Array): number[] {
    const { batchSize, seqLen, tokensPerBatch } = this.opts;
    const cuts = [0];
    let rows = 0;
    let tokens = 0;
    for (let i = 0; i < order.length; i++) {
      const length = Math.min(this.train[order[i]].length - 1, seqLen);
      const full = rows === batchSize ||
        (tokensPerBatch !== undefined && tokens + length > tokensPerBatch);
      if (rows > 0 && full) {
        cuts.push(i);
        rows = 0;
        tokens = 0;
      }
      rows++;
      tokens += length;
    }
    if (order.length > 0) cuts.push(order.length);
    return cuts;
  }

  private batchOf(users: Int32Array): Batch {
    const { seqLen } = this.opts;
    const inputs = new Int32Array(users.length * seqLen);
    const targets = new Int32Array(users.length * seqLen);
    let positions = 0;
    users.forEach((u, row) => {
      positions += fillTrainingRow(this.train[u], seqLen, inputs, targets, row);
    });
    return { inputs, targets, batch: users.length, seqLen, users: users.slice(), positions };
  }
}

/** Fisher–Yates shuffle of a copy, driven by the seeded generator. */
function shuffled(values: Int32Array, seed: number): Int32Array {
  const out = values.slice();
  const random = seededRandom(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

/** Evaluation batch: histories as [B, L] left-padded inputs, one target per row. */
export interface EvalBatch {
  inputs: Int32Array;
  targets: Int32Array;
  users: Int32Array;
  batch: number;
  seqLen: number;
  /** The examples of the rows (full histories, e.g. to exclude already-seen items). */
  examples: EvalExample[];
}

/** Evaluation examples in order, `batchSize` at a time; histories truncated to the last seqLen. */
export function* evalBatches(
  examples: readonly EvalExample[],
  batchSize: number,
  seqLen: number,
): Generator<EvalBatch> {
  for (let start = 0; start < examples.length; start += batchSize) {
    const part = examples.slice(start, start + batchSize);
    const inputs = new Int32Array(part.length * seqLen);
    part.forEach((ex, row) => fillHistoryRow(ex.history, seqLen, inputs, row));
    yield {
      inputs,
      targets: Int32Array.from(part, (ex) => ex.target),
      users: Int32Array.from(part, (ex) => ex.user),
      batch: part.length,
      seqLen,
      examples: part,
    };
  }
}
