/**
 * Negative samplers for sampled-softmax losses. All return dense item ids in 1..items, drawn with
 * replacement from a seeded generator. A negative may equal the position's target: the loss masks
 * such collisions (methods.md §1), so the samplers do not spend time rejecting them.
 */
import { seededRandom } from "../nn/init.ts";

/**
 * Walker/Vose alias table over indices 0..n-1: draw column c uniformly, keep c with probability
 * `prob[c]`, else take `alias[c]`. O(n) to build, O(1) per draw; a GPU kernel samples the same
 * table with two uniforms per draw.
 */
export interface AliasTable {
  prob: Float32Array;
  alias: Int32Array;
}

/** Builds the alias table of non-negative `weights` (not necessarily normalised; sum > 0). */
export function buildAliasTable(weights: ArrayLike<number>): AliasTable {
  const n = weights.length;
  const scaled = normalisedTimesN(weights);
  const prob = new Float32Array(n);
  const alias = new Int32Array(n);
  const small = new Int32Array(n);
  const large = new Int32Array(n);
  let ns = 0;
  let nl = 0;
  for (let i = 0; i < n; i++) {
    if (scaled[i] < 1) small[ns++] = i;
    else large[nl++] = i;
  }
  // Pair each under-full column with an over-full one that tops it up to exactly 1.
  while (ns > 0 && nl > 0) {
    const s = small[--ns];
    const l = large[--nl];
    prob[s] = scaled[s];
    alias[s] = l;
    scaled[l] = scaled[l] + scaled[s] - 1;
    if (scaled[l] < 1) small[ns++] = l;
    else large[nl++] = l;
  }
  // What is left is full up to rounding error: those columns always keep themselves.
  while (nl > 0) fillSelf(large[--nl], prob, alias);
  while (ns > 0) fillSelf(small[--ns], prob, alias);
  return { prob, alias };
}

/** weights · n / Σ weights, in float64 so the build does not accumulate float32 error. */
function normalisedTimesN(weights: ArrayLike<number>): Float64Array {
  let total = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (!(w >= 0 && Number.isFinite(w))) throw new RangeError(`weight ${i} is ${w}`);
    total += w;
  }
  if (!(total > 0)) throw new RangeError("alias table needs a positive total weight");
  const scaled = new Float64Array(weights.length);
  for (let i = 0; i < weights.length; i++) scaled[i] = (weights[i] * weights.length) / total;
  return scaled;
}

function fillSelf(i: number, prob: Float32Array, alias: Int32Array): void {
  prob[i] = 1;
  alias[i] = i;
}

/** One draw from the table (an index 0..n-1) using two uniforms from `random`. */
export function drawAlias(table: AliasTable, random: () => number): number {
  const c = Math.floor(random() * table.prob.length);
  return random() < table.prob[c] ? c : table.alias[c];
}

/** The probability of each index implied by a table (for checks: equals the normalised weights). */
export function aliasProbabilities(table: AliasTable): Float64Array {
  const n = table.prob.length;
  const p = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    p[c] += table.prob[c] / n;
    p[table.alias[c]] += (1 - table.prob[c]) / n;
  }
  return p;
}

export type SamplerKind = "uniform" | "shared" | "popularity";

/** Draws the negatives of one batch of `rows` target positions. */
export interface NegativeSampler {
  readonly kind: SamplerKind;
  /** Negatives per row (per position), or for the whole batch when shared. */
  readonly k: number;
  /**
   * Ids in 1..items: [rows·k] row-major, or [k] when shared across the batch. With `seed` the
   * draw is a pure function of it (training passes a per-step seed so a resumed run replays the
   * same negatives); without, the sampler's own stream continues.
   */
  sample(rows: number, seed?: number): Int32Array;
  /** The logical shape of `sample(rows)`: [rows, k] or [k]. */
  shape(rows: number): number[];
}

export interface SamplerOptions {
  kind: SamplerKind;
  /** Catalogue size: ids are drawn from 1..items. */
  items: number;
  k: number;
  seed: number;
  /** Popularity: training counts indexed by item id (index 0 ignored). */
  counts?: ArrayLike<number>;
  /** Popularity exponent: weight = count^alpha; 0 is uniform over all items. Default 1. */
  alpha?: number;
}

export function makeSampler(opts: SamplerOptions): NegativeSampler {
  if (!(opts.items >= 1 && opts.k >= 1)) {
    throw new RangeError(`items and k must be ≥ 1, got ${opts.items}, ${opts.k}`);
  }
  if (opts.kind === "uniform") return new UniformSampler(opts.items, opts.k, opts.seed);
  if (opts.kind === "shared") return new SharedSampler(opts.items, opts.k, opts.seed);
  if (!opts.counts) throw new Error("popularity sampler needs item counts");
  return new PopularitySampler(opts.counts, opts.items, opts.k, opts.alpha ?? 1, opts.seed);
}

/** Independent uniform negatives for every position: [rows, k]. */
export class UniformSampler implements NegativeSampler {
  readonly kind = "uniform";
  private readonly random: () => number;
  constructor(readonly items: number, readonly k: number, seed: number) {
    this.random = seededRandom(seed);
  }

  sample(rows: number, seed?: number): Int32Array {
    return uniformIds(rows * this.k, this.items, streamFor(this.random, seed));
  }

  shape(rows: number): number[] {
    return [rows, this.k];
  }
}

/** One set of k uniform negatives scored by every position of the batch: [k]. */
export class SharedSampler implements NegativeSampler {
  readonly kind = "shared";
  private readonly random: () => number;
  constructor(readonly items: number, readonly k: number, seed: number) {
    this.random = seededRandom(seed);
  }

  sample(_rows: number, seed?: number): Int32Array {
    return uniformIds(this.k, this.items, streamFor(this.random, seed));
  }

  shape(_rows: number): number[] {
    return [this.k];
  }
}

/** Negatives ∝ count^alpha for every position: [rows, k]. Items with count 0 need alpha = 0. */
export class PopularitySampler implements NegativeSampler {
  readonly kind = "popularity";
  /** Table over indices 0..items-1 for item ids 1..items. */
  readonly table: AliasTable;
  private readonly random: () => number;
  constructor(
    counts: ArrayLike<number>,
    readonly items: number,
    readonly k: number,
    readonly alpha: number,
    seed: number,
  ) {
    this.table = buildAliasTable(popularityWeights(counts, items, alpha));
    this.random = seededRandom(seed);
  }

  sample(rows: number, seed?: number): Int32Array {
    const random = streamFor(this.random, seed);
    const out = new Int32Array(rows * this.k);
    for (let i = 0; i < out.length; i++) out[i] = drawAlias(this.table, random) + 1;
    return out;
  }

  shape(rows: number): number[] {
    return [rows, this.k];
  }
}

/** count[i]^alpha for items 1..items, at index i-1 (Math.pow(0, 0) = 1 makes alpha 0 uniform). */
export function popularityWeights(
  counts: ArrayLike<number>,
  items: number,
  alpha: number,
): Float64Array {
  const w = new Float64Array(items);
  for (let i = 1; i <= items; i++) w[i - 1] = Math.pow(counts[i] ?? 0, alpha);
  return w;
}

/** `n` ids uniform in 1..items. */
export function uniformIds(n: number, items: number, random: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 + Math.floor(random() * items);
  return out;
}

function streamFor(own: () => number, seed?: number): () => number {
  return seed === undefined ? own : seededRandom(seed);
}
