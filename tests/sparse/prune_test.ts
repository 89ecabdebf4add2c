/**
 * GPU pruning, encoding and decoding against the float64 host reference: values exactly,
 * metadata bit for bit, on awkward shapes (one row, N = 1, N = M − 1, odd M, a middle axis).
 */
import assert from "node:assert/strict";
import type { Engine } from "../../src/tensor/engine.ts";
import type { NmEncoding, NmPattern } from "../../src/sparse/format.ts";
import { decodeHost, pruneHost, pruneUnstructuredHost } from "../../src/sparse/host.ts";
import {
  decodeNm,
  encodeNm,
  keepAtRatio,
  pruneNm,
  pruneUnstructured,
} from "../../src/sparse/prune.ts";
import { gpuTest, randomArray } from "../support/check.ts";

/** Random values whose scores tie often: a few levels, some negative. */
function tiedScores(n: number, seed: number): Float32Array {
  return randomArray(n, seed).map((v) => Math.round(v * 3) / 3);
}

const ENCODINGS: NmEncoding[] = ["combinatorial", "indices"];

async function checkPrune(
  e: Engine,
  shape: number[],
  axis: number,
  pattern: NmPattern,
  encoding: NmEncoding,
  withScores: boolean,
  seed: number,
) {
  const what = `${pattern.n}:${pattern.m} ${encoding} ${JSON.stringify(shape)} axis ${axis}`;
  const size = shape.reduce((a, b) => a * b, 1);
  const x = randomArray(size, seed);
  const scores = withScores ? tiedScores(size, seed + 1) : null;
  const want = pruneHost(x, shape, axis, pattern, encoding, scores);
  await e.tidyAsync(async () => {
    const xt = e.tensor(x, shape);
    const st = scores ? e.tensor(scores, shape) : undefined;
    const { nm, masked } = pruneNm(xt, pattern, { axis, encoding, scores: st, masked: true });
    assert.deepEqual(Array.from(await nm.values.read()), Array.from(want.nm.values), what);
    assert.deepEqual(await nm.meta.read(), want.nm.meta, `${what} metadata`);
    assert.deepEqual(Array.from(await masked!.read()), Array.from(want.masked), `${what} masked`);
    assert.deepEqual(Array.from(await decodeNm(nm).read()), Array.from(decodeHost(want.nm)));
  });
}

gpuTest("N:M pruning matches the host: four patterns, N = 1, N = M − 1, odd M", async (e) => {
  const cases: [number[], number, NmPattern][] = [
    [[3, 64], 1, { n: 2, m: 4 }],
    [[3, 64], 1, { n: 4, m: 8 }],
    [[3, 64], 1, { n: 8, m: 16 }],
    [[1, 64], 1, { n: 16, m: 32 }],
    [[2, 32], 1, { n: 31, m: 32 }],
    [[2, 12], 1, { n: 1, m: 4 }],
    [[1, 6], 1, { n: 2, m: 3 }],
    [[2, 8, 3], 1, { n: 3, m: 4 }],
  ];
  let seed = 1;
  for (const encoding of ENCODINGS) {
    for (const [shape, axis, pattern] of cases) {
      await checkPrune(e, shape, axis, pattern, encoding, seed % 2 === 0, seed++);
    }
  }
});

gpuTest("encoding an N:M-sparse tensor keeps its values; decoding gives it back", async (e) => {
  const shape = [5, 16];
  const masked = pruneHost(randomArray(80, 9), shape, 1, { n: 4, m: 8 }, "indices").masked;
  // A group with fewer non-zeros than N: zeros fill its remaining kept places.
  masked.fill(0, 0, 8);
  masked[3] = 0.5;
  for (const encoding of ENCODINGS) {
    await e.tidyAsync(async () => {
      const nm = encodeNm(e.tensor(Float32Array.from(masked), shape), { n: 4, m: 8 }, {
        encoding,
      });
      assert.deepEqual(Array.from(await decodeNm(nm).read()), Array.from(masked));
    });
  }
});

gpuTest("unstructured top-k per lane matches the host, ties to the lower index", async (e) => {
  const cases: [number[], number, number][] = [
    [[3, 50], 1, 25],
    [[1, 7], 1, 3],
    [[2, 200], 1, keepAtRatio(200, { n: 8, m: 16 })],
    [[6, 2, 5], 0, 3],
  ];
  let seed = 20;
  for (const [shape, axis, k] of cases) {
    const size = shape.reduce((a, b) => a * b, 1);
    const x = randomArray(size, seed++);
    const scores = tiedScores(size, seed++);
    const want = pruneUnstructuredHost(x, shape, axis, k, scores);
    await e.tidyAsync(async () => {
      const { nm, masked } = pruneUnstructured(e.tensor(x, shape), k, {
        axis,
        scores: e.tensor(scores, shape),
        masked: true,
      });
      const what = `top ${k} of ${JSON.stringify(shape)} axis ${axis}`;
      assert.deepEqual(Array.from(await nm.values.read()), Array.from(want.nm.values), what);
      assert.deepEqual(await nm.meta.read(), want.nm.meta, `${what} metadata`);
      assert.deepEqual(Array.from(await masked!.read()), Array.from(want.masked), what);
      assert.deepEqual(Array.from(await decodeNm(nm).read()), Array.from(want.masked), what);
    });
  }
});

gpuTest(
  "pruning refuses a dimension that is not a multiple of M, naming shape and pattern",
  (e) => {
    assert.throws(
      () => pruneNm(e.zeros([2, 10]), { n: 8, m: 16 }),
      /pruneNm: dimension 1 of \[2, 10\] \(10\) is not a multiple of M = 16 for pattern 8:16/,
    );
  },
);
