/**
 * Long sequences on llvmpipe, which silently ends an invocation's loops past ~65,535 iterations:
 * attention with dropout stays exact where its draws used to cut the key walk short (T ≳ 3,300),
 * and shapes past the loop budget are refused instead of computed wrong.
 */
import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import {
  type AttentionKernels,
  attentionLoops,
  causalAttention,
} from "../../src/tensor/ops/attention.ts";
import { dropoutKeeps } from "../../src/tensor/ops/dropout.ts";
import { LOOP_BUDGET } from "../../src/gpu/device.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

interface Gradients {
  out: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
}

/** One head's causal attention with dropout and its gradients for the output weights g, in float64. */
function reference(
  T: number,
  dh: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  g: Float32Array,
  drop: { p: number; seed: number; step: number },
): Gradients {
  const scale = 1 / Math.sqrt(dh);
  const [out, dq, dk, dv] = [0, 1, 2, 3].map(() => new Float64Array(T * dh));
  const prob = new Float64Array(T);
  const keep = new Float64Array(T);
  const dprob = new Float64Array(T);
  const dot = (a: Float32Array, i: number, b: Float32Array, j: number) => {
    let s = 0;
    for (let d = 0; d < dh; d++) s += a[i * dh + d] * b[j * dh + d];
    return s;
  };
  for (let t = 0; t < T; t++) {
    let max = -Infinity;
    for (let s = 0; s <= t; s++) max = Math.max(max, prob[s] = dot(q, t, k, s) * scale);
    let sum = 0;
    for (let s = 0; s <= t; s++) sum += prob[s] = Math.exp(prob[s] - max);
    let delta = 0;
    for (let s = 0; s <= t; s++) {
      prob[s] /= sum;
      keep[s] = dropoutKeeps(drop.p, drop.seed, drop.step, t * T + s) ? 1 / (1 - drop.p) : 0;
      dprob[s] = dot(g, t, v, s) * keep[s];
      delta += prob[s] * dprob[s];
      for (let d = 0; d < dh; d++) {
        out[t * dh + d] += prob[s] * keep[s] * v[s * dh + d];
        dv[s * dh + d] += prob[s] * keep[s] * g[t * dh + d];
      }
    }
    for (let s = 0; s <= t; s++) {
      const ds = prob[s] * (dprob[s] - delta) * scale;
      for (let d = 0; d < dh; d++) {
        dq[t * dh + d] += ds * k[s * dh + d];
        dk[s * dh + d] += ds * q[t * dh + d];
      }
    }
  }
  return { out, dq, dk, dv };
}

// Before the draws came four at a time, the key walk of the last query rows (forward) and of the
// first key rows (dk, dv) stopped early from T ≈ 3,300 (registers) or 3,900 (generic).
for (const kernels of ["registers", "generic"] as AttentionKernels[]) {
  gpuTest(`attention with dropout over 4,101 positions (${kernels}) matches float64`, async (e) => {
    const T = 4101;
    const dh = 8;
    const drop = { p: 0.2, seed: 5, step: 3 };
    const [q, k, v, g] = [1, 2, 3, 4].map((s) => randomArray(T * dh, 31 * s, -1.5, 1.5));
    const want = reference(T, dh, q, k, v, g, drop);
    await e.tidyAsync(async () => {
      const [tq, tk, tv] = [q, k, v].map((x) => {
        const t = e.tensor(x, [1, T, dh]);
        t.requiresGrad = true;
        return t;
      });
      e.startTape();
      const out = causalAttention(tq, tk, tv, { heads: 1, dropout: drop, kernels });
      assertClose(await out.read(), want.out, "out", 1e-4, 1e-5);
      e.backward(out, e.tensor(g, [1, T, dh]));
      for (
        const [t, ref, name] of [[tq, want.dq, "dq"], [tk, want.dk, "dk"], [
          tv,
          want.dv,
          "dv",
        ]] as const
      ) {
        assertClose(await t.grad!.read(), ref, name, 1e-4, 1e-5);
      }
    });
  });
}

Deno.test("attentionLoops counts what llvmpipe counted in the measured cases", () => {
  const shape = { T: 32768, group: 1, headDim: 16, dropout: true, masked: false };
  // Generic, 25 a tile of 16 keys: right at 32,768 positions, cut short at 49,152.
  assert.equal(attentionLoops(shape, "generic"), 2048 * 25);
  assert.equal(attentionLoops({ ...shape, T: 49152 }, "generic"), 3072 * 25);
  // Head dim 64 without dropout, 33 a tile: right at 16,384, cut short at 32,768.
  const wide = { ...shape, headDim: 64, dropout: false, T: 16384 };
  assert.equal(attentionLoops(wide, "generic"), 1024 * 33);
  // Registers: the forward's 8,192 tiles of 4 keys at 5 each (right at 32,768, cut short at
  // 65,536) stay under the generic dq_rows the register backward also runs.
  assert.equal(attentionLoops(shape, "registers"), 2048 * 25);
  // Two query heads a kv head: the dk/dv walk, 2 · 8,192 steps of 4 queries at 5 each.
  assert.equal(attentionLoops({ ...shape, headDim: 8, group: 2 }, "registers"), 2 * 8192 * 5);
  // A key mask adds 16 to each tile's draws; grouped heads multiply the dk/dv walk.
  assert.equal(attentionLoops({ ...shape, masked: true }, "generic"), 2048 * 41);
  assert.equal(attentionLoops({ ...shape, group: 4, dropout: false }, "generic"), 4 * 2048 * 9);
});

gpuTest("on llvmpipe, generic attention past the loop budget is refused, not cut short", (e) => {
  const T = 16000;
  const dh = 64;
  const loops = attentionLoops(
    { T, group: 1, headDim: dh, dropout: false, masked: false },
    "generic",
  );
  assert.ok(loops > LOOP_BUDGET);
  const x = e.tensor(new Float32Array(T * dh), [1, T, dh]);
  const run = () => causalAttention(x, x, x, { heads: 1, kernels: "generic" }).dispose();
  if (!e.gpu.isSoftware) return run();
  assert.throws(run, (err: unknown) =>
    err instanceof ShapeError &&
    err.message.includes(`loop ${loops} times`) &&
    /use shorter sequences or a GPU/.test(err.message));
});
