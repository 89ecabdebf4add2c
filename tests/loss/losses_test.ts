import assert from "node:assert/strict";
import {
  binaryCrossEntropy,
  fullCrossEntropy,
  gbceBeta,
  type Negatives,
  sampledCrossEntropy,
} from "../../src/loss/losses.ts";
import { checkOp, gpuTest, randomArray, randomInts } from "../support/check.ts";

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

/** Row-wise logits [target, negatives] in float64 with collisions at −∞. */
function logitsRef(
  h: Float64Array,
  table: Float64Array,
  d: number,
  targets: Int32Array,
  neg: Negatives,
  shift = 0,
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
      row.push(id === t ? -Infinity : dot(n, id) + shift);
    }
    return row;
  });
}

function lse(row: number[]): number {
  const m = Math.max(...row);
  return m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
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
      ref: ([hh, tt]) => {
        let total = 0;
        for (let r = 0; r < n; r++) {
          const row = Array.from({ length: items + 1 }, (_, i) => {
            let dot = 0;
            for (let c = 0; c < d; c++) dot += hh[r * d + c] * tt[i * d + c];
            return dot;
          });
          total += lse(row) - row[targets[r]];
        }
        return Float64Array.of(total / n);
      },
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
            const rows = logitsRef(hh, tt, d, targets, neg, shift);
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
});
