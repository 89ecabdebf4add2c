/** N:M formats on the host: code widths, bits per element, ranks, fields, errors. */
import assert from "node:assert/strict";
import {
  binomial,
  codeBits,
  metadataBitsPerElement,
  NM_PATTERNS,
  nmLayout,
  rankOf,
  readField,
  unrank,
  writeField,
} from "../../src/sparse/format.ts";
import { decodeHost, keptPositions, pruneHost, topPositions } from "../../src/sparse/host.ts";
import { hasMaskTable, maskTable } from "../../src/sparse/tables.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { randomArray } from "../support/check.ts";

Deno.test("combinatorial codes take the papers' bits per element; indices log2 M per value", () => {
  assert.deepEqual(NM_PATTERNS.map((p) => metadataBitsPerElement(p, "combinatorial")), [
    0.75,
    0.875,
    0.875,
    0.9375,
  ]);
  assert.deepEqual(NM_PATTERNS.map((p) => metadataBitsPerElement(p, "indices")), [1, 1.5, 2, 2.5]);
  assert.equal(binomial(32, 16), 601080390);
  assert.equal(codeBits({ n: 16, m: 32 }), 30);
  assert.equal(codeBits({ n: 31, m: 32 }), 5);
  assert.equal(codeBits({ n: 1, m: 2 }), 1);
});

Deno.test("every kept set of a few patterns ranks below C(M,N) and unranks back", () => {
  for (const [n, m] of [[1, 4], [2, 4], [3, 4], [2, 5], [4, 8], [7, 8]]) {
    const seen = new Set<number>();
    for (let mask = 0; mask < 1 << m; mask++) {
      const kept = [...Array(m).keys()].filter((c) => mask & (1 << c));
      if (kept.length !== n) continue;
      const r = rankOf(kept);
      assert.ok(r < binomial(m, n));
      assert.deepEqual(unrank(r, n, m), kept);
      seen.add(r);
    }
    assert.equal(seen.size, binomial(m, n));
  }
  assert.deepEqual(unrank(binomial(32, 16) - 1, 16, 32), [...Array(16).keys()].map((i) => i + 16));
});

Deno.test("fields straddling words read back", () => {
  const words = new Uint32Array(4);
  const width = 30;
  const vals = [601080389, 1, 123456789, 0x3fffffff];
  vals.forEach((v, i) => writeField(words, 0, i * width, width, v));
  assert.deepEqual(vals.map((_, i) => readField(words, 0, i * width, width)), vals);
});

Deno.test("a dimension that is not a multiple of M is an error naming shape and pattern", () => {
  assert.throws(
    () => nmLayout("op", [3, 10], 1, { n: 2, m: 4 }, "indices"),
    (e: Error) => e instanceof ShapeError && /\[3, 10\]/.test(e.message) && /2:4/.test(e.message),
  );
  assert.throws(() => nmLayout("op", [8], 0, { n: 4, m: 4 }, "indices"), /4:4 needs/);
  assert.throws(() => nmLayout("op", [64], 0, { n: 2, m: 64 }, "indices"), /2:64 needs/);
  const l = nmLayout("op", [2, 12, 3], 1, { n: 2, m: 4 }, "combinatorial");
  assert.deepEqual([l.outer, l.d, l.inner, l.lanes, l.groups, l.kept, l.words], [
    2,
    12,
    3,
    6,
    3,
    6,
    1,
  ]);
  assert.deepEqual(l.valuesShape, [2, 6, 3]);
});

Deno.test("host pruning keeps the top N, ties to the lower index, in both encodings", () => {
  assert.deepEqual(topPositions([1, 3, 3, 2, 3], 2), [1, 2]);
  const x = randomArray(2 * 16 * 3, 5);
  for (const encoding of ["combinatorial", "indices"] as const) {
    const { nm, masked } = pruneHost(x, [2, 16, 3], 1, { n: 3, m: 8 }, encoding);
    assert.deepEqual(decodeHost(nm), masked);
    for (let lane = 0; lane < 6; lane++) assert.equal(keptPositions(nm, lane).length, 6);
  }
});

Deno.test("mask tables: every code's kept set, for the patterns with few codes", () => {
  assert.deepEqual(Array.from(maskTable({ n: 2, m: 4 })), [
    0b0011,
    0b0101,
    0b0110,
    0b1001,
    0b1010,
    0b1100,
  ]);
  const masks = maskTable({ n: 8, m: 16 });
  assert.equal(masks.length, 12870);
  masks.forEach((mask, code) => {
    const kept = Array.from({ length: 16 }, (_, c) => c).filter((c) => mask & (1 << c));
    assert.equal(kept.length, 8);
    assert.equal(rankOf(kept), code);
  });
  assert.ok(hasMaskTable({ n: 8, m: 16 }) && hasMaskTable({ n: 3, m: 7 }));
  assert.ok(!hasMaskTable({ n: 16, m: 32 }));
});
