/**
 * Test support: one engine per test file, seeded host data, and `checkOp`, which compares a GPU
 * op's forward with a float64 reference and its backward with central finite differences of
 * that reference.
 */
import { Engine } from "../../src/tensor/engine.ts";
import { seededRandom } from "../../src/tensor/random.ts";
import "../../src/tensor/ops/mod.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { coalesceSparseGrads, sparseRowsToDense } from "../../src/tensor/ops/embedding.ts";

let shared: Promise<Engine> | null = null;
let created: Engine | null = null;

/**
 * The engine of this test module (created on first use). Deno runs each test module in its own
 * runtime and fires "unload" after its tests; the module's pooled and retired buffers are freed
 * there, but the device is left to the process's exit: destroying llvmpipe devices while the
 * process runs others corrupted glibc's heap (an abort at exit, "double free or corruption", in 4
 * of 13 runs of three GPU test files together; 0 of 14 without it).
 */
export function engine(): Promise<Engine> {
  if (!shared) {
    shared = Engine.create().then((e) => (created = e));
    addEventListener("unload", () => {
      created?.gpu.allocator.trimPool();
      created?.gpu.allocator.destroyRetired();
    });
  }
  return shared;
}

/** Deno.test for GPU work: WebGPU handles outlive a test by design, so sanitizers are off. */
export function gpuTest(name: string, fn: (e: Engine) => Promise<void> | void): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const e = await engine();
      await fn(e);
      await e.gpu.sync();
    },
  });
}

/** The project's seeded generator, for test data. */
export const rng = seededRandom;

/** Uniform values in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

export function randomInts(n: number, seed: number, lo: number, hi: number): Int32Array {
  const r = rng(seed);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor(r() * (hi - lo));
  return out;
}

/** Tolerances for values that must match bit for bit (copies, gathers). */
export const EXACT = { rtol: 0, atol: 0 };

/** Largest |a-b| / (atol + rtol·|b|) over all elements; ≤ 1 means close (atol = rtol = 0: equal). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  rtol = 1e-4,
  atol = 1e-5,
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length} != expected ${expected.length}`);
  }
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    const err = diff === 0 ? 0 : diff / (atol + rtol * Math.abs(expected[i]));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  if (!(worst <= 1)) {
    throw new Error(
      `${what}: element ${at} is ${actual[at]}, expected ${expected[at]} ` +
        `(rtol ${rtol}, atol ${atol}, ${actual.length} elements)`,
    );
  }
}

export interface OpInput {
  data: Float32Array | Int32Array;
  shape: number[];
  /** Whether the gradient of this input is checked (f32 inputs only). */
  grad?: boolean;
}

export interface CheckOpOptions {
  name: string;
  inputs: OpInput[];
  /** Builds the op on GPU tensors. */
  gpu: (ts: Tensor[]) => Tensor;
  /** The same op in float64 on host arrays. */
  ref: (xs: Float64Array[]) => Float64Array;
  rtol?: number;
  atol?: number;
  /** Tolerances for gradients (finite differences are less exact). */
  gradRtol?: number;
  gradAtol?: number;
  /** Finite-difference step. */
  eps?: number;
  /** Check at most this many elements per input by finite differences. */
  maxFdElements?: number;
  /** Seed of the random weights w of the checked loss. */
  seed?: number;
}

/**
 * Forward: GPU vs float64 reference. Backward: the GPU gradient of L = Σ out ⊙ w (w random)
 * vs central differences of L computed with the float64 reference.
 */
export async function checkOp(e: Engine, o: CheckOpOptions): Promise<void> {
  const rtol = o.rtol ?? 1e-4;
  const atol = o.atol ?? 1e-5;
  const xs64 = o.inputs.map((i) => Float64Array.from(i.data));
  const expected = o.ref(xs64);
  const wantGrad = o.inputs.some((i) => i.grad);
  const w = randomArray(expected.length, o.seed ?? 99);
  await e.tidyAsync(async () => {
    const ts = o.inputs.map((inp, k) => {
      const t = e.tensor(inp.data, inp.shape, undefined, `${o.name} input ${k}`);
      t.requiresGrad = inp.grad ?? false;
      return t;
    });
    if (wantGrad) e.startTape();
    const out = o.gpu(ts);
    const got = await out.read();
    assertClose(got, expected, `${o.name} forward`, rtol, atol);
    if (!wantGrad) return;
    e.backward(out, e.tensor(w, out.shape));
    for (let k = 0; k < o.inputs.length; k++) {
      if (!o.inputs[k].grad) continue;
      const t = ts[k];
      const g = await denseGradient(t).read();
      const fd = finiteDifferences(o, xs64, k, w);
      const gAt = fd.indices.map((i) => g[i]);
      assertClose(
        gAt,
        fd.values,
        `${o.name} gradient of input ${k}`,
        o.gradRtol ?? 1e-3,
        o.gradAtol ?? 1e-4,
      );
      t.zeroGrad();
    }
  });
}

/** The input's whole gradient as one dense tensor, whether it came dense, sparse or both. */
function denseGradient(t: Tensor): Tensor {
  coalesceSparseGrads(t);
  if (t.grad) return t.grad;
  if (t.sparseGrads.length) return sparseRowsToDense(t.sparseGrads[0], t.shape[0]);
  throw new Error(`input ${t.name} got no gradient`);
}

function finiteDifferences(o: CheckOpOptions, xs: Float64Array[], k: number, w: Float32Array) {
  const eps = o.eps ?? 1e-4;
  const n = xs[k].length;
  const limit = o.maxFdElements ?? 400;
  const r = rng(7);
  const indices = n <= limit
    ? [...Array(n).keys()]
    : [...new Set(Array.from({ length: limit }, () => Math.floor(r() * n)))].sort((a, b) => a - b);
  const loss = () => {
    const y = o.ref(xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * w[i];
    return s;
  };
  const values = indices.map((i) => {
    const keep = xs[k][i];
    xs[k][i] = keep + eps;
    const up = loss();
    xs[k][i] = keep - eps;
    const down = loss();
    xs[k][i] = keep;
    return (up - down) / (2 * eps);
  });
  return { indices, values };
}
