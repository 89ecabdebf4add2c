/** Benchmark helpers: wall-clock timing around GPU syncs, tables, JSON result files. */
import type { Gpu } from "../src/gpu/gpu.ts";
import { adapterSlug } from "../src/gpu/device.ts";

export interface TimingOptions {
  /** Untimed runs first (pipeline compiles, buffer pool warm-up). */
  warmup?: number;
  /** Timed repetitions; the median is reported. */
  repeats?: number;
  /**
   * Calls of `work` per repetition, recorded together and synced once; by default as many as
   * fill about `targetMs`, measured on the last warm-up (at most 100).
   */
  calls?: number;
  targetMs?: number;
}

export interface Timing {
  /** Median wall-clock milliseconds of one call. */
  ms: number;
  /** Fastest repetition's milliseconds per call. */
  minMs: number;
  repeats: number;
  calls: number;
}

/**
 * Times `work` by wall clock: each repetition records `calls` calls, then waits for the GPU.
 * Reports per-call milliseconds (median over repetitions).
 */
export async function timeGpu(
  gpu: Gpu,
  work: () => void,
  opts: TimingOptions = {},
): Promise<Timing> {
  const warmup = Math.max(opts.warmup ?? 2, 1);
  const repeats = opts.repeats ?? 5;
  let lastWarmupMs = 0;
  for (let i = 0; i < warmup; i++) {
    const start = performance.now();
    work();
    await gpu.sync();
    lastWarmupMs = performance.now() - start;
  }
  const calls = opts.calls ??
    Math.min(100, Math.max(1, Math.round((opts.targetMs ?? 200) / Math.max(lastWarmupMs, 1e-3))));
  const perCall: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    for (let c = 0; c < calls; c++) work();
    await gpu.sync();
    perCall.push((performance.now() - start) / calls);
  }
  return { ms: median(perCall), minMs: Math.min(...perCall), repeats, calls };
}

/** Options of timeInterleaved. */
export interface InterleavedOptions {
  /** Rounds: each times one batch of every work. */
  rounds: number;
  /** About how long one batch of one work runs (its calls measured beforehand). */
  targetMs: number;
}

/** One work's figures from timeInterleaved. */
export interface InterleavedTiming {
  /** Median over the rounds of the milliseconds per call. */
  ms: number;
  /** Milliseconds per call in each round, in round order. */
  perRound: number[];
  calls: number;
}

/**
 * Measuring a work's rate before its batches are sized (after one warm-up call): batches from
 * RATE_CALLS calls, four times more until one runs at least RATE_MIN_MS beyond its sync.
 */
const RATE_CALLS = 8;
const RATE_MIN_MS = 20;
const RATE_MAX_CALLS = 2048;

/** Empty syncs timed for the fixed cost of a sync. */
const SYNC_SAMPLES = 7;

/**
 * The median time of a sync with nothing to wait for: what every timed batch pays on top of its
 * calls (about 11 ms on llvmpipe, where the work itself ends before the wait).
 */
async function emptySyncMs(gpu: Gpu): Promise<number> {
  await gpu.sync();
  const times: number[] = [];
  for (let i = 0; i < SYNC_SAMPLES; i++) {
    const start = performance.now();
    await gpu.sync();
    times.push(performance.now() - start);
  }
  return median(times);
}

/**
 * Times several works against each other in one process: after a warm-up call of each and a
 * batch that measures its rate, every round times one batch of every work (as many calls as fill
 * about `targetMs`, synced once), the order rotating from round to round. Drift of the machine
 * over the run (other jobs on shared cores, clock changes) then falls on all works alike, and a
 * figure is the median of its rounds, which one disturbed round does not move. A batch's time
 * less the fixed cost of a sync (an empty one's median) is divided among its calls.
 */
export async function timeInterleaved(
  gpu: Gpu,
  works: (() => void)[],
  opts: InterleavedOptions,
): Promise<InterleavedTiming[]> {
  const syncMs = await emptySyncMs(gpu);
  const batchMs = async (work: () => void, calls: number) => {
    const start = performance.now();
    for (let c = 0; c < calls; c++) work();
    await gpu.sync();
    return performance.now() - start - syncMs;
  };
  const calls: number[] = [];
  for (const work of works) {
    work();
    await gpu.sync();
    let n = RATE_CALLS;
    let ms = await batchMs(work, n);
    while (ms < RATE_MIN_MS && n < RATE_MAX_CALLS) {
      n *= 4;
      ms = await batchMs(work, n);
    }
    // Below RATE_MIN_MS only when the calls ran out: the work is too short to resolve.
    calls.push(Math.max(1, Math.round(opts.targetMs / (Math.max(ms, RATE_MIN_MS) / n))));
  }
  const perRound: number[][] = works.map(() => []);
  for (let r = 0; r < opts.rounds; r++) {
    for (let k = 0; k < works.length; k++) {
      const i = (r + k) % works.length;
      perRound[i].push(await batchMs(works[i], calls[i]) / calls[i]);
    }
  }
  return works.map((_, i) => ({ ms: median(perRound[i]), perRound: perRound[i], calls: calls[i] }));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export type Cell = string | number;

/** A plain-text table: numbers right-aligned, text left-aligned. */
export function formatTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((c) => (typeof c === "number" ? formatNumber(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i].length)));
  const line = (cells: string[], numeric: boolean[]) =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ")
      .trimEnd();
  const numericCols = headers.map((_, i) => rows.length > 0 && typeof rows[0][i] === "number");
  return [
    line(headers, numericCols),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...text.map((r) => line(r, numericCols)),
  ].join("\n");
}

/** Three significant digits, without exponent notation for everyday magnitudes. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(x))));
  return x.toFixed(Math.min(digits, 6));
}

/** Writes `bench/results/<name>-<adapter slug>.json` (pretty-printed); returns the path. */
export async function writeResult(
  name: string,
  adapterName: string,
  data: Record<string, unknown>,
  dir = new URL("./results/", import.meta.url),
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const url = new URL(`${name}-${adapterSlug(adapterName)}.json`, dir);
  const body = {
    benchmark: name,
    adapter: adapterName,
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    cpus: navigator.hardwareConcurrency,
    ...data,
  };
  await Deno.writeTextFile(url, JSON.stringify(body, null, 2) + "\n");
  return url.pathname;
}

/**
 * Another trainer (a PyTorch peer, warmed up already) timed in turns with ours: it trains a block
 * of steps after each of our timed blocks, so that a drift in the machine's speed reaches both
 * sides alike.
 */
export interface BlockPartner {
  /** Trains `steps` of its steps (it times them itself). */
  train(steps: number): Promise<void>;
}

/** `steps` cut into `blocks` blocks as even as they go (no empty block). */
export function blockSizes(steps: number, blocks: number): number[] {
  const n = Math.min(Math.max(1, blocks), steps);
  return Array.from(
    { length: n },
    (_, i) => Math.floor((steps * (i + 1)) / n) - Math.floor((steps * i) / n),
  );
}

/**
 * Round by round, the peer's seconds over ours for the same block of steps (our speed ×peer), and
 * their median: "0.912 0.874 … (median 0.893)"; null unless both timed the same blocks.
 */
export function formatRoundRatios(ours: number[], peer: number[]): string | null {
  if (ours.length === 0 || ours.length !== peer.length) return null;
  const ratios = ours.map((s, i) => peer[i] / s);
  return `${ratios.map((r) => r.toFixed(3)).join(" ")} (median ${median(ratios).toFixed(3)})`;
}
