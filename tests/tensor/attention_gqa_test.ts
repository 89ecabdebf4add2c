/**
 * Grouped-query attention in the fused causal kernels: k and v have fewer heads than q, and each
 * of their heads serves a group of consecutive query heads (padded, masked, packed, dropout).
 */
import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import {
  type AttentionDropout,
  type AttentionKernels,
  causalAttention,
  defaultAttentionKernels,
} from "../../src/tensor/ops/attention.ts";
import { dropoutKeeps } from "../../src/tensor/ops/dropout.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

interface Case {
  /** Sequence lengths: equal ones form [B, T, ·] (with `pads`), unequal ones are packed. */
  lengths: number[];
  heads: number;
  kvHeads: number;
  dh: number;
  pads?: number[];
  dropout?: AttentionDropout;
  packed?: boolean;
  /** Default: the adapter's (defaultAttentionKernels). */
  kernels?: AttentionKernels;
  /**
   * Fill the allocator's pool with NaN buffers of the sizes the op allocates first: what it
   * leaves uncleared must be written whole.
   */
  poison?: boolean;
}

/** Returns NaN-filled buffers of every multiple of q's and k's sizes the op may take to the pool. */
function poisonPool(e: Engine, qFloats: number, kFloats: number, keyBlocks: number): void {
  const sizes = [kFloats, ...Array.from({ length: keyBlocks }, (_, i) => (i + 1) * qFloats)];
  const filled = sizes.flatMap((n) => [0, 1, 2].map(() => e.full([n], NaN)));
  for (const t of filled) t.dispose();
}

/**
 * Materialised attention in float64 over sequences laid back to back (row offset `start` each):
 * query head h reads key-value head h / (heads / kvHeads). Dropout counters are those of
 * [B, heads, T, T] with T the longest sequence.
 */
function reference(c: Case, q: Float64Array, k: Float64Array, v: Float64Array): Float64Array {
  const { heads, kvHeads, dh } = c;
  const D = heads * dh;
  const Dkv = kvHeads * dh;
  const T = Math.max(...c.lengths);
  const out = new Float64Array(q.length);
  let start = 0;
  c.lengths.forEach((len, b) => {
    const pad = c.pads?.[b] ?? 0;
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / (heads / kvHeads));
      for (let t = 0; t < len; t++) {
        const keys = [...Array(t + 1).keys()].filter((s) => s >= pad);
        if (!keys.length) continue;
        const scores = keys.map((s) => {
          let dot = 0;
          for (let d = 0; d < dh; d++) {
            dot += q[(start + t) * D + h * dh + d] * k[(start + s) * Dkv + g * dh + d];
          }
          return dot / Math.sqrt(dh);
        });
        const max = Math.max(...scores);
        const w = scores.map((x) => Math.exp(x - max));
        const sum = w.reduce((a, b) => a + b, 0);
        keys.forEach((s, n) => {
          let factor = 1;
          if (c.dropout) {
            const { p, seed, step } = c.dropout;
            const index = ((b * heads + h) * T + t) * T + s;
            factor = dropoutKeeps(p, seed, step, index) ? 1 / (1 - p) : 0;
          }
          for (let d = 0; d < dh; d++) {
            out[(start + t) * D + h * dh + d] += (w[n] / sum) * factor *
              v[(start + s) * Dkv + g * dh + d];
          }
        });
      }
    }
    start += len;
  });
  return out;
}

/** Runs the case, with storage bindings capped at `bindingLimit` bytes when given. */
function check(name: string, c: Case, bindingLimit?: number): void {
  gpuTest(`grouped-query attention: ${name}`, async (e) => {
    const rows = c.lengths.reduce((a, b) => a + b, 0);
    const B = c.lengths.length;
    const T = c.lengths[0];
    const lead = c.packed ? [rows] : [B, T];
    const D = c.heads * c.dh;
    const Dkv = c.kvHeads * c.dh;
    const inputs = [D, Dkv, Dkv].map((width, i) => ({
      data: randomArray(rows * width, 31 * i + rows, -1.5, 1.5),
      shape: [...lead, width],
      grad: true,
    }));
    const offsets = Int32Array.from([
      0,
      ...c.lengths.map((_, i) => c.lengths.slice(0, i + 1).reduce((a, b) => a + b, 0)),
    ]);
    const mask = c.pads
      ? Int32Array.from({ length: B * T }, (_, i) => (i % T >= c.pads![Math.floor(i / T)] ? 1 : 0))
      : undefined;
    if (c.poison) poisonPool(e, rows * D, rows * Dkv, Math.ceil(Math.max(...c.lengths) / 16));
    const run = () =>
      checkOp(e, {
        name: `gqa ${name}`,
        inputs,
        gpu: ([q, k, v]) =>
          causalAttention(q, k, v, {
            heads: c.heads,
            kvHeads: c.kvHeads,
            dropout: c.dropout,
            kernels: c.kernels,
            keyMask: mask && e.tensor(mask, [B, T], "i32"),
            segments: c.packed
              ? { offsets: e.tensor(offsets, [B + 1], "i32"), maxLength: Math.max(...c.lengths) }
              : undefined,
          }),
        ref: ([q, k, v]) => reference(c, q, k, v),
        maxFdElements: 150,
      });
    await (bindingLimit ? withBindingLimit(e, bindingLimit, run) : run());
  });
}

check("one token, two query heads on one kv head (scalar)", {
  lengths: [1],
  heads: 2,
  kvHeads: 1,
  dh: 3,
});
check("B=2 T=19, 6 heads on 2 kv heads, left padding (vec4)", {
  lengths: [19, 19],
  heads: 6,
  kvHeads: 2,
  dh: 4,
  pads: [0, 7],
});
check("packed lengths 3, 17, 1: 4 heads on 2 kv heads", {
  lengths: [3, 17, 1],
  heads: 4,
  kvHeads: 2,
  dh: 2,
  packed: true,
});
check("dropout, 4 heads on one kv head over two key tiles", {
  lengths: [18, 18],
  heads: 4,
  kvHeads: 1,
  dh: 2,
  pads: [3, 0],
  dropout: { p: 0.3, seed: 11, step: 5 },
});

// q holds 1,024 bytes per sequence and k 512: windows of 4 sequences (4 + 4 + 1), each starting
// at an offset aligned in q and in k (statistics, 2,304 bytes, stay whole).
check("9 sequences in binding windows of 4, 4 heads on 2 kv heads", {
  lengths: Array(9).fill(8),
  heads: 4,
  kvHeads: 2,
  dh: 8,
  pads: [0, 1, 2, 3, 4, 5, 6, 7, 8],
}, 4096);

// The register kernels (a shader per head dimension) on every layout, forced so that they are
// tested on any adapter; and the generic kernels at a head dimension that has register ones.
check("register kernels, dh 16: T=37 with left padding, 4 heads on 2 kv heads", {
  lengths: [37, 37, 37],
  heads: 4,
  kvHeads: 2,
  dh: 16,
  pads: [0, 20, 36],
  kernels: "registers",
});
check("register kernels, dh 8: packed lengths 1, 33, 16, 2 heads on 1 kv head", {
  lengths: [1, 33, 16],
  heads: 2,
  kvHeads: 1,
  dh: 8,
  packed: true,
  kernels: "registers",
});
check("register kernels, dh 16: dropout and padding over three key tiles, 2 heads", {
  lengths: [35, 35],
  heads: 2,
  kvHeads: 2,
  dh: 16,
  pads: [3, 0],
  dropout: { p: 0.3, seed: 7, step: 2 },
  kernels: "registers",
});
check("register kernels, dh 8: one token", {
  lengths: [1],
  heads: 2,
  kvHeads: 2,
  dh: 8,
  kernels: "registers",
});
check("register kernels, dh 16, no mask: outputs and gradients written whole", {
  lengths: [40, 40],
  heads: 4,
  kvHeads: 2,
  dh: 16,
  kernels: "registers",
  poison: true,
});
check("register kernels, dh 8, packed: outputs and gradients written whole", {
  lengths: [9, 40, 17],
  heads: 2,
  kvHeads: 1,
  dh: 8,
  packed: true,
  kernels: "registers",
  poison: true,
});
check("generic kernels, no mask: outputs and gradients written whole", {
  lengths: [21, 21, 21],
  heads: 3,
  kvHeads: 3,
  dh: 4,
  kernels: "generic",
  poison: true,
});
check("generic kernels, dh 16: packed lengths 17, 5", {
  lengths: [17, 5],
  heads: 4,
  kvHeads: 2,
  dh: 16,
  packed: true,
  kernels: "generic",
});

// With k and v frozen the backward takes dq_rows (no dq parts), which the register kernels'
// shader compiles too.
for (const kvGrad of [true, false]) {
  gpuTest(
    `grouped-query attention: register and generic kernels agree${
      kvGrad ? "" : " with k and v frozen"
    }`,
    async (e) => {
      const [B, T, heads, kvHeads, dh] = [3, 29, 4, 2, 16];
      const mask = Int32Array.from(
        { length: B * T },
        (_, i) => (i % T >= [0, 5, 28][Math.floor(i / T)] ? 1 : 0),
      );
      const data = [heads, kvHeads, kvHeads].map((h, i) => randomArray(B * T * h * dh, 70 + i));
      const w = randomArray(B * T * heads * dh, 80);
      const run = (kernels: AttentionKernels) =>
        e.tidyAsync(async () => {
          const [q, k, v] = data.map((d, i) => {
            const t = e.tensor(d, [B, T, [heads, kvHeads, kvHeads][i] * dh]);
            t.requiresGrad = i === 0 || kvGrad;
            return t;
          });
          e.startTape();
          const out = causalAttention(q, k, v, {
            heads,
            kvHeads,
            kernels,
            keyMask: e.tensor(mask, [B, T], "i32"),
            dropout: { p: 0.2, seed: 3, step: 9 },
          });
          e.backward(out, e.tensor(w, out.shape));
          const results = [await out.readF32()];
          for (const t of kvGrad ? [q, k, v] : [q]) results.push(await t.grad!.readF32());
          return results;
        });
      const registers = await run("registers");
      const generic = await run("generic");
      assert.equal(registers.length, kvGrad ? 4 : 2);
      registers.forEach((got, i) =>
        assertClose(
          got,
          generic[i],
          `registers vs generic ${["out", "dq", "dk", "dv"][i]}`,
          1e-5,
          1e-6,
        )
      );
    },
  );
}

gpuTest("causalAttention refuses register kernels for a head dimension without them", (e) => {
  const x = e.tensor(new Float32Array(2 * 3 * 12), [2, 3, 12]);
  assert.throws(
    () => causalAttention(x, x, x, { heads: 1, kernels: "registers" }),
    (err: unknown) => err instanceof ShapeError && /head dimension 12/.test(err.message),
  );
});

gpuTest("register kernels are not chosen, and refused, past llvmpipe's loop budget", (e) => {
  // 8 query heads on one kv head step through 8 · ceil(T / 4) queries: 32,768 at T = 16,384.
  const shape = { T: 16384, group: 8, headDim: 8, dropout: false, masked: false };
  assert.equal(defaultAttentionKernels(e, shape), e.gpu.isSoftware ? "registers" : "generic");
  assert.equal(defaultAttentionKernels(e, { ...shape, T: 16385 }), "generic");
  // With dropout each step also loops over its 4 queries' draws: 5 · 8 · 4,096.
  assert.equal(defaultAttentionKernels(e, { ...shape, dropout: true }), "generic");
  const T = 16385;
  const q = e.tensor(new Float32Array(T * 64), [1, T, 64]);
  const k = e.tensor(new Float32Array(T * 8), [1, T, 8]);
  assert.throws(
    () => causalAttention(q, k, k, { heads: 8, kvHeads: 1, kernels: "registers" }),
    (err: unknown) => err instanceof ShapeError && /loop 32776 times/.test(err.message),
  );
});

gpuTest("grouped-query attention refuses kv heads that do not group the query heads", (e) => {
  const q = e.tensor(new Float32Array(2 * 3 * 6), [2, 3, 6]);
  const k = e.tensor(new Float32Array(2 * 3 * 4), [2, 3, 4]);
  assert.throws(() => causalAttention(q, k, k, { heads: 3, kvHeads: 2 }), /groups of 2 kv heads/);
  assert.throws(
    () => causalAttention(q, k, k, { heads: 3, kvHeads: 1 }),
    (err: unknown) => err instanceof ShapeError && /want k \[2, 3, 2\]/.test(err.message),
  );
  const k2 = e.tensor(new Float32Array(2 * 3 * 2), [2, 3, 2]);
  assert.throws(() => causalAttention(q, k2, k, { heads: 3, kvHeads: 1 }), /differ/);
});
