/**
 * The ops benchmark: matmul GFLOP/s (the kernel matmul picks, against the scalar kernel measured
 * in the same run), the fixed cost of a dispatch, and the bandwidth of an elementwise op.
 */
import type { Engine } from "../src/tensor/engine.ts";
import { add } from "../src/tensor/ops/elementwise.ts";
import { matmul, type MatmulKernel } from "../src/tensor/ops/matmul.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { type Cell, formatTable, timeGpu } from "./util.ts";

/** One product as training runs it: operands of these shapes, these transposes. */
export interface MatmulCase {
  /** M×K×N of the layer or product it belongs to. */
  size: string;
  product: string;
  a: [number, number];
  b: [number, number];
  transA: boolean;
  transB: boolean;
  flops: number;
}

export interface MatmulResult extends MatmulCase {
  ms: number;
  gflops: number;
  baselineMs: number;
  baselineGflops: number;
  speedup: number;
}

export interface OpsReport {
  matmul: MatmulResult[];
  dispatch: {
    /** Tiny adds recorded into one submit, then one sync: microseconds per op. */
    batchedUs: number;
    batchedOps: number;
    /** One tiny add and a sync: milliseconds. */
    syncedMs: number;
  };
  elementwise: { op: string; elements: number; ms: number; gbPerS: number };
  seconds: number;
}

/** Every transpose variant at 1024³, then the recommender's linear layers and their backward. */
export function matmulCases(): MatmulCase[] {
  const cases: MatmulCase[] = [];
  const n = 1024;
  for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]]) {
    cases.push({
      size: `${n}×${n}×${n}`,
      product: `${transA ? "Aᵀ" : "A"}·${transB ? "Bᵀ" : "B"}`,
      a: [n, n],
      b: [n, n],
      transA,
      transB,
      flops: 2 * n ** 3,
    });
  }
  // A linear layer y = x·Wᵀ over x [M, K] with W [N, K], and its two backward products.
  for (const [m, k, nOut] of [[6400, 64, 64], [6400, 64, 256], [6400, 256, 64]]) {
    const size = `${m}×${k}×${nOut}`;
    const flops = 2 * m * k * nOut;
    cases.push(
      { size, product: "y = x·Wᵀ", a: [m, k], b: [nOut, k], transA: false, transB: true, flops },
      {
        size,
        product: "dx = dy·W",
        a: [m, nOut],
        b: [nOut, k],
        transA: false,
        transB: false,
        flops,
      },
      { size, product: "dW = dyᵀ·x", a: [m, nOut], b: [m, k], transA: true, transB: false, flops },
    );
  }
  return cases;
}

function randomTensor(e: Engine, shape: [number, number], seed: number): Tensor {
  const data = new Float32Array(shape[0] * shape[1]);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return e.tensor(data, shape);
}

async function timeMatmul(e: Engine, c: MatmulCase, kernel: MatmulKernel, repeats: number) {
  const a = randomTensor(e, c.a, 1);
  const b = randomTensor(e, c.b, 2);
  try {
    const t = await timeGpu(
      e.gpu,
      () => matmul(a, b, { transA: c.transA, transB: c.transB, kernel }).dispose(),
      { repeats, targetMs: 500 },
    );
    return t.ms;
  } finally {
    a.dispose();
    b.dispose();
  }
}

/** The fastest of the four 1024³ products, timed now: the best rate the engine's matmul reaches. */
export async function bestMatmulRate(e: Engine, repeats = 3): Promise<{
  product: string;
  gflops: number;
}> {
  let best = { product: "", gflops: 0 };
  for (const c of matmulCases().filter((c) => c.a[0] === 1024)) {
    const gflops = c.flops / (await timeMatmul(e, c, "auto", repeats)) / 1e6;
    if (gflops > best.gflops) best = { product: c.product, gflops };
  }
  return best;
}

export interface OpsOptions {
  repeats?: number;
  /** Called after each measurement, for progress output. */
  onProgress?: (line: string) => void;
}

export async function runOpsBenchmark(e: Engine, opts: OpsOptions = {}): Promise<OpsReport> {
  const started = performance.now();
  const repeats = opts.repeats ?? 5;
  const progress = opts.onProgress ?? (() => {});
  const results: MatmulResult[] = [];
  for (const c of matmulCases()) {
    const ms = await timeMatmul(e, c, "auto", repeats);
    const baselineMs = await timeMatmul(e, c, "scalar", Math.min(repeats, 3));
    const r = {
      ...c,
      ms,
      gflops: c.flops / ms / 1e6,
      baselineMs,
      baselineGflops: c.flops / baselineMs / 1e6,
      speedup: baselineMs / ms,
    };
    results.push(r);
    progress(`matmul ${c.size} ${c.product}: ${r.gflops.toFixed(2)} GFLOP/s`);
  }
  const dispatch = await timeDispatch(e, repeats);
  progress(
    `dispatch: ${dispatch.batchedUs.toFixed(1)} µs batched, ${
      dispatch.syncedMs.toFixed(1)
    } ms synced`,
  );
  const elementwise = await timeElementwise(e, repeats);
  progress(`add: ${elementwise.gbPerS.toFixed(2)} GB/s`);
  return {
    matmul: results,
    dispatch,
    elementwise,
    seconds: (performance.now() - started) / 1000,
  };
}

async function timeDispatch(e: Engine, repeats: number) {
  const x = e.tensor(new Float32Array([1]), [1]);
  const y = e.tensor(new Float32Array([2]), [1]);
  const batchedOps = 1000;
  try {
    const batched = await timeGpu(e.gpu, () => add(x, y).dispose(), {
      repeats,
      calls: batchedOps,
    });
    const synced = await timeGpu(e.gpu, () => add(x, y).dispose(), {
      repeats: repeats * 4,
      calls: 1,
    });
    return { batchedUs: batched.ms * 1000, batchedOps, syncedMs: synced.ms };
  } finally {
    x.dispose();
    y.dispose();
  }
}

async function timeElementwise(e: Engine, repeats: number) {
  const elements = 1 << 24;
  const x = e.zeros([elements]);
  const y = e.zeros([elements]);
  try {
    const t = await timeGpu(e.gpu, () => add(x, y).dispose(), { repeats, targetMs: 500 });
    // Two operands read, one result written.
    return { op: "add", elements, ms: t.ms, gbPerS: (3 * 4 * elements) / t.ms / 1e6 };
  } finally {
    x.dispose();
    y.dispose();
  }
}

export function formatOpsReport(r: OpsReport, adapterName: string): string {
  const rows: Cell[][] = r.matmul.map((m) => [
    m.size,
    m.product,
    m.ms,
    m.gflops,
    m.baselineGflops,
    `${m.speedup.toFixed(1)}×`,
  ]);
  return [
    `ops benchmark on ${adapterName}`,
    "",
    formatTable(
      ["matmul M×K×N", "product", "ms", "GFLOP/s", "scalar baseline GFLOP/s", "speed-up"],
      rows,
    ),
    "",
    formatTable(["fixed cost", "value", "unit"], [
      [`${r.dispatch.batchedOps} tiny adds in one submit`, r.dispatch.batchedUs, "µs per op"],
      ["one tiny add + sync", r.dispatch.syncedMs, "ms"],
    ]),
    "",
    formatTable(["elementwise", "elements", "ms", "GB/s"], [
      [r.elementwise.op, r.elementwise.elements, r.elementwise.ms, r.elementwise.gbPerS],
    ]),
    "",
    `(${r.seconds.toFixed(0)} s; wall clock around gpu.sync(), median of repetitions after ` +
    "warm-up; the baseline is matmul's scalar kernel: one float per load, 8×8 register tile)",
  ].join("\n");
}
