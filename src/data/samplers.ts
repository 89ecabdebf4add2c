/**
 * Negative samplers for sampled-softmax losses: dense item ids in 1..items, drawn with replacement
 * as a pure function of (seed, position, slot) from the counter-based generator. A sampler hands
 * the losses a NegativeSpec (the interface src/loss/negatives.ts owns): the fused CE- kernels draw
 * the same ids on the GPU where they score them, so the materialised losses and the fused ones see
 * identical negatives. A negative may equal the position's target: the loss masks such
 * collisions (methods.md §1).
 */
import {
  type AliasTable,
  drawNegatives,
  logQOf,
  type NegativeKind,
  type NegativeSpec,
} from "../loss/negatives.ts";
import type { Negatives } from "../loss/losses.ts";
import { deriveSeed } from "./dataset.ts";

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

/** The alias table of popularity negatives ∝ count^alpha over items 1..items (index i-1). */
export function popularityAlias(
  counts: ArrayLike<number>,
  items: number,
  alpha = 1,
): AliasTable {
  return buildAliasTable(popularityWeights(counts, items, alpha));
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

export interface SamplerOptions {
  kind: NegativeKind;
  /** Catalogue size: ids are drawn from 1..items. */
  items: number;
  k: number;
  /** The run's seed: step s draws with deriveSeed(seed, s). */
  seed: number;
  /** Popularity: training counts indexed by item id (index 0 ignored). */
  counts?: ArrayLike<number>;
  /** Popularity exponent: weight = count^alpha; 0 is uniform over all items. Default 1. */
  alpha?: number;
}

/** The negatives of a run, step by step. */
export class NegativeSampler {
  readonly kind: NegativeKind;
  readonly items: number;
  readonly k: number;
  readonly alias?: AliasTable;
  /** One set of negatives for the whole batch. */
  readonly shared: boolean;
  private readonly seed: number;

  constructor(opts: SamplerOptions) {
    if (!(opts.items >= 1 && opts.k >= 1)) {
      throw new RangeError(`items and k must be ≥ 1, got ${opts.items}, ${opts.k}`);
    }
    this.kind = opts.kind;
    this.items = opts.items;
    this.k = opts.k;
    this.shared = opts.kind === "shared";
    this.seed = opts.seed;
    if (opts.kind === "popularity") {
      if (!opts.counts) throw new Error("popularity sampler needs item counts");
      this.alias = popularityAlias(opts.counts, opts.items, opts.alpha ?? 1);
    }
  }

  /** What the fused kernels need to draw step `step`'s negatives themselves. */
  spec(step: number): NegativeSpec {
    return {
      kind: this.kind,
      k: this.k,
      items: this.items,
      seed: deriveSeed(this.seed, step),
      alias: this.alias,
    };
  }

  /** Step `step`'s negatives of `positions` positions: [positions·k], or [k] when shared. */
  sample(positions: number, step: number): Int32Array {
    return drawNegatives(this.spec(step), positions);
  }

  /** Step `step`'s negatives for the materialised losses, with this sampler's logQ correction. */
  negatives(positions: number, step: number): Negatives {
    return {
      ids: this.sample(positions, step),
      k: this.k,
      shared: this.shared,
      logQ: logQOf(this.spec(step)),
    };
  }

  /** The logical shape of `sample(positions)`: [positions, k] or [k]. */
  shape(positions: number): number[] {
    return this.shared ? [this.k] : [positions, this.k];
  }
}

export function makeSampler(opts: SamplerOptions): NegativeSampler {
  return new NegativeSampler(opts);
}
