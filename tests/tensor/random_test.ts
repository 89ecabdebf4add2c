import assert from "node:assert/strict";
import { philox2x32, randomBits, randomInt, randomUniform } from "../../src/tensor/random.ts";
import {
  randomBitsTensor,
  randomIntTensor,
  randomUniformTensor,
} from "../../src/tensor/ops/random.ts";
import "../../src/tensor/ops/mod.ts";
import { gpuTest } from "../support/check.ts";
import { SMALL_BINDING_BYTES, smallBindingTest } from "../support/small_bindings.ts";

Deno.test("philox2x32-10 matches the Random123 known-answer vectors", () => {
  assert.deepEqual(philox2x32(0, 0, 0), [0xff1dae59, 0x6cd10df2]);
  assert.deepEqual(philox2x32(0xffffffff, 0xffffffff, 0xffffffff), [0x2c3f628b, 0xab4fd7ad]);
  assert.deepEqual(philox2x32(0x243f6a88, 0x85a308d3, 0x13198a2e), [0xdd7ce038, 0xf62a4c12]);
});

const counters: [number, number][] = [[0, 0], [1, 7], [0xffffffff, 0xffffffff], [
  12345,
  0x80000000,
]];

gpuTest("GPU random bits equal the host generator on many counters", async (e) => {
  const n = 50_003;
  for (const [seed, stream] of counters) {
    const got = (await randomBitsTensor(e, n, seed, stream).read()) as Uint32Array;
    for (let i = 0; i < n; i++) {
      const [x, y] = randomBits(seed, stream, i);
      if (got[2 * i] !== x || got[2 * i + 1] !== y) {
        assert.fail(
          `seed ${seed} stream ${stream} index ${i}: GPU ${got[2 * i]},${got[2 * i + 1]}` +
            ` host ${x},${y}`,
        );
      }
    }
  }
});

gpuTest("GPU uniform floats equal the host generator bit for bit", async (e) => {
  const shape = [313, 7];
  const got = await randomUniformTensor(e, shape, 42, 3).readF32();
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== randomUniform(42, 3, i)) assert.fail(`index ${i}: ${got[i]}`);
    if (!(got[i] >= 0 && got[i] < 1)) assert.fail(`index ${i}: ${got[i]} outside [0, 1)`);
  }
});

const ranges: [number, number][] = [
  [0, 1],
  [0, 97],
  [-5, 3],
  [-(2 ** 31), 2 ** 31 - 1],
  [0, 2 ** 31 - 1],
  [-1_000_000, 1_000_003],
];

for (const [lo, hi] of ranges) {
  gpuTest(`GPU integers in [${lo}, ${hi}) equal the host generator`, async (e) => {
    const n = 20_011;
    const got = (await randomIntTensor(e, [n], lo, hi, 9, 1).read()) as Int32Array;
    for (let i = 0; i < n; i++) {
      const want = randomInt(9, 1, i, lo, hi);
      if (got[i] !== want) assert.fail(`index ${i}: GPU ${got[i]}, host ${want}`);
      if (got[i] < lo || got[i] >= hi) assert.fail(`index ${i}: ${got[i]} outside [${lo}, ${hi})`);
    }
  });
}

smallBindingTest(
  "windows of a tensor larger than one binding draw their global counters",
  async (e) => {
    const n = (3 * SMALL_BINDING_BYTES) / 4 + 17;
    const got = await randomUniformTensor(e, [n], 5, 8).readF32();
    for (let i = 0; i < n; i++) {
      if (got[i] !== randomUniform(5, 8, i)) assert.fail(`index ${i}: ${got[i]}`);
    }
    const bits = (await randomBitsTensor(e, n, 5, 8).read()) as Uint32Array;
    for (let i = 0; i < n; i++) {
      if (bits[2 * i] !== randomBits(5, 8, i)[0]) assert.fail(`bits index ${i}`);
    }
  },
);

/** χ² of a histogram against the uniform distribution. */
function chiSquare(counts: number[], total: number): number {
  const expected = total / counts.length;
  return counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
}

gpuTest("uniform integers pass a chi-square test over 1M draws", async (e) => {
  const bins = 97;
  const n = 1_000_000;
  const got = (await randomIntTensor(e, [n], 0, bins, 2024, 0).read()) as Int32Array;
  const counts = new Array(bins).fill(0);
  for (const v of got) counts[v]++;
  // 96 degrees of freedom: mean 96, sd 13.9; [50, 160] is a two-sided bound at p ≈ 1e-5.
  const chi2 = chiSquare(counts, n);
  assert.ok(chi2 > 50 && chi2 < 160, `chi-square ${chi2.toFixed(1)} over ${bins} bins`);
});

Deno.test("uniform floats have the moments of U[0, 1) and streams are independent", () => {
  const n = 200_000;
  let sum = 0, sumSq = 0, cross = 0;
  for (let i = 0; i < n; i++) {
    const u = randomUniform(1, 0, i);
    const v = randomUniform(1, 1, i);
    sum += u;
    sumSq += u * u;
    cross += (u - 0.5) * (v - 0.5);
  }
  // Standard errors: mean 6.5e-4, E[u²] 6.7e-4, covariance 1.9e-4; bounds at 5 of them.
  assert.ok(Math.abs(sum / n - 0.5) < 3.3e-3, `mean ${sum / n}`);
  assert.ok(Math.abs(sumSq / n - 1 / 3) < 3.4e-3, `E[u²] ${sumSq / n}`);
  assert.ok(Math.abs(cross / n) < 1e-3, `covariance of streams 0 and 1: ${cross / n}`);
});

Deno.test("host randomInt rejects an empty range", () => {
  assert.throws(() => randomInt(0, 0, 0, 5, 5), RangeError);
});
