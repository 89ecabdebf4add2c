/**
 * Padded batches of event sequences for the encoders: CoLES's random contiguous slices (several
 * per client, the client's rows are positives of one another) and whole sequences (their last
 * `maxLen` events) for the generative objective and for embedding clients. Numeric fields and the
 * time gap are fed as standardised log-magnitudes, with statistics from the training clients.
 */
import { seededRandom } from "../tensor/random.ts";
import type { EventSequences } from "./transactions.ts";

export interface EventBatch {
  rows: number;
  steps: number;
  /** Valid events of each row (≥ 1); rows are left-aligned, padded after. */
  lengths: Int32Array;
  /** Per categorical field, value ids [rows · steps] (0 in padding). */
  categorical: Int32Array[];
  /** [rows · steps, numeric fields + 1]: standardised numeric fields, then the time gap. */
  numeric: Float32Array;
  /** Client (dense index) of each row. */
  clients: Int32Array;
}

/** A batch's events without the padding: each row's valid events after the previous row's. */
export interface PackedEvents {
  /** Σ lengths. */
  events: number;
  categorical: Int32Array[];
  numeric: Float32Array;
}

export function packedEvents(b: EventBatch): PackedEvents {
  const events = b.lengths.reduce((a, l) => a + l, 0);
  const width = b.numeric.length / Math.max(b.rows * b.steps, 1);
  const categorical = b.categorical.map(() => new Int32Array(events));
  const numeric = new Float32Array(events * width);
  let at = 0;
  b.lengths.forEach((l, r) => {
    const from = r * b.steps;
    b.categorical.forEach((f, k) => categorical[k].set(f.subarray(from, from + l), at));
    numeric.set(b.numeric.subarray(from * width, (from + l) * width), at * width);
    at += l;
  });
  return { events, categorical, numeric };
}

/** Mean and standard deviation of each numeric input (numeric fields, then the time gap). */
export interface NumericStats {
  mean: number[];
  std: number[];
}

/** Signed log-magnitude: amounts span orders of magnitude. */
const squash = (v: number) => Math.sign(v) * Math.log1p(Math.abs(v));

function rawNumeric(s: EventSequences, i: number, first: boolean, out: number[]): number[] {
  out.length = 0;
  for (const f of s.numeric) out.push(squash(f.values[i]));
  out.push(first ? 0 : squash(s.time[i] - s.time[i - 1]));
  return out;
}

export function numericStats(s: EventSequences, clients: Int32Array): NumericStats {
  const width = s.numeric.length + 1;
  const sum = new Float64Array(width);
  const sq = new Float64Array(width);
  let n = 0;
  const row: number[] = [];
  for (const c of clients) {
    for (let i = s.offsets[c]; i < s.offsets[c + 1]; i++) {
      rawNumeric(s, i, i === s.offsets[c], row).forEach((v, k) => {
        sum[k] += v;
        sq[k] += v * v;
      });
      n++;
    }
  }
  const mean = [...sum].map((v) => v / Math.max(n, 1));
  const std = [...sq].map((v, k) => Math.sqrt(Math.max(v / Math.max(n, 1) - mean[k] ** 2, 0)) || 1);
  return { mean, std };
}

/** A contiguous range [start, start + length) of client events per row. */
interface RowSpan {
  client: number;
  start: number;
  length: number;
}

function assemble(s: EventSequences, spans: RowSpan[], stats: NumericStats): EventBatch {
  const rows = spans.length;
  const steps = Math.max(1, ...spans.map((r) => r.length));
  const width = s.numeric.length + 1;
  const categorical = s.categorical.map(() => new Int32Array(rows * steps));
  const numeric = new Float32Array(rows * steps * width);
  const raw: number[] = [];
  spans.forEach((r, b) => {
    for (let t = 0; t < r.length; t++) {
      const i = r.start + t;
      const at = b * steps + t;
      s.categorical.forEach((f, k) => (categorical[k][at] = f.values[i]));
      rawNumeric(s, i, i === s.offsets[r.client], raw).forEach((v, k) => {
        numeric[at * width + k] = (v - stats.mean[k]) / stats.std[k];
      });
    }
  });
  return {
    rows,
    steps,
    lengths: Int32Array.from(spans, (r) => r.length),
    categorical,
    numeric,
    clients: Int32Array.from(spans, (r) => r.client),
  };
}

/** Each client's last `maxLen` events, one row per client. */
export function wholeSequences(
  s: EventSequences,
  clients: ArrayLike<number>,
  maxLen: number,
  stats: NumericStats,
): EventBatch {
  const spans = Array.from(clients, (c) => {
    const n = s.offsets[c + 1] - s.offsets[c];
    const length = Math.min(n, maxLen);
    return { client: c, start: s.offsets[c + 1] - length, length };
  });
  return assemble(s, spans, stats);
}

export interface SliceOptions {
  /** Slices per client. */
  slices: number;
  minLen: number;
  maxLen: number;
}

/**
 * CoLES's sampling: per client `slices` random contiguous sub-sequences, each of a length drawn
 * uniformly from [minLen, maxLen] (clamped to the client's events) at a uniform start.
 */
export function randomSlices(
  s: EventSequences,
  clients: ArrayLike<number>,
  o: SliceOptions,
  random: () => number,
  stats: NumericStats,
): EventBatch {
  const spans: RowSpan[] = [];
  for (const c of Array.from(clients)) {
    const n = s.offsets[c + 1] - s.offsets[c];
    const lo = Math.min(o.minLen, n);
    const hi = Math.min(o.maxLen, n);
    for (let k = 0; k < o.slices; k++) {
      const length = lo + Math.floor(random() * (hi - lo + 1));
      const start = s.offsets[c] + Math.floor(random() * (n - length + 1));
      spans.push({ client: c, start, length });
    }
  }
  // Longest first: the GRU kernels run eight rows per workgroup up to the longest of the eight,
  // so rows of similar lengths side by side skip most padded steps (the loss ignores row order).
  spans.sort((a, b) => b.length - a.length);
  return assemble(s, spans, stats);
}

/** How a training batch is drawn from its clients. */
export type BatchKind = { kind: "slices"; slices: SliceOptions } | {
  kind: "whole";
  maxLen: number;
};

/** Epochs of shuffled client batches (the order of epoch i is a function of the seed and i). */
export class EventBatches {
  readonly batchesPerEpoch: number;

  constructor(
    private readonly s: EventSequences,
    private readonly clients: Int32Array,
    private readonly batchClients: number,
    private readonly how: BatchKind,
    private readonly stats: NumericStats,
    private readonly seed: number,
  ) {
    this.batchesPerEpoch = Math.ceil(clients.length / batchClients);
  }

  *epoch(index: number): Iterable<EventBatch> {
    const r = seededRandom(this.seed * 7919 + index);
    const order = Int32Array.from(this.clients);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let b = 0; b < order.length; b += this.batchClients) {
      const part = order.subarray(b, b + this.batchClients);
      yield this.how.kind === "slices"
        ? randomSlices(this.s, part, this.how.slices, r, this.stats)
        : wholeSequences(this.s, part, this.how.maxLen, this.stats);
    }
  }
}
