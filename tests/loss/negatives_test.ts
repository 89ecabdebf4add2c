import assert from "node:assert/strict";
import {
  aliasProbabilities,
  drawNegatives,
  drawNegativesGpu,
  NEGATIVE_STREAM,
  negativeId,
  type NegativeSpec,
} from "../../src/loss/negatives.ts";
import { popularityAlias } from "../../src/data/samplers.ts";
import { mulHi32, randomBits, randomInt } from "../../src/tensor/random.ts";
import { gpuTest } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

/** Item counts with a heavy head and a long tail (index 0 is padding). */
function skewedCounts(items: number): Float64Array {
  const counts = new Float64Array(items + 1);
  for (let i = 1; i <= items; i++) counts[i] = Math.floor(1000 / i) + (i % 3);
  return counts;
}

function specs(items: number, k: number, seed: number): NegativeSpec[] {
  return [
    { kind: "uniform", k, items, seed },
    { kind: "shared", k, items, seed },
    { kind: "popularity", k, items, seed, alias: popularityAlias(skewedCounts(items), items) },
  ];
}

/** Pearson's statistic of observed counts against expected probabilities. */
function chiSquare(
  observed: Float64Array,
  probabilities: ArrayLike<number>,
  draws: number,
): number {
  let chi = 0;
  for (let i = 0; i < observed.length; i++) {
    const want = probabilities[i] * draws;
    chi += (observed[i] - want) ** 2 / want;
  }
  return chi;
}

/** A bound that a χ² with `df` degrees of freedom exceeds with negligible probability. */
function chiSquareBound(df: number): number {
  return df + 6 * Math.sqrt(2 * df);
}

Deno.test("host negatives follow the recipe keyed by (seed, position, slot)", () => {
  const [uniform, shared, popularity] = specs(97, 5, 1234);
  assert.equal(negativeId(uniform, 3, 2), randomInt(1234, NEGATIVE_STREAM, 17, 1, 98));
  assert.equal(negativeId(shared, 3, 2), negativeId(shared, 0, 2));
  assert.equal(negativeId(shared, 0, 2), randomInt(1234, NEGATIVE_STREAM, 2, 1, 98));
  const [x, y] = randomBits(1234, NEGATIVE_STREAM, 17);
  const column = mulHi32(x, 97);
  const table = popularity.alias!;
  const keep = (y >>> 8) / 2 ** 24 < table.prob[column];
  assert.equal(negativeId(popularity, 3, 2), (keep ? column : table.alias[column]) + 1);
  assert.deepEqual(drawNegatives(shared, 50), drawNegatives(shared, 1));
  assert.equal(drawNegatives(uniform, 4).length, 20);
});

for (
  const [items, k, positions, seed] of [[1, 3, 5, 0], [1000, 7, 301, 77], [5, 64, 33, 0xffffffff]]
) {
  gpuTest(`GPU negatives equal the host's (C=${items}, K=${k}, N=${positions})`, async (e) => {
    for (const spec of specs(items, k, seed)) {
      const got = await drawNegativesGpu(e, spec, positions).read();
      assert.deepEqual(got, drawNegatives(spec, positions), spec.kind);
    }
  });
}

gpuTest("GPU negatives bound in windows draw their global counters", async (e) => {
  await withBindingLimit(e, 4096, async () => {
    for (const spec of specs(500, 9, 5)) {
      const got = await drawNegativesGpu(e, spec, 301).read();
      assert.deepEqual(got, drawNegatives(spec, 301), spec.kind);
    }
    const spec = specs(600, 9, 5)[2];
    assert.throws(() => drawNegativesGpu(e, spec, 2), /alias table of 600 items \(4800 bytes\)/);
  });
});

Deno.test("uniform negatives cover 1..C evenly", () => {
  const items = 50;
  const ids = drawNegatives({ kind: "uniform", k: 10, items, seed: 9 }, 2000);
  const observed = new Float64Array(items);
  let mean = 0;
  for (const id of ids) {
    assert.ok(id >= 1 && id <= items, `id ${id}`);
    observed[id - 1]++;
    mean += id / ids.length;
  }
  const sd = Math.sqrt((items * items - 1) / 12 / ids.length);
  assert.ok(Math.abs(mean - (items + 1) / 2) < 5 * sd, `mean ${mean}`);
  const chi = chiSquare(observed, new Float64Array(items).fill(1 / items), ids.length);
  assert.ok(chi < chiSquareBound(items - 1), `χ² ${chi}`);
});

Deno.test("popularity negatives follow the weights", () => {
  const items = 40;
  const counts = skewedCounts(items);
  const alias = popularityAlias(counts, items, 0.75);
  const weights = Array.from({ length: items }, (_, i) => counts[i + 1] ** 0.75);
  const total = weights.reduce((s, w) => s + w, 0);
  const probabilities = weights.map((w) => w / total);
  const implied = aliasProbabilities(alias);
  probabilities.forEach((p, i) => assert.ok(Math.abs(implied[i] - p) < 1e-6, `item ${i + 1}`));
  const spec: NegativeSpec = { kind: "popularity", k: 16, items, seed: 31, alias };
  const ids = drawNegatives(spec, 2500);
  const observed = new Float64Array(items);
  for (const id of ids) observed[id - 1]++;
  const chi = chiSquare(observed, probabilities, ids.length);
  assert.ok(chi < chiSquareBound(items - 1), `χ² ${chi}`);
});

Deno.test("bad negative specs are refused with the reason", () => {
  const uniform: NegativeSpec = { kind: "uniform", k: 4, items: 10, seed: 1 };
  assert.throws(() => drawNegatives({ ...uniform, k: 0 }, 3), /drawNegatives: K must be ≥ 1/);
  assert.throws(() => drawNegatives({ ...uniform, seed: -1 }, 3), /seed must be an integer/);
  assert.throws(
    () => drawNegatives({ ...uniform, k: 2 ** 16 }, 2 ** 16 + 1),
    /65537 positions × K=65536 negatives exceed/,
  );
  assert.throws(() => negativeId({ ...uniform, k: 2 ** 16 }, 2 ** 16, 0), /outside \[0, 2\^32\)/);
  assert.throws(
    () => drawNegatives({ ...uniform, kind: "popularity" }, 3),
    /alias table over 10 items, got none/,
  );
  const alias = popularityAlias(skewedCounts(9), 9);
  assert.throws(
    () => drawNegatives({ ...uniform, kind: "popularity", alias }, 3),
    /alias table over 10 items, got 9/,
  );
});
