/**
 * Negative samplers for sampled-softmax losses: dense item ids in 1..items, drawn with replacement
 * as a pure function of (seed, position, slot) from the counter-based generator. The fused CE-
 * kernels draw the same ids on the GPU (shaders/negatives.wgsl) where they score them, so the
 * materialised losses and the fused ones see identical negatives. A negative may equal the
 * position's target: the loss masks such collisions (methods.md §1).
 */
import { mulHi32, randomBits, randomInt } from "../tensor/random.ts";
import { deriveSeed } from "./dataset.ts";

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

export type NegativeKind = "uniform" | "shared" | "popularity";

export interface NegativeSpec {
  kind: NegativeKind;
  /** Negatives per position (per batch when shared). */
  k: number;
  /** Ids are drawn from 1..items. */
  items: number;
  /** A u32, one per training step (the caller derives it). */
  seed: number;
  /**
   * Popularity: the alias table over indices 0..items-1 of ids 1..items. It is uploaded once per
   * engine and then reused, so it must not change after its first use.
   */
  alias?: AliasTable;
}

/** Counter stream of the negatives: keeps their draws apart from other users of a seed. */
export const NEGATIVE_STREAM = 0x4e454731;

export const NEGATIVE_KIND_CODES: Record<NegativeKind, number> = {
  uniform: 0,
  shared: 1,
  popularity: 2,
};
const TWO_POW_MINUS_24 = 5.9604644775390625e-8;

/**
 * Checks a spec for draws at `positions` positions, naming `op`: k ≥ 1, a u32 seed, every counter
 * index below 2^32 and, for popularity, an alias table over exactly `items` columns.
 */
export function assertNegativeSpec(op: string, spec: NegativeSpec, positions: number): void {
  const { kind, k, items, seed } = spec;
  if (!(kind in NEGATIVE_KIND_CODES)) throw new RangeError(`${op}: unknown negative kind ${kind}`);
  if (!(Number.isInteger(k) && k >= 1)) throw new RangeError(`${op}: K must be ≥ 1, got ${k}`);
  if (!(Number.isInteger(items) && items >= 1 && items < 2 ** 31 - 1)) {
    throw new RangeError(`${op}: items must be in [1, 2^31 - 1), got ${items}`);
  }
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new RangeError(`${op}: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  const draws = kind === "shared" ? k : positions * k;
  if (draws > 2 ** 32) {
    throw new RangeError(
      `${op}: ${positions} positions × K=${k} negatives exceed the generator's 2^32 counters`,
    );
  }
  if (kind === "popularity") {
    const n = spec.alias?.prob.length;
    if (n !== items || spec.alias?.alias.length !== items) {
      throw new RangeError(
        `${op}: popularity negatives need an alias table over ${items} items, got ${n ?? "none"}`,
      );
    }
  }
}

/** The id (1..items) in `slot` of `position`: exactly what negative_id draws on the GPU. */
export function negativeId(spec: NegativeSpec, position: number, slot: number): number {
  const index = spec.kind === "shared" ? slot : position * spec.k + slot;
  if (!(index >= 0 && index < 2 ** 32)) {
    throw new RangeError(
      `negativeId: position ${position} slot ${slot} (K=${spec.k}) is counter ${index}, ` +
        "outside [0, 2^32)",
    );
  }
  if (spec.kind !== "popularity") {
    return randomInt(spec.seed, NEGATIVE_STREAM, index, 1, spec.items + 1);
  }
  const table = spec.alias;
  if (!table) throw new RangeError("negativeId: popularity negatives need an alias table");
  const [x, y] = randomBits(spec.seed, NEGATIVE_STREAM, index);
  const column = mulHi32(x, spec.items);
  const u = (y >>> 8) * TWO_POW_MINUS_24;
  return (u < table.prob[column] ? column : table.alias[column]) + 1;
}

/** Every negative of `positions` positions: [positions·k] row-major, or [k] when shared. */
export function drawNegatives(spec: NegativeSpec, positions: number): Int32Array {
  assertNegativeSpec("drawNegatives", spec, positions);
  if (spec.kind === "shared") {
    return Int32Array.from({ length: spec.k }, (_, slot) => negativeId(spec, 0, slot));
  }
  const out = new Int32Array(positions * spec.k);
  for (let n = 0; n < positions; n++) {
    for (let slot = 0; slot < spec.k; slot++) out[n * spec.k + slot] = negativeId(spec, n, slot);
  }
  return out;
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

  /** The logical shape of `sample(positions)`: [positions, k] or [k]. */
  shape(positions: number): number[] {
    return this.kind === "shared" ? [this.k] : [positions, this.k];
  }
}

export function makeSampler(opts: SamplerOptions): NegativeSampler {
  return new NegativeSampler(opts);
}
