/**
 * Synthetic interaction data with real sequential structure, for tests and scaling runs without a
 * real log. Model of a user:
 * - items are grouped into clusters of `clusterSize`; inside a cluster, item popularity is Zipf
 *   (weight 1/rank); clusters themselves are Zipf-like popular (1/(c+1)^0.7), so global popularity
 *   is skewed and MostPop is a fair baseline;
 * - the user walks through clusters by a sticky Markov chain: stay with probability 0.85, else
 *   move to a neighbouring cluster (±1, ±2; 60%) or jump to one drawn by cluster popularity;
 * - while staying, the next item is, with probability 0.7, one of the current item's three fixed
 *   successors (chosen with 0.6/0.25/0.15), otherwise a popularity draw in the cluster; after a
 *   move, a popularity draw in the new cluster.
 * So "what came just before" predicts the next item far better than popularity does.
 *
 * Deterministic by seed: every user has its own generator (seed, user), successors are a hash of
 * (seed, item, j), and dense ids are a seeded permutation of cluster positions (so id order says
 * nothing about popularity). Memory: one Int32Array permutation of the catalogue plus the output;
 * users are generated one at a time (see `syntheticUsers`).
 *
 * Preset sizes (items, default users × mean events): small 2,000 (3,000 × 30, trains in minutes on
 * 2 CPU cores at L=50), medium 20,000 (20,000 × 30), large 1,000,000 (100,000 × 20: 2M events, an
 * epoch means something while staying well under 1 GB). A number N gives N items and
 * clamp(N, 1,000, 100,000) users × 25 events.
 */
import { type Dataset, deriveSeed, excerpt, fileError, MIN_CATALOG } from "./dataset.ts";
import type { AliasTable } from "../loss/negatives.ts";
import { buildAliasTable, drawAlias } from "./samplers.ts";
import { seededRandom } from "../tensor/random.ts";

export type Catalog = "small" | "medium" | "large" | number;

export interface SyntheticOptions {
  catalog: Catalog;
  seed: number;
  /** Default: per preset (module comment). */
  users?: number;
  /** Mean events per user; lengths are uniform in [0.5, 1.5]·mean, at least 5. */
  meanLength?: number;
  clusterSize?: number;
}

const PRESETS = {
  small: { items: 2_000, users: 3_000, meanLength: 30 },
  medium: { items: 20_000, users: 20_000, meanLength: 30 },
  large: { items: 1_000_000, users: 100_000, meanLength: 20 },
};

const STAY = 0.85;
const NEIGHBOUR = 0.6;
const FOLLOW = 0.7;
const SUCCESSOR_WEIGHTS = [0.6, 0.25, 0.15];
const CLUSTER_EXPONENT = 0.7;
const MIN_LENGTH = 5;
/** Synthetic clock: users start within one year of 2020-09-13 and act about once a day. */
const START = 1.6e9;
const SPAN = 365 * 86400;
const MEAN_GAP = 86400;

/** Most items: dense ids must fit a signed 32-bit integer. */
const MAX_ITEMS = 2 ** 31 - 1;
const ALLOWED = `small, medium, large or an item count from ${MIN_CATALOG} to ${MAX_ITEMS}`;

/** `--catalog small|medium|large|<N>` → Catalog; a RangeError naming the flag for anything else. */
export function parseCatalog(text: string): Catalog {
  if (text === "small" || text === "medium" || text === "large") return text;
  if (/^\d+$/.test(text) && validItemCount(Number(text))) return Number(text);
  throw new RangeError(`--catalog must be ${ALLOWED}, got ${excerpt(text)}`);
}

function validItemCount(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CATALOG && n <= MAX_ITEMS;
}

/** Resolved sizes of a generation. */
export interface SyntheticShape {
  items: number;
  users: number;
  meanLength: number;
  clusterSize: number;
}

/** The sizes `opts` resolve to; a RangeError for a numeric catalogue outside the allowed counts. */
export function syntheticShape(opts: SyntheticOptions): SyntheticShape {
  if (typeof opts.catalog === "number" && !validItemCount(opts.catalog)) {
    throw new RangeError(`catalog must be ${ALLOWED}, got ${opts.catalog}`);
  }
  const preset = typeof opts.catalog === "number"
    ? {
      items: opts.catalog,
      users: Math.min(100_000, Math.max(1_000, opts.catalog)),
      meanLength: 25,
    }
    : PRESETS[opts.catalog];
  return {
    items: preset.items,
    users: opts.users ?? preset.users,
    meanLength: opts.meanLength ?? preset.meanLength,
    clusterSize: Math.min(opts.clusterSize ?? 50, preset.items),
  };
}

/** The whole synthetic dataset in memory (users × mean length Int32 + Float64 per event). */
export function syntheticDataset(opts: SyntheticOptions): Dataset {
  const shape = syntheticShape(opts);
  const sequences: Int32Array[] = [];
  const timestamps: Float64Array[] = [];
  for (const user of syntheticUsers(opts)) {
    sequences.push(user.items);
    timestamps.push(user.times);
  }
  const name = `synthetic-${opts.catalog}-seed${opts.seed}`;
  return { name, items: shape.items, users: shape.users, sequences, timestamps };
}

/** Users one at a time, so a caller can stream them to disk with memory bounded by one user. */
export function* syntheticUsers(
  opts: SyntheticOptions,
): Generator<{ items: Int32Array; times: Float64Array }> {
  const world = new World(syntheticShape(opts), opts.seed);
  for (let u = 0; u < world.shape.users; u++) yield world.user(u);
}

/** The fixed structure shared by all users: clusters, popularity tables, id permutation. */
class World {
  readonly clusters: number;
  private readonly clusterTable: AliasTable;
  private readonly rankTables = new Map<number, AliasTable>();
  private readonly ids: Int32Array;

  constructor(readonly shape: SyntheticShape, readonly seed: number) {
    this.clusters = Math.ceil(shape.items / shape.clusterSize);
    const weights = Float64Array.from(
      { length: this.clusters },
      (_, c) => 1 / Math.pow(c + 1, CLUSTER_EXPONENT),
    );
    this.clusterTable = buildAliasTable(weights);
    this.ids = permutation(shape.items, deriveSeed(seed, 0x1d5));
  }

  /** One user's items (dense ids) and times. */
  user(u: number): { items: Int32Array; times: Float64Array } {
    const random = seededRandom(deriveSeed(this.seed, 0x05e2, u));
    const mean = this.shape.meanLength;
    const n = Math.max(MIN_LENGTH, Math.round(mean * (0.5 + random())));
    const items = new Int32Array(n);
    const times = new Float64Array(n);
    let cluster = drawAlias(this.clusterTable, random);
    let rank = this.popularRank(cluster, random);
    let time = START + random() * SPAN;
    for (let i = 0; i < n; i++) {
      if (i > 0) [cluster, rank] = this.step(cluster, rank, random);
      items[i] = this.ids[cluster * this.shape.clusterSize + rank] + 1;
      times[i] = time;
      time += -Math.log(1 - random()) * MEAN_GAP;
    }
    return { items, times };
  }

  /** Next (cluster, rank in cluster) of the walk. */
  private step(cluster: number, rank: number, random: () => number): [number, number] {
    if (random() < STAY) {
      if (random() < FOLLOW) return [cluster, this.successor(cluster, rank, pick(random))];
      return [cluster, this.popularRank(cluster, random)];
    }
    const next = random() < NEIGHBOUR
      ? this.neighbour(cluster, random)
      : drawAlias(this.clusterTable, random);
    return [next, this.popularRank(next, random)];
  }

  private neighbour(cluster: number, random: () => number): number {
    const offsets = [-2, -1, 1, 2];
    const c = cluster + offsets[Math.floor(random() * offsets.length)];
    return ((c % this.clusters) + this.clusters) % this.clusters;
  }

  /**
   * The j-th fixed successor of an item: a popularity-weighted rank in the same cluster chosen by
   * a hash of (seed, item, j), never the item itself. Costs no memory per item.
   */
  private successor(cluster: number, rank: number, j: number): number {
    const size = this.sizeOf(cluster);
    if (size === 1) return rank;
    const h = seededRandom(
      deriveSeed(this.seed, 0x5cc, cluster * this.shape.clusterSize + rank, j),
    );
    const r = drawAlias(this.rankTable(size), h);
    return r === rank ? (rank + 1 + j) % size : r;
  }

  private popularRank(cluster: number, random: () => number): number {
    return drawAlias(this.rankTable(this.sizeOf(cluster)), random);
  }

  /** The last cluster is smaller when the catalogue is not a multiple of the cluster size. */
  private sizeOf(cluster: number): number {
    const s = this.shape.clusterSize;
    return Math.min(s, this.shape.items - cluster * s);
  }

  /** Zipf (1/rank) over `size` ranks; at most two sizes exist, so tables are cached. */
  private rankTable(size: number): AliasTable {
    let t = this.rankTables.get(size);
    if (!t) {
      t = buildAliasTable(Float64Array.from({ length: size }, (_, r) => 1 / (r + 1)));
      this.rankTables.set(size, t);
    }
    return t;
  }
}

/** Which successor to follow (0, 1 or 2) by SUCCESSOR_WEIGHTS. */
function pick(random: () => number): number {
  let u = random();
  for (let j = 0; j < SUCCESSOR_WEIGHTS.length - 1; j++) {
    if (u < SUCCESSOR_WEIGHTS[j]) return j;
    u -= SUCCESSOR_WEIGHTS[j];
  }
  return SUCCESSOR_WEIGHTS.length - 1;
}

/** A seeded random permutation of 0..n-1 (Fisher–Yates). */
function permutation(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  const random = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/**
 * Streams users to a sequence file (`user item item …`, users numbered from 1). A file that cannot
 * be written is a DataError naming `path`.
 */
export async function writeSyntheticSequences(path: string, opts: SyntheticOptions): Promise<void> {
  // Bad options are refused before the file is truncated (the generator itself starts lazily).
  syntheticShape(opts);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true, create: true, truncate: true });
  } catch (e) {
    throw fileError(path, "write", e);
  }
  const enc = new TextEncoder();
  let pending: string[] = [];
  try {
    let u = 0;
    for (const { items } of syntheticUsers(opts)) {
      pending.push(`${++u} ${items.join(" ")}\n`);
      if (pending.length === 4096) pending = await flushLines(path, file, enc, pending);
    }
    await flushLines(path, file, enc, pending);
  } finally {
    file.close();
  }
}

async function flushLines(path: string, file: Deno.FsFile, enc: TextEncoder, lines: string[]) {
  const bytes = enc.encode(lines.join(""));
  try {
    for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
  } catch (e) {
    throw fileError(path, "write", e);
  }
  return [];
}

/** CLI: deno run -A src/data/synthetic.ts --catalog small|medium|large|N [--users N] [--seed S] --out F */
async function main(args: string[]): Promise<void> {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({
    args,
    options: {
      catalog: { type: "string", default: "small" },
      users: { type: "string" },
      seed: { type: "string", default: "0" },
      out: { type: "string" },
    },
  });
  if (!values.out) throw new Error("--out FILE is required");
  if (!/^\d+$/.test(values.seed)) {
    throw new RangeError(`--seed must be a non-negative integer, got ${excerpt(values.seed)}`);
  }
  if (values.users !== undefined && !/^[1-9]\d*$/.test(values.users)) {
    throw new RangeError(`--users must be a positive integer, got ${excerpt(values.users)}`);
  }
  const opts: SyntheticOptions = {
    catalog: parseCatalog(values.catalog),
    seed: Number(values.seed),
    users: values.users === undefined ? undefined : Number(values.users),
  };
  await writeSyntheticSequences(values.out, opts);
  const shape = syntheticShape(opts);
  console.log(`${values.out}: ${shape.users} users, ${shape.items} items`);
}

if (import.meta.main) {
  // Bad flags and unwritable paths are the user's to fix: one line, not a stack trace.
  await main(Deno.args).catch((e: Error) => {
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  });
}
