import assert from "node:assert/strict";
import {
  binaryCrossEntropy,
  fullCrossEntropy,
  gbceBeta,
  type Negatives,
  sampledCrossEntropy,
} from "../../src/loss/losses.ts";
import {
  aliasProbabilities,
  drawNegatives,
  logQOf,
  type NegativeSpec,
} from "../../src/loss/negatives.ts";
import { popularityAlias } from "../../src/data/samplers.ts";
import { checkOp, gpuTest, randomArray, randomInts } from "../support/check.ts";

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

/** Row-wise logits [target, negatives] in float64 with collisions at −∞. */
function logitsRef(
  h: Float64Array,
  table: Float64Array,
  d: number,
  targets: Int32Array,
  neg: Negatives,
  shift: (id: number) => number = () => 0,
) {
  const dot = (n: number, item: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += h[n * d + c] * table[item * d + c];
    return s;
  };
  return Array.from(targets, (t, n) => {
    const row = [dot(n, t)];
    for (let j = 0; j < neg.k; j++) {
      const id = neg.ids[neg.shared ? j : n * neg.k + j];
      row.push(id === t ? -Infinity : dot(n, id) + shift(id));
    }
    return row;
  });
}

function lse(row: number[]): number {
  const m = Math.max(...row);
  return m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
}

/** Mean over positions of LSE over items first..C − the target's logit, in float64. */
function fullRef(
  h: Float64Array,
  table: Float64Array,
  d: number,
  targets: Int32Array,
  first = 1,
): number {
  const items = table.length / d - 1;
  let total = 0;
  targets.forEach((t, r) => {
    const row = Array.from({ length: items + 1 - first }, (_, j) => {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += h[r * d + c] * table[(first + j) * d + c];
      return dot;
    });
    total += lse(row) - row[t - first];
  });
  return total / targets.length;
}

const cases = [
  { n: 1, d: 3, items: 4, k: 1 },
  { n: 7, d: 5, items: 13, k: 6 },
  { n: 19, d: 8, items: 30, k: 17 },
  { n: 5, d: 4, items: 11, k: 3 },
];

for (const { n, d, items, k } of cases) {
  const h = randomArray(n * d, n + 1);
  const table = randomArray((items + 1) * d, n + 2);
  const targets = randomInts(n, n + 3, 1, items + 1);
  const inputs = [
    { data: h, shape: [n, d], grad: true },
    { data: table, shape: [items + 1, d], grad: true },
  ];

  gpuTest(`full CE N=${n} C=${items} matches the materialised float64 loss`, async (e) => {
    await checkOp(e, {
      name: "full CE",
      inputs,
      gpu: ([ht, tt]) => fullCrossEntropy(ht, tt, targets),
      ref: ([hh, tt]) => Float64Array.of(fullRef(hh, tt, d, targets)),
    });
  });

  for (const shared of [false, true]) {
    const ids = randomInts(shared ? k : n * k, n + 4, 1, items + 1);
    ids[0] = targets[0]; // one collision, masked
    const neg: Negatives = { ids, k, shared };
    const label = shared ? "shared" : "per-position";
    for (const logQ of [false, true]) {
      gpuTest(`CE- ${label}${logQ ? " logQ" : ""} N=${n} K=${k} matches float64`, async (e) => {
        const shift = logQ ? Math.log((items - 1) / k) : 0;
        await checkOp(e, {
          name: "sampled CE",
          inputs,
          gpu: ([ht, tt]) => sampledCrossEntropy(ht, tt, targets, neg, { logQ }),
          ref: ([hh, tt]) => {
            const rows = logitsRef(hh, tt, d, targets, neg, () => shift);
            return Float64Array.of(rows.reduce((s, r) => s + lse(r) - r[0], 0) / n);
          },
        });
      });
    }
    for (const beta of [1, gbceBeta(items, k, 0.75)]) {
      gpuTest(`BCE ${label} β=${beta.toFixed(3)} N=${n} K=${k} matches float64`, async (e) => {
        await checkOp(e, {
          name: "BCE",
          inputs,
          gpu: ([ht, tt]) => binaryCrossEntropy(ht, tt, targets, neg, beta),
          ref: ([hh, tt]) => {
            const rows = logitsRef(hh, tt, d, targets, neg);
            const total = rows.reduce(
              (s, r) =>
                s + beta * softplus(-r[0]) +
                r.slice(1).reduce((a, v) => a + (Number.isFinite(v) ? softplus(v) : 0), 0),
              0,
            );
            return Float64Array.of(total / n);
          },
        });
      });
    }
  }
}

gpuTest(
  "full CE softmaxes over items 1..C: the padding row gets no share and no gradient",
  async (e) => {
    // C = 5 with a padding row as large as the items: counting it would add 0.16 to the loss.
    const [n, d, items] = [6, 4, 5];
    const h = randomArray(n * d, 71);
    const table = randomArray((items + 1) * d, 72);
    const targets = randomInts(n, 73, 1, items + 1);
    const [h64, table64] = [Float64Array.from(h), Float64Array.from(table)];
    const want = fullRef(h64, table64, d, targets);
    assert.ok(
      Math.abs(fullRef(h64, table64, d, targets, 0) - want) > 0.1,
      "the case tells 0..C apart",
    );
    const [loss, grad] = await e.tidyAsync(async () => {
      const ht = e.tensor(h, [n, d]);
      const tt = e.tensor(table, [items + 1, d]);
      tt.requiresGrad = true;
      e.startTape();
      const loss = fullCrossEntropy(ht, tt, targets);
      const value = (await loss.read())[0];
      e.backward(loss);
      return [value, await tt.grad!.read()];
    });
    assert.ok(Math.abs(loss - want) < 1e-5 * want, `${loss} vs ${want}`);
    assert.deepEqual([...grad.subarray(0, d)], [0, 0, 0, 0], "row 0's gradient");
    assert.ok(grad.subarray(d).some((g) => g !== 0));
  },
);

gpuTest("CE- with popularity negatives and logQ adds −log(K·q_id) per negative", async (e) => {
  const [n, d, items, k] = [9, 5, 17, 6];
  const counts = Float64Array.from(
    { length: items + 1 },
    (_, i) => (i === 0 ? 0 : 1 + (i % 4) ** 3),
  );
  const spec: NegativeSpec = {
    kind: "popularity",
    k,
    items,
    seed: 12,
    alias: popularityAlias(counts, items),
  };
  const ids = drawNegatives(spec, n);
  const targets = randomInts(n, 81, 1, items + 1);
  ids[3] = targets[0]; // a collision, masked
  const neg: Negatives = { ids, k, shared: false, logQ: logQOf(spec) };
  const q = aliasProbabilities(spec.alias!);
  await checkOp(e, {
    name: "popularity CE- logQ",
    inputs: [
      { data: randomArray(n * d, 82), shape: [n, d], grad: true },
      { data: randomArray((items + 1) * d, 83), shape: [items + 1, d], grad: true },
    ],
    gpu: ([ht, tt]) => sampledCrossEntropy(ht, tt, targets, neg, { logQ: true }),
    ref: ([hh, tt]) => {
      const rows = logitsRef(hh, tt, d, targets, neg, (id) => -Math.log(k * q[id - 1]));
      return Float64Array.of(rows.reduce((s, r) => s + lse(r) - r[0], 0) / n);
    },
  });
});

Deno.test("gBCE's β is 1 when every other item is a negative and α·t + (1−t) in general", () => {
  assert.ok(Math.abs(gbceBeta(101, 100, 0.75) - 1) < 1e-12);
  const alpha = 10 / 100;
  assert.ok(Math.abs(gbceBeta(101, 10, 0.5) - alpha * (0.5 * (1 - 1 / alpha) + 1 / alpha)) < 1e-12);
});

gpuTest("losses refuse mismatched shapes, naming them", (e) => {
  const h = e.tensor(new Float32Array(6), [2, 3]);
  const table = e.tensor(new Float32Array(20), [5, 4]);
  assert.throws(
    () => fullCrossEntropy(h, table, new Int32Array([1, 2])),
    /h \[2, 3\], table \[5, 4\]/,
  );
  const h4 = e.tensor(new Float32Array(8), [2, 4]);
  assert.throws(
    () => fullCrossEntropy(h4, table, new Int32Array([1, 0])),
    /ce: target 0 at 1 is outside 1..4/,
  );
  const neg = { ids: new Int32Array([2, 0]), k: 1, shared: false };
  assert.throws(
    () => sampledCrossEntropy(h4, table, new Int32Array([1, 2]), neg),
    /sampled logits: negative 0 at 1 is outside 1..4/,
  );
});
