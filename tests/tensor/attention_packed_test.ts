import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { causalAttention } from "../../src/tensor/ops/attention.ts";
import { ShapeError } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, gpuTest, randomArray } from "../support/check.ts";

/** Causal softmax attention of each sequence on its own rows, in float64. */
function packedReference(
  offsets: number[],
  D: number,
  heads: number,
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
): Float64Array {
  const dh = D / heads;
  const scale = 1 / Math.sqrt(dh);
  const out = new Float64Array(q.length);
  for (let s = 0; s + 1 < offsets.length; s++) {
    for (let h = 0; h < heads; h++) {
      for (let t = offsets[s]; t < offsets[s + 1]; t++) {
        const keys = [];
        for (let j = offsets[s]; j <= t; j++) keys.push(j);
        const scores = keys.map((j) => {
          let dot = 0;
          for (let d = 0; d < dh; d++) dot += q[t * D + h * dh + d] * k[j * D + h * dh + d];
          return dot * scale;
        });
        const max = Math.max(...scores);
        const weights = scores.map((x) => Math.exp(x - max));
        const sum = weights.reduce((a, b) => a + b, 0);
        keys.forEach((j, n) => {
          for (let d = 0; d < dh; d++) {
            out[t * D + h * dh + d] += (weights[n] / sum) * v[j * D + h * dh + d];
          }
        });
      }
    }
  }
  return out;
}

const offsetsOf = (lengths: number[]) => lengths.reduce((o, n) => [...o, o.at(-1)! + n], [0]);

const CASES = [
  { lengths: [1], D: 4, heads: 1 },
  { lengths: [3, 1, 17, 5], D: 8, heads: 2 },
  { lengths: [33, 2, 16], D: 6, heads: 2 },
  { lengths: [7, 7], D: 12, heads: 3 },
];

for (const { lengths, D, heads } of CASES) {
  gpuTest(`packed attention, lengths ${lengths}, D=${D}, ${heads} heads`, async (e) => {
    const offsets = offsetsOf(lengths);
    const rows = offsets.at(-1)!;
    const segments = {
      offsets: e.tensor(Int32Array.from(offsets), [offsets.length], "i32"),
      maxLength: Math.max(...lengths),
    };
    await checkOp(e, {
      name: "packed attention",
      inputs: [0, 1, 2].map((i) => ({
        data: randomArray(rows * D, 10 + i),
        shape: [rows, D],
        grad: true,
      })),
      gpu: ([q, k, v]) => causalAttention(q, k, v, { heads, segments }),
      ref: ([q, k, v]) => packedReference(offsets, D, heads, q, k, v),
      maxFdElements: 120,
    });
    segments.offsets.dispose();
  });
}

gpuTest("packed attention equals the padded, masked attention row for row", async (e) => {
  const lengths = [5, 1, 12, 9];
  const L = 12;
  const D = 8;
  const offsets = offsetsOf(lengths);
  const rows = offsets.at(-1)!;
  const packed = [0, 1, 2].map((i) => randomArray(rows * D, 20 + i));
  // Left-padded [B, L, D] copies of the same rows, padding masked.
  const padded = packed.map(() => new Float32Array(lengths.length * L * D));
  const mask = new Int32Array(lengths.length * L);
  lengths.forEach((n, b) => {
    for (let j = 0; j < n; j++) {
      mask[b * L + L - n + j] = 1;
      packed.forEach((src, i) =>
        padded[i].set(
          src.subarray((offsets[b] + j) * D, (offsets[b] + j + 1) * D),
          (b * L + L - n + j) * D,
        )
      );
    }
  });
  const outPacked = await causalAttention(
    ...packed.map((x) => e.tensor(x, [rows, D])) as [never, never, never],
    {
      heads: 2,
      segments: {
        offsets: e.tensor(Int32Array.from(offsets), [offsets.length], "i32"),
        maxLength: L,
      },
    },
  ).read();
  const outPadded = await causalAttention(
    ...padded.map((x) => e.tensor(x, [lengths.length, L, D])) as [never, never, never],
    { heads: 2, keyMask: e.tensor(mask, [lengths.length, L], "i32") },
  ).read();
  const rowsOfPadded = new Float32Array(rows * D);
  lengths.forEach((n, b) => {
    for (let j = 0; j < n; j++) {
      rowsOfPadded.set(
        outPadded.subarray((b * L + L - n + j) * D, (b * L + L - n + j + 1) * D),
        (offsets[b] + j) * D,
      );
    }
  });
  assertClose(outPacked, rowsOfPadded, "packed against padded", 1e-5, 1e-6);
});

gpuTest("packed attention refuses offsets that do not match its rows", (e) => {
  const q = e.tensor(randomArray(10 * 4, 1), [10, 4]);
  const bad = { offsets: e.tensor(Int32Array.from([0, 3, 9]), [3], "i32"), maxLength: 6 };
  assert.throws(() => causalAttention(q, q, q, { heads: 1, segments: bad }), ShapeError);
  const long = { offsets: e.tensor(Int32Array.from([0, 4, 10]), [3], "i32"), maxLength: 5 };
  assert.throws(() => causalAttention(q, q, q, { heads: 1, segments: long }), /longest/);
});
