/** Incremental decoding's attention over a kv cache against float64 (inference only). */
import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import {
  appendToCache,
  attendToCache,
  cachePasses,
  MAX_CACHE_LENGTH,
} from "../../src/tensor/ops/attention_cache.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

interface CacheCase {
  B: number;
  heads: number;
  kvHeads: number;
  dh: number;
  maxLen: number;
  len: number;
}

/** attendToCache of q [B, heads·dh] over the first `len` rows of k, v [B, maxLen, kvHeads·dh]. */
function attendOnGpu(
  e: Engine,
  c: CacheCase,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
): Promise<Float32Array> {
  const W = c.kvHeads * c.dh;
  return e.tidyAsync(() =>
    attendToCache(
      e.tensor(q, [c.B, c.heads * c.dh]),
      e.tensor(k, [c.B, c.maxLen, W]),
      e.tensor(v, [c.B, c.maxLen, W]),
      { heads: c.heads, kvHeads: c.kvHeads, length: c.len },
    ).readF32()
  );
}

/** One query per sequence over the first `len` rows of k, v [B, maxLen, kvHeads·dh]. */
function reference(q: Float32Array, k: Float32Array, v: Float32Array, c: CacheCase): Float64Array {
  const { B, heads, kvHeads, dh, maxLen, len } = c;
  const W = kvHeads * dh;
  const out = new Float64Array(B * heads * dh);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / (heads / kvHeads));
      const scores = Array.from({ length: len }, (_, s) => {
        let dot = 0;
        for (let d = 0; d < dh; d++) {
          dot += q[(b * heads + h) * dh + d] * k[(b * maxLen + s) * W + g * dh + d];
        }
        return dot / Math.sqrt(dh);
      });
      const m = Math.max(...scores);
      const w = scores.map((x) => Math.exp(x - m));
      const z = w.reduce((a, x) => a + x, 0);
      for (let s = 0; s < len; s++) {
        for (let d = 0; d < dh; d++) {
          out[(b * heads + h) * dh + d] += (w[s] / z) * v[(b * maxLen + s) * W + g * dh + d];
        }
      }
    }
  }
  return out;
}

for (
  const c of [
    { B: 1, heads: 1, kvHeads: 1, dh: 1, maxLen: 1, len: 1 },
    { B: 3, heads: 6, kvHeads: 2, dh: 5, maxLen: 23, len: 17 },
    { B: 2, heads: 4, kvHeads: 4, dh: 8, maxLen: 70, len: 70 },
  ]
) {
  gpuTest(`attendToCache ${JSON.stringify(c)} matches float64`, async (e) => {
    const W = c.kvHeads * c.dh;
    const q = randomArray(c.B * c.heads * c.dh, 1, -2, 2);
    const k = randomArray(c.B * c.maxLen * W, 2, -2, 2);
    const v = randomArray(c.B * c.maxLen * W, 3);
    const got = await attendOnGpu(e, c, q, k, v);
    assertClose(got, reference(q, k, v, c), "cache attention", 1e-5, 1e-6);
  });
}

gpuTest("appendToCache writes rows at a position and leaves the others", async (e) => {
  const [B, maxLen, W, n, pos] = [2, 9, 3, 4, 5];
  const cache = e.tensor(randomArray(B * maxLen * W, 4), [B, maxLen, W]);
  const before = await cache.readF32();
  const rows = randomArray(B * n * W, 5);
  appendToCache(cache, e.tensor(rows, [B, n, W]), pos);
  const want = Float32Array.from(before);
  for (let b = 0; b < B; b++) {
    want.set(rows.subarray(b * n * W, (b + 1) * n * W), (b * maxLen + pos) * W);
  }
  assert.deepEqual(await cache.readF32(), want);
  assert.throws(() => appendToCache(cache, e.tensor(rows, [B, n, W]), 6), /do not fit/);
  cache.dispose();
});

gpuTest("the cache ops refuse to run where a gradient is wanted", (e) => {
  const q = e.tensor(new Float32Array(4), [1, 4]);
  q.requiresGrad = true;
  const cache = e.zeros([1, 3, 4]);
  e.startTape();
  assert.throws(
    () => attendToCache(q, cache, cache, { heads: 1, kvHeads: 1, length: 1 }),
    /no backward/,
  );
  e.tape = null;
  assert.throws(
    () =>
      attendToCache(e.tensor(new Float32Array(4), [1, 4]), cache, cache, {
        heads: 1,
        kvHeads: 1,
        length: 4,
      }),
    /length 4 is outside \[1, 3\]/,
  );
});

gpuTest("attendToCache over the longest cache (32,768 positions) matches float64", async (e) => {
  // Before the max and the weighted sum ran as passes, the mix kernel looped 2 · len times in one
  // invocation and llvmpipe cut it short at this length: its last position went missing. Here the
  // last position carries most of the weight, so losing it shows.
  const c = { B: 1, heads: 2, kvHeads: 1, dh: 3, maxLen: MAX_CACHE_LENGTH, len: MAX_CACHE_LENGTH };
  assert.deepEqual(cachePasses(c.len), [[0, 32767], [32767, 32768]]);
  const W = c.kvHeads * c.dh;
  const q = randomArray(c.B * c.heads * c.dh, 6, 0.5, 1);
  const k = randomArray(c.B * c.maxLen * W, 7, -1, 1);
  k.fill(6, (c.len - 1) * W);
  const v = randomArray(c.B * c.maxLen * W, 8);
  const got = await attendOnGpu(e, c, q, k, v);
  assertClose(got, reference(q, k, v, c), "cache attention", 1e-4, 1e-6);
});
