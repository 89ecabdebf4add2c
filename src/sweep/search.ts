/**
 * Search beside the grid: random sampling from ranges (`--lr 1e-4..1e-2:log`) and lists, and
 * asynchronous successive halving (ASHA) that stops a trial at a rung of epochs when its
 * validation NDCG@10 is below the top 1/eta of what the trials before it reached there.
 */
import { seededRandom } from "../tensor/random.ts";

/** A numeric training flag's range: uniform, or log-uniform with `:log`; whole numbers stay so. */
export interface Range {
  low: number;
  high: number;
  log: boolean;
  integer: boolean;
}

const RANGE = /^(.+?)\.\.(.+?)(:log)?$/;

/** Reads `A..B` or `A..B:log`; null when the text is no range. Throws for a malformed one. */
export function parseRange(text: string): Range | null {
  const m = RANGE.exec(text);
  if (!m) return null;
  const [low, high] = [Number(m[1]), Number(m[2])];
  if (!Number.isFinite(low) || !Number.isFinite(high)) {
    throw new Error(`"${text}" is not a range: expected LOW..HIGH or LOW..HIGH:log with numbers`);
  }
  if (!(high > low)) throw new Error(`range "${text}": HIGH must be above LOW`);
  const log = m[3] !== undefined;
  if (log && !(low > 0)) throw new Error(`range "${text}": a :log range needs LOW > 0`);
  const integer = /^-?\d+$/.test(m[1].trim()) && /^-?\d+$/.test(m[2].trim());
  return { low, high, log, integer };
}

/** One value drawn from a range; floats keep 3 significant digits so keys and argv stay readable. */
export function sampleRange(r: Range, u: number): number {
  if (r.integer) {
    // Whole numbers: every value in [low, high] equally likely (log: equally likely per octave).
    const [a, b] = r.log ? [Math.log(r.low), Math.log(r.high + 1)] : [r.low, r.high + 1];
    const x = a + u * (b - a);
    return Math.min(r.high, Math.floor(r.log ? Math.exp(x) : x));
  }
  const x = r.log
    ? Math.exp(Math.log(r.low) + u * (Math.log(r.high) - Math.log(r.low)))
    : r.low + u * (r.high - r.low);
  return Number(x.toPrecision(3));
}

/** A dimension of a random search: a range, or a list of values to choose from. */
export type Dimension<V> = { range: Range } | { choices: V[] };

/**
 * `count` distinct points drawn with `seed` (the same seed, the same points, so a rerun resumes the
 * same sweep). Throws when the dimensions hold fewer distinct points than asked for.
 */
export function samplePoints<V>(
  dims: Dimension<V>[],
  count: number,
  seed: number,
  show: (point: (V | number)[]) => string,
): (V | number)[][] {
  const next = seededRandom(seed);
  const points: (V | number)[][] = [];
  const seen = new Set<string>();
  // Small discrete spaces repeat points; past this many draws the space is taken to be exhausted.
  for (let draws = 0; points.length < count && draws < 100 * count; draws++) {
    const point = dims.map((d) =>
      "range" in d ? sampleRange(d.range, next()) : d.choices[Math.floor(next() * d.choices.length)]
    );
    const key = show(point);
    if (seen.has(key)) continue;
    seen.add(key);
    points.push(point);
  }
  if (points.length < count) {
    throw new Error(
      `--trials ${count}: the ranges and lists give only ${points.length} distinct trials`,
    );
  }
  return points;
}

/** Successive halving's rungs (epochs at which a trial is compared) and its reduction factor. */
export interface AshaPlan {
  rungs: number[];
  eta: number;
}

/** Rungs minEpochs·eta^k below the trial's last epoch (at the last one it ends anyway). */
export function ashaPlan(epochs: number, minEpochs: number, eta: number): AshaPlan {
  const rungs: number[] = [];
  for (let r = minEpochs; r < epochs; r *= eta) rungs.push(r);
  return { rungs, eta };
}

/**
 * The rung a validation at `epoch` reports to: the highest rung at or below it that the trial has
 * not reported to yet (a trial validating every few epochs reports to the rung it passed), or null.
 */
export function rungOf(plan: AshaPlan, epoch: number, reported: Set<number>): number | null {
  const passed = plan.rungs.filter((r) => r <= epoch);
  const top = passed.at(-1);
  return top === undefined || reported.has(top) ? null : top;
}

/**
 * The value a trial must reach at a rung to go on: the (1 − 1/eta) quantile of the others' values
 * there (linear interpolation), so the top 1/eta continue. Null when no other trial reached it.
 */
export function rungCutoff(others: number[], eta: number): number | null {
  if (!others.length) return null;
  const sorted = [...others].sort((a, b) => a - b);
  const pos = (1 - 1 / eta) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

/**
 * Where the trials of one sweep record what they reached at each rung: the sweep store when the
 * trials run here, Redis when they run on queue workers.
 */
export interface RungBoard {
  /**
   * Records the trial's value at the rung (replacing an earlier one of the same trial, which a
   * rerun reports again) and returns the cutoff from the other trials' values, read before.
   */
  report(rung: number, key: string, value: number): Promise<{ cutoff: number | null }>;
}
