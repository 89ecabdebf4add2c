/**
 * Picks the matmul variant for an adapter by timing every variant on the products training runs
 * (a linear layer's forward and its two backward products), once: the choice is cached per
 * adapter in a JSON file, and later engines on the same adapter read it instead of measuring.
 */
import { adapterSlug } from "../../gpu/device.ts";
import type { Engine } from "../engine.ts";
import { matmul, MATMUL_VARIANTS, type MatmulVariant, useMatmulVariant } from "./matmul.ts";

/** One product to time: op(A)[m, k] · op(B)[k, n]. */
export interface TuneShape {
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
}

/** A linear layer of SASRec's width over a batch's positions: y = x·Wᵀ, dx = dy·W, dW = dyᵀ·x. */
const TRAINING_SHAPES: readonly TuneShape[] = [
  { m: 4096, k: 64, n: 64, transA: false, transB: true },
  { m: 4096, k: 64, n: 64, transA: false, transB: false },
  { m: 64, k: 4096, n: 64, transA: true, transB: false },
];

export interface TuneOptions {
  /** Folder of the cache file (`runs/cache` for training). */
  cacheDir: string;
  /** Measure again even when the cache has a choice. */
  retune?: boolean;
  /**
   * False: take the cached choice or else the default, never measure (processes started side by
   * side, such as a sweep's trials, would time each other).
   */
  measure?: boolean;
  shapes?: readonly TuneShape[];
  /** Timed repetitions per variant and shape (the fastest counts). */
  repeats?: number;
}

export interface TuneResult {
  variant: MatmulVariant;
  /** Where the choice came from. */
  source: "measured" | "cache" | "default";
  /** Milliseconds per variant over all shapes (measured runs only). */
  times: Record<string, number>;
  path: string;
}

interface CacheFile {
  adapter: string;
  variant: string;
  times: Record<string, number>;
  date: string;
}

/** Sets the engine's matmul variant from the cache, or measures and caches it. */
export async function tuneMatmul(e: Engine, opts: TuneOptions): Promise<TuneResult> {
  const adapter = e.gpu.adapterName;
  const path = `${opts.cacheDir}/matmul-${adapterSlug(adapter)}.json`;
  const cached = opts.retune ? null : readCache(path, adapter);
  if (cached) {
    return { variant: useMatmulVariant(e, cached.variant), source: "cache", times: {}, path };
  }
  if (opts.measure === false) {
    return {
      variant: useMatmulVariant(e, MATMUL_VARIANTS[0].name),
      source: "default",
      times: {},
      path,
    };
  }
  const times: Record<string, number> = {};
  for (const v of MATMUL_VARIANTS) {
    times[v.name] = await timeVariant(e, v, opts.shapes ?? TRAINING_SHAPES, opts.repeats ?? 2);
  }
  const best = MATMUL_VARIANTS.reduce((a, b) => (times[b.name] < times[a.name] ? b : a));
  const file: CacheFile = { adapter, variant: best.name, times, date: new Date().toISOString() };
  Deno.mkdirSync(opts.cacheDir, { recursive: true });
  // Written whole to a temporary name first: a concurrent reader never sees half a file.
  const temporary = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  Deno.writeTextFileSync(temporary, JSON.stringify(file, null, 2) + "\n");
  Deno.renameSync(temporary, path);
  return { variant: useMatmulVariant(e, best.name), source: "measured", times, path };
}

/** The cached choice for this adapter; a missing, unreadable or foreign file counts as none. */
function readCache(path: string, adapter: string): CacheFile | null {
  try {
    const file = JSON.parse(Deno.readTextFileSync(path)) as CacheFile;
    const known = MATMUL_VARIANTS.some((v) => v.name === file.variant);
    return file.adapter === adapter && known ? file : null;
  } catch {
    return null;
  }
}

/** Fastest milliseconds of one call per shape, summed over the shapes (after a warm-up call). */
async function timeVariant(
  e: Engine,
  v: MatmulVariant,
  shapes: readonly TuneShape[],
  repeats: number,
): Promise<number> {
  let total = 0;
  for (const s of shapes) {
    const a = e.zeros(s.transA ? [s.k, s.m] : [s.m, s.k]);
    const b = e.zeros(s.transB ? [s.n, s.k] : [s.k, s.n]);
    const run = () => matmul(a, b, { transA: s.transA, transB: s.transB, kernel: v.name });
    let best = Infinity;
    for (let r = 0; r <= repeats; r++) {
      const start = performance.now();
      const c = e.noGrad(run);
      await e.gpu.sync();
      c.dispose();
      // The first call compiles the pipeline: it is not timed.
      if (r > 0) best = Math.min(best, performance.now() - start);
    }
    a.dispose();
    b.dispose();
    total += best;
  }
  return total;
}
