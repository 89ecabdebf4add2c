import assert from "node:assert/strict";
import { seededRandom } from "../../src/tensor/random.ts";
import {
  buildAliasTable,
  drawAlias,
  makeSampler,
  popularityWeights,
} from "../../src/data/samplers.ts";
import { aliasProbabilities, drawNegatives, logQShift } from "../../src/loss/negatives.ts";

/** Pearson chi-square of observed counts against expected probabilities. */
function chiSquare(observed: ArrayLike<number>, expected: ArrayLike<number>, n: number): number {
  let x = 0;
  for (let i = 0; i < observed.length; i++) {
    if (expected[i] === 0) {
      assert.equal(observed[i], 0, `index ${i} has probability 0 but was drawn`);
      continue;
    }
    x += (observed[i] - n * expected[i]) ** 2 / (n * expected[i]);
  }
  return x;
}

/** Far beyond the 99.9% quantile of chi-square(df) (mean df, sd sqrt(2 df)). */
function bound(df: number): number {
  return df + 6 * Math.sqrt(2 * df);
}

function histogram(ids: Int32Array, size: number): Float64Array {
  const h = new Float64Array(size);
  for (const id of ids) h[id]++;
  return h;
}

Deno.test("alias table is exact on small distributions", () => {
  for (const w of [[1, 2, 3, 4], [0, 5, 0, 1], [7], [1, 1, 1], [0.001, 1000, 3, 0, 2]]) {
    const total = w.reduce((a, b) => a + b, 0);
    const p = aliasProbabilities(buildAliasTable(w));
    w.forEach((wi, i) => assert.ok(Math.abs(p[i] - wi / total) < 1e-7, `${w}: ${p}`));
  }
  const { prob, alias } = buildAliasTable([1, 2, 3, 4]);
  assert.equal(prob.length, 4);
  assert.equal(alias.length, 4);
  for (let i = 0; i < 4; i++) assert.ok(prob[i] >= 0 && prob[i] <= 1);
});

Deno.test("alias table is exact on a large skewed distribution", () => {
  const random = seededRandom(3);
  const w = Float64Array.from({ length: 5000 }, (_, i) => (random() < 0.1 ? 0 : 1 / (i + 1)));
  const total = w.reduce((a, b) => a + b, 0);
  const p = aliasProbabilities(buildAliasTable(w));
  let worst = 0;
  w.forEach((wi, i) => (worst = Math.max(worst, Math.abs(p[i] - wi / total))));
  assert.ok(worst < 1e-7, `worst error ${worst}`);
});

Deno.test("alias draws follow the weights (chi-square)", () => {
  const w = [1, 2, 3, 4, 0, 10];
  const table = buildAliasTable(w);
  const random = seededRandom(11);
  const n = 200_000;
  const counts = new Float64Array(w.length);
  for (let i = 0; i < n; i++) counts[drawAlias(table, random)]++;
  const expected = w.map((x) => x / 20);
  assert.ok(chiSquare(counts, expected, n) < bound(4));
});

Deno.test("alias table rejects bad weights", () => {
  assert.throws(() => buildAliasTable([0, 0]), RangeError);
  assert.throws(() => buildAliasTable([1, -1]), RangeError);
  assert.throws(() => buildAliasTable([1, NaN]), RangeError);
  assert.throws(() => buildAliasTable([]), RangeError);
});

Deno.test("uniform per position: [N, K] ids in 1..items, uniform (chi-square)", () => {
  const items = 50;
  const s = makeSampler({ kind: "uniform", items, k: 64, seed: 1 });
  assert.deepEqual(s.shape(100), [100, 64]);
  const ids = s.sample(3000, 0);
  assert.equal(ids.length, 3000 * 64);
  const h = histogram(ids, items + 1);
  assert.equal(h[0], 0);
  const expected = Array.from({ length: items + 1 }, (_, i) => (i === 0 ? 0 : 1 / items));
  assert.ok(chiSquare(h, expected, ids.length) < bound(items - 1));
  // Rows differ (independent per position), and the seed makes it reproducible.
  assert.notDeepEqual(Array.from(ids.subarray(0, 64)), Array.from(ids.subarray(64, 128)));
  const again = makeSampler({ kind: "uniform", items, k: 64, seed: 1 }).sample(3000, 0);
  assert.deepEqual(again, ids);
});

Deno.test("shared negatives: [K] per batch regardless of rows, fresh each batch", () => {
  const s = makeSampler({ kind: "shared", items: 1000, k: 256, seed: 2 });
  assert.deepEqual(s.shape(4096), [256]);
  const a = s.sample(4096, 0);
  const b = s.sample(10, 1);
  assert.equal(a.length, 256);
  assert.equal(b.length, 256);
  assert.notDeepEqual(a, b);
  for (const id of a) assert.ok(id >= 1 && id <= 1000);
  // Many batches together are uniform.
  const all = new Int32Array(256 * 500);
  for (let i = 0; i < 500; i++) all.set(s.sample(1, i), i * 256);
  const h = histogram(all, 1001).subarray(1);
  assert.ok(chiSquare(h, new Float64Array(1000).fill(1 / 1000), all.length) < bound(999));
});

Deno.test("popularity sampler: ∝ count^alpha; alpha 0 is uniform; unseen items never drawn", () => {
  const counts = [0, 10, 0, 40, 5, 45]; // index = item id; item 2 never seen
  const items = 5;
  for (const alpha of [1, 0.5]) {
    const s = makeSampler({ kind: "popularity", items, k: 8, seed: 5, counts, alpha });
    assert.deepEqual(s.shape(3), [3, 8]);
    const ids = s.sample(25_000, 0);
    const w = popularityWeights(counts, items, alpha);
    const total = w.reduce((a, b) => a + b, 0);
    const expected = [0, ...Array.from(w, (x) => x / total)];
    assert.ok(chiSquare(histogram(ids, items + 1), expected, ids.length) < bound(3));
  }
  const flat = makeSampler({ kind: "popularity", items, k: 10, seed: 5, counts, alpha: 0 });
  const ids = flat.sample(20_000, 0);
  const expected = [0, ...new Array(items).fill(1 / items)];
  assert.ok(chiSquare(histogram(ids, items + 1), expected, ids.length) < bound(items - 1));
  assert.throws(() => makeSampler({ kind: "popularity", items, k: 1, seed: 0 }), /counts/);
});

Deno.test("a step's draw is a pure function of the run's seed and the step", () => {
  for (const kind of ["uniform", "shared", "popularity"] as const) {
    const make = (seed: number) =>
      makeSampler({ kind, items: 50, k: 7, seed, counts: new Float64Array(51).fill(2) });
    const s = make(1);
    const a = s.sample(3, 42);
    s.sample(3, 7);
    assert.deepEqual(s.sample(3, 42), a, kind);
    assert.deepEqual(make(1).sample(3, 42), a, kind);
    assert.notDeepEqual(s.sample(3, 43), a, kind);
    assert.notDeepEqual(make(2).sample(3, 42), a, kind);
    assert.deepEqual(s.sample(3, 42), drawNegatives(s.spec(42), 3), kind);
  }
});

Deno.test("each sampler's negatives carry its own logQ correction", () => {
  const [items, k] = [40, 8];
  const counts = Float64Array.from({ length: items + 1 }, (_, i) => (i === 0 ? 0 : 1 + (i % 7)));
  for (const kind of ["uniform", "shared"] as const) {
    const neg = makeSampler({ kind, items, k, seed: 3 }).negatives(5, 2);
    assert.deepEqual(neg.logQ, { shift: Math.log((items - 1) / k) }, kind);
    assert.equal(neg.shared, kind === "shared");
  }
  const s = makeSampler({ kind: "popularity", items, k, seed: 3, counts, alpha: 0.5 });
  const neg = s.negatives(5, 2);
  assert.deepEqual(neg.ids, s.sample(5, 2));
  assert.equal(neg.k, k);
  const w = popularityWeights(counts, items, 0.5);
  const total = w.reduce((a, b) => a + b, 0);
  // −log(K·q_id) with q the sampler's probability of drawing id.
  for (const id of neg.ids) {
    const want = -Math.log((k * w[id - 1]) / total);
    assert.ok(Math.abs(logQShift(neg.logQ!, id) - want) < 1e-6, `id ${id}`);
  }
});
