/**
 * Full-ranking metrics over 0-based target ranks (docs/methods.md §2), averaged over users:
 *   hr@k       = [rank < k]
 *   ndcg@k     = [rank < k] / log2(rank + 2)   (one relevant item, so the ideal DCG is 1)
 *   mrr@k      = [rank < k] / (rank + 1)
 *   coverage@k = distinct real items (ids 1..C) in all top-k lists / C   (needs the top-k lists)
 *   surprisal@k = mean over users of the mean self-information −log2(users_i / users) of the
 *                 recommended items, divided by log2(users)   (needs the lists and popularity)
 * Sums are kept in float64, so adding users chunk by chunk gives the same result as one call.
 */

/** Item popularity for surprisal: how many training users interacted with each item. */
export interface Popularity {
  /** [C + 1] indexed by item id; items never seen count as seen by one user. */
  itemUsers: ArrayLike<number>;
  /** Number of training users (≥ 2, so that the normalisation log2(users) is positive). */
  users: number;
}

export interface RankingMetricsOptions {
  /** When given (and top-k lists are added), surprisal@k is reported too. */
  popularity?: Popularity;
}

export const DEFAULT_KS = [1, 5, 10, 20, 100];

export class RankingMetrics {
  readonly ks: number[];
  private users = 0;
  private hr: Float64Array;
  private ndcg: Float64Array;
  private mrr: Float64Array;
  private surprisal: Float64Array;
  /** Per k, which item ids 1..C appeared in some top-k list. */
  private recommended: Uint8Array[];
  /** Whether add() was given top-k lists (null before the first add). */
  private withLists: boolean | null = null;
  private selfInfo: Float64Array | null = null;

  constructor(
    ks: number[] = DEFAULT_KS,
    /** C, the number of real items (ids 1..C; id 0 is padding). */
    readonly items: number,
    opts: RankingMetricsOptions = {},
  ) {
    if (!ks.length || ks.some((k) => !Number.isInteger(k) || k < 1)) {
      throw new RangeError(`RankingMetrics: ks must be positive integers (got [${ks}])`);
    }
    if (!Number.isInteger(items) || items < 1) {
      throw new RangeError(`RankingMetrics: items must be a positive integer (got ${items})`);
    }
    this.ks = [...ks];
    this.hr = new Float64Array(ks.length);
    this.ndcg = new Float64Array(ks.length);
    this.mrr = new Float64Array(ks.length);
    this.surprisal = new Float64Array(ks.length);
    this.recommended = ks.map(() => new Uint8Array(items + 1));
    if (opts.popularity) this.selfInfo = selfInformation(opts.popularity, items);
  }

  /** Users added so far. */
  get count(): number {
    return this.users;
  }

  /**
   * Adds one chunk of users: their 0-based target ranks and, for coverage and surprisal, their
   * top-k lists as a row-major [U, width] array with width ≥ max(ks) (ids -1 and 0 are holes).
   */
  add(ranks: ArrayLike<number>, topK?: Int32Array): void {
    const n = ranks.length;
    const lists = topK !== undefined;
    // Everything is checked before anything is counted, so a refused chunk leaves no trace.
    if (this.withLists !== null && this.withLists !== lists) {
      throw new Error("RankingMetrics.add: give top-k lists with every chunk or with none");
    }
    for (let u = 0; u < n; u++) {
      const r = ranks[u];
      if (!Number.isInteger(r) || r < 0) {
        throw new RangeError(`RankingMetrics.add: rank ${r} of user ${u} is not a rank`);
      }
    }
    const width = topK ? this.checkLists(topK, n) : 0;
    this.withLists = lists;
    for (let u = 0; u < n; u++) {
      const r = ranks[u];
      for (let j = 0; j < this.ks.length; j++) {
        if (r < this.ks[j]) {
          this.hr[j] += 1;
          this.ndcg[j] += 1 / Math.log2(r + 2);
          this.mrr[j] += 1 / (r + 1);
        }
      }
    }
    if (topK) this.addLists(topK, n, width);
    this.users += n;
  }

  /** Metric name → mean over users; NaN for every metric before any user was added. */
  result(): Record<string, number> {
    const out: Record<string, number> = {};
    const n = this.users;
    const each = (name: string, value: (j: number) => number) => {
      this.ks.forEach((k, j) => out[`${name}@${k}`] = value(j));
    };
    each("hr", (j) => this.hr[j] / n);
    each("ndcg", (j) => this.ndcg[j] / n);
    each("mrr", (j) => this.mrr[j] / n);
    if (this.withLists) {
      each("coverage", (j) => n ? count(this.recommended[j]) / this.items : NaN);
      if (this.selfInfo) each("surprisal", (j) => this.surprisal[j] / n);
    }
    return out;
  }

  /** Returns the row width of the [n, width] lists after checking their shape and ids. */
  private checkLists(topK: Int32Array, n: number): number {
    const width = n ? topK.length / n : 0;
    const maxK = Math.max(...this.ks);
    if (n ? !Number.isInteger(width) || width < maxK : topK.length !== 0) {
      throw new RangeError(
        `RankingMetrics.add: ${topK.length} top-k ids for ${n} users is not [${n}, ≥ ${maxK}]`,
      );
    }
    for (let u = 0; u < n; u++) {
      for (let i = u * width; i < u * width + maxK; i++) {
        if (topK[i] > this.items || topK[i] < -1) {
          throw new RangeError(
            `RankingMetrics.add: id ${
              topK[i]
            } of user ${u} is neither a hole (-1, 0) nor an item 1..${this.items}`,
          );
        }
      }
    }
    return width;
  }

  private addLists(topK: Int32Array, n: number, width: number): void {
    for (let u = 0; u < n; u++) {
      const row = topK.subarray(u * width, u * width + width);
      for (let j = 0; j < this.ks.length; j++) {
        const seen = this.recommended[j];
        let info = 0;
        let m = 0;
        for (let i = 0; i < this.ks[j]; i++) {
          const id = row[i];
          if (id < 1) continue;
          seen[id] = 1;
          if (this.selfInfo) {
            info += this.selfInfo[id];
            m++;
          }
        }
        if (m) this.surprisal[j] += info / m;
      }
    }
  }
}

function count(flags: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < flags.length; i++) n += flags[i];
  return n;
}

/** Normalised self-information per item id: −log2(max(users_i, 1) / users) / log2(users). */
function selfInformation(p: Popularity, items: number): Float64Array {
  if (p.itemUsers.length !== items + 1) {
    throw new RangeError(
      `RankingMetrics: popularity has ${p.itemUsers.length} entries, want ${items + 1}`,
    );
  }
  if (!(p.users >= 2)) {
    throw new RangeError(`RankingMetrics: surprisal needs at least 2 users (got ${p.users})`);
  }
  const norm = Math.log2(p.users);
  const out = new Float64Array(items + 1);
  for (let i = 1; i <= items; i++) {
    out[i] = -Math.log2(Math.max(p.itemUsers[i], 1) / p.users) / norm;
  }
  return out;
}

const METRIC_ORDER = ["hr", "ndcg", "mrr", "coverage", "surprisal"];

/**
 * A plain-text table for the CLI: one row per (split, metric), one column per k, e.g.
 *
 *   split  metric        @1      @10
 *   valid  hr         0.1000  0.3150
 *   valid  ndcg       0.1000  0.1820
 *
 * Metrics missing from a split show as "-".
 */
export function formatMetricsTable(
  results: Record<string, Record<string, number>>,
  ks: number[] = DEFAULT_KS,
): string {
  const names: string[] = [];
  for (const split of Object.values(results)) {
    for (const key of Object.keys(split)) {
      const name = key.slice(0, key.lastIndexOf("@"));
      if (key.includes("@") && !names.includes(name)) names.push(name);
    }
  }
  const rank = (m: string) => {
    const i = METRIC_ORDER.indexOf(m);
    return i < 0 ? METRIC_ORDER.length : i;
  };
  names.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  const rows: string[][] = [["split", "metric", ...ks.map((k) => `@${k}`)]];
  for (const [split, values] of Object.entries(results)) {
    for (const name of names) {
      rows.push([split, name, ...ks.map((k) => formatValue(values[`${name}@${k}`]))]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) =>
    r.map((cell, c) => c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])).join("  ")
      .trimEnd()
  ).join("\n");
}

function formatValue(v: number | undefined): string {
  if (v === undefined) return "-";
  return Number.isNaN(v) ? "nan" : v.toFixed(4);
}
