import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { type AttentionDropout, causalAttention } from "../../src/tensor/ops/attention.ts";
import { dropoutKeeps } from "../../src/tensor/ops/dropout.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";

interface Case {
  B: number;
  T: number;
  D: number;
  heads: number;
}

/**
 * Materialised causal softmax attention in float64: the scores of every allowed key, their
 * softmax, dropout of the probabilities (the documented counter of each (b, h, i, j)), the
 * weighted sum of values. A query without an allowed key outputs zeros.
 */
function reference(
  { B, T, D, heads }: Case,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  mask?: Float64Array,
  drop?: AttentionDropout,
): Float64Array {
  const factor = (b: number, h: number, t: number, s: number) => {
    if (!drop) return 1;
    const index = ((b * heads + h) * T + t) * T + s;
    return dropoutKeeps(drop.p, drop.seed, drop.step, index) ? 1 / (1 - drop.p) : 0;
  };
  const dh = D / heads;
  const scale = 1 / Math.sqrt(dh);
  const out = new Float64Array(B * T * D);
  const at = (b: number, t: number, h: number) => (b * T + t) * D + h * dh;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < T; t++) {
        const keys = [...Array(t + 1).keys()].filter((s) => !mask || mask[b * T + s] !== 0);
        if (keys.length === 0) continue;
        const scores = keys.map((s) => {
          let dot = 0;
          for (let d = 0; d < dh; d++) dot += q[at(b, t, h) + d] * k[at(b, s, h) + d];
          return dot * scale;
        });
        const max = Math.max(...scores);
        const weights = scores.map((x) => Math.exp(x - max));
        const sum = weights.reduce((x, y) => x + y, 0);
        keys.forEach((s, n) => {
          for (let d = 0; d < dh; d++) {
            out[at(b, t, h) + d] += (weights[n] / sum) * factor(b, h, t, s) * v[at(b, s, h) + d];
          }
        });
      }
    }
  }
  return out;
}

/** Left padding: sequence b has pads[b] padding tokens, then real ones. */
function leftPadMask(T: number, pads: number[]): Int32Array {
  const mask = new Int32Array(pads.length * T);
  pads.forEach((pad, b) => mask.fill(1, b * T + Math.min(pad, T), (b + 1) * T));
  return mask;
}

async function checkAttention(
  e: Engine,
  c: Case,
  pads?: number[],
  maxFdElements?: number,
  dropout?: AttentionDropout,
): Promise<void> {
  const { B, T, D, heads } = c;
  const n = B * T * D;
  const inputs = [1, 2, 3].map((seed) => ({
    data: randomArray(n, seed * 1000 + n, -1.5, 1.5),
    shape: [B, T, D],
    grad: true,
  }));
  const mask = pads && { data: leftPadMask(T, pads), shape: [B, T] };
  await checkOp(e, {
    name: `causalAttention ${B}x${T}x${D}/${heads}${pads ? ` pads ${pads}` : ""}${
      dropout ? ` dropout ${dropout.p}` : ""
    }`,
    inputs: mask ? [...inputs, mask] : inputs,
    gpu: ([q, k, v, m]) => causalAttention(q, k, v, { heads, keyMask: m, dropout }),
    ref: ([q, k, v, m]) => reference(c, q, k, v, m, dropout),
    maxFdElements,
  });
}

gpuTest("causalAttention B=1 T=1 matches float64 and finite differences", async (e) => {
  await checkAttention(e, { B: 1, T: 1, D: 5, heads: 1 });
});

gpuTest("causalAttention head dim 3 (B=2 T=7 D=6 heads=2)", async (e) => {
  await checkAttention(e, { B: 2, T: 7, D: 6, heads: 2 });
});

gpuTest("causalAttention B=3 T=13 D=10 one head", async (e) => {
  await checkAttention(e, { B: 3, T: 13, D: 10, heads: 1 });
});

gpuTest("causalAttention with left padding, a padded and a one-token sequence", async (e) => {
  await checkAttention(e, { B: 3, T: 13, D: 10, heads: 1 }, [4, 13, 12]);
});

gpuTest("causalAttention head dim 4 (vec4 kernels), padding not aligned to any tile", async (e) => {
  await checkAttention(e, { B: 5, T: 19, D: 12, heads: 3 }, [0, 9, 19, 18, 1]);
});

gpuTest("causalAttention head dim 6 (scalar kernels) over several key tiles", async (e) => {
  await checkAttention(e, { B: 2, T: 35, D: 18, heads: 3 }, [3, 34]);
});

gpuTest("causalAttention B=4 T=50 D=64 two heads (sampled finite differences)", async (e) => {
  await checkAttention(e, { B: 4, T: 50, D: 64, heads: 2 }, [0, 17, 49, 8], 100);
});

gpuTest("causalAttention with dropout, one token and a single head", async (e) => {
  await checkAttention(e, { B: 2, T: 1, D: 5, heads: 1 }, [0, 0], undefined, {
    p: 0.4,
    seed: 7,
    step: 3,
  });
});

gpuTest("causalAttention with dropout, padding, scalar kernels over key tiles", async (e) => {
  await checkAttention(e, { B: 3, T: 35, D: 18, heads: 3 }, [3, 34, 0], 120, {
    p: 0.3,
    seed: 12345,
    step: 9,
  });
});

gpuTest("causalAttention with dropout on the vec4 kernels, several heads", async (e) => {
  await checkAttention(e, { B: 5, T: 19, D: 12, heads: 3 }, [0, 9, 19, 18, 1], undefined, {
    p: 0.5,
    seed: 0xffffffff,
    step: 0,
  });
});

gpuTest("causalAttention dropout: p = 0 is no dropout, new steps draw new masks", async (e) => {
  const c = { B: 2, T: 23, D: 8, heads: 2 };
  const n = c.B * c.T * c.D;
  const data = [1, 2, 3].map((s) => randomArray(n, s));
  const w = randomArray(n, 4);
  const mask = leftPadMask(c.T, [0, 6]);
  const plain = await runWithGrads(e, c, data, mask, w);
  const zero = await runWithGrads(e, c, data, mask, w, { p: 0, seed: 1, step: 1 });
  assert.deepEqual(zero, plain);
  const stepOne = await runWithGrads(e, c, data, mask, w, { p: 0.3, seed: 1, step: 1 });
  const again = await runWithGrads(e, c, data, mask, w, { p: 0.3, seed: 1, step: 1 });
  const stepTwo = await runWithGrads(e, c, data, mask, w, { p: 0.3, seed: 1, step: 2 });
  assert.deepEqual(again, stepOne);
  assert.notDeepEqual(stepTwo[0], stepOne[0]);
  assert.notDeepEqual(stepOne[0], plain[0]);
  const x = e.tensor(new Float32Array(2 * 3 * 6), [2, 3, 6]);
  assert.throws(() => causalAttention(x, x, x, { heads: 1, dropout: { p: 1, seed: 0, step: 0 } }), {
    message: /dropout p must be in \[0, 1\)/,
  });
  assert.throws(
    () => causalAttention(x, x, x, { heads: 1, dropout: { p: 0.1, seed: -1, step: 0 } }),
    /dropout seed/,
  );
});

gpuTest("causalAttention of empty batches, sequences and widths is empty", async (e) => {
  for (const shape of [[0, 5, 4], [2, 0, 4], [2, 3, 0]]) {
    await e.tidyAsync(async () => {
      const x = e.tensor(new Float32Array(0), shape);
      x.requiresGrad = true;
      e.startTape();
      const out = causalAttention(x, x, x, { heads: 1 });
      e.backward(out, e.zeros(out.shape));
      assert.deepEqual(out.shape, shape);
      assert.deepEqual(x.grad?.shape, shape);
      assert.equal((await out.read()).length, 0);
      x.zeroGrad();
    });
  }
});

/** Forward output and the gradients of q, k, v for L = Σ out ⊙ w, read back. */
async function runWithGrads(
  e: Engine,
  c: Case,
  data: Float32Array[],
  mask: Int32Array | Uint32Array,
  w: Float32Array,
  dropout?: AttentionDropout,
): Promise<Float32Array[]> {
  return await e.tidyAsync(async () => {
    const [q, k, v] = data.map((d) => {
      const t = e.tensor(d, [c.B, c.T, c.D]);
      t.requiresGrad = true;
      return t;
    });
    e.startTape();
    const keyMask = e.tensor(mask, [c.B, c.T]);
    const out = causalAttention(q, k, v, { heads: c.heads, keyMask, dropout });
    e.backward(out, e.tensor(w, out.shape));
    const results = [await out.readF32()];
    for (const t of [q, k, v]) {
      results.push(await t.grad!.readF32());
      t.zeroGrad();
    }
    return results;
  });
}

gpuTest("causalAttention is bit-identical run to run, and u32 masks equal i32 ones", async (e) => {
  const c = { B: 3, T: 37, D: 20, heads: 2 };
  const n = c.B * c.T * c.D;
  const data = [1, 2, 3].map((s) => randomArray(n, s));
  const w = randomArray(n, 4);
  const mask = leftPadMask(c.T, [5, 0, 36]);
  const first = await runWithGrads(e, c, data, mask, w);
  const again = await runWithGrads(e, c, data, mask, w);
  const unsigned = await runWithGrads(e, c, data, Uint32Array.from(mask), w);
  assert.deepEqual(again, first);
  assert.deepEqual(unsigned, first);
});

gpuTest("causalAttention rejects mismatched shapes, heads and masks", (e) => {
  const x = e.tensor(new Float32Array(2 * 3 * 6), [2, 3, 6]);
  const other = e.tensor(new Float32Array(2 * 4 * 6), [2, 4, 6]);
  const throwsShape = (fn: () => unknown, text: RegExp) => {
    assert.throws(fn, (err: unknown) => err instanceof ShapeError && text.test(err.message));
  };
  throwsShape(
    () => causalAttention(x, other, x, { heads: 1 }),
    /causalAttention.*\[2, 3, 6\].*\[2, 4, 6\]/,
  );
  throwsShape(() => causalAttention(x, x, x, { heads: 4 }), /causalAttention.*not divisible by 4/);
  throwsShape(() => causalAttention(x, x, x, { heads: 0 }), /causalAttention/);
  const flat = e.tensor(new Float32Array(6), [6]);
  throwsShape(() => causalAttention(flat, flat, flat, { heads: 1 }), /not \[B, T, D\]/);
  const wrongMask = e.tensor(new Int32Array(2 * 4), [2, 4]);
  throwsShape(
    () => causalAttention(x, x, x, { heads: 2, keyMask: wrongMask }),
    /keyMask \[2, 4\].*\[2, 3, 6\]/,
  );
  const floatMask = e.tensor(new Float32Array(2 * 3), [2, 3]);
  throwsShape(() => causalAttention(x, x, x, { heads: 2, keyMask: floatMask }), /i32 or u32/);
});

/**
 * Gradient of Σ reference(q, k, v) ⊙ w with respect to input `which`, by central differences, at
 * the given element indices.
 */
function referenceGrad(
  c: Case,
  xs: Float64Array[],
  mask: Float64Array,
  w: Float32Array,
  which: number,
  indices: number[],
): number[] {
  const loss = () => {
    const out = reference(c, xs[0], xs[1], xs[2], mask);
    return out.reduce((s, y, i) => s + y * w[i], 0);
  };
  const eps = 1e-4;
  const x = xs[which];
  return indices.map((i) => {
    const keep = x[i];
    x[i] = keep + eps;
    const up = loss();
    x[i] = keep - eps;
    const down = loss();
    x[i] = keep;
    return (up - down) / (2 * eps);
  });
}

/** n random values, a shorter random run repeated: generating 35M values one by one is slow. */
function tiledRandom(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  out.set(randomArray(Math.min(n, 100_003), seed));
  for (let filled = 100_003; filled < n; filled *= 2) out.copyWithin(filled, 0, filled);
  return out;
}

gpuTest("causalAttention windows tensors larger than one storage binding", async (e) => {
  // 33,000 sequences of 16 tokens × 64 floats: 135 MB per tensor, over the 128 MiB binding limit,
  // so the batches run in two windows (32,768 + 232); mask and statistics are indexed across both.
  const c = { B: 33_000, T: 16, D: 64, heads: 2 };
  const row = c.T * c.D;
  const n = c.B * row;
  const data = [1, 2, 3].map((s) => tiledRandom(n, s));
  const w = tiledRandom(n, 4);
  const pads = Array.from({ length: c.B }, (_, b) => b % 17);
  const mask = leftPadMask(c.T, pads);
  const got = e.tidy(() => {
    const [q, k, v] = data.map((d) => {
      const t = e.tensor(d, [c.B, c.T, c.D]);
      t.requiresGrad = true;
      return t;
    });
    e.startTape();
    const out = causalAttention(q, k, v, { heads: c.heads, keyMask: e.tensor(mask, [c.B, c.T]) });
    e.backward(out, e.tensor(w, out.shape));
    return [out, q.grad!, k.grad!, v.grad!];
  });
  const indices = Array.from({ length: 24 }, (_, i) => (i * 397) % row);
  for (const b of [0, 5, 16, 16_383, 32_767, 32_768, 32_775, 32_999]) {
    const slice = (a: Float32Array) => Float64Array.from(a.subarray(b * row, (b + 1) * row));
    const xs = data.map(slice);
    const m = Float64Array.from(mask.subarray(b * c.T, (b + 1) * c.T));
    const wb = w.subarray(b * row, (b + 1) * row);
    const one = { ...c, B: 1 };
    const read = async (t: Tensor) =>
      new Float32Array(await e.gpu.read(t.storage, b * row * 4, row * 4));
    const out = await read(got[0]);
    const grads = [await read(got[1]), await read(got[2]), await read(got[3])];
    assertClose(out, reference(one, xs[0], xs[1], xs[2], m), `batch ${b} output`);
    grads.forEach((g, which) => {
      assertClose(
        indices.map((i) => g[i]),
        referenceGrad(one, xs, m, wb, which, indices),
        `batch ${b} gradient of input ${which}`,
        1e-3,
        1e-4,
      );
    });
  }
  for (const t of got) t.dispose();
});
