import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import {
  GRU_CHOICE,
  GRU_VARIANTS,
  gruSequence,
  gruStepsPerPass,
} from "../../src/tensor/ops/gru.ts";
import { checkOp, gpuTest, randomArray } from "../support/check.ts";
import { gruReference, unpackRows } from "../support/gru_reference.ts";

interface Case {
  name: string;
  lengths: number[];
  steps: number;
  hidden: number;
  stepsPerPass?: number;
  /** gx packed [Σ lengths, 3H] rather than padded [B, T, 3H]. */
  packed?: boolean;
}

const CASES: Case[] = [
  { name: "one step, one unit", lengths: [1], steps: 1, hidden: 1 },
  {
    name: "hidden 70 (two units per thread), ragged lengths, 9 sequences (two workgroups of 8)",
    lengths: [5, 1, 3, 2, 4, 5, 0, 1, 3],
    steps: 5,
    hidden: 70,
  },
  {
    name: "hidden 12 (a multiple of 4: no padding; a part-empty tiled lane), 5 sequences",
    lengths: [3, 0, 4, 1, 4],
    steps: 4,
    hidden: 12,
  },
  {
    name: "empty and full sequences, passes of 2 steps",
    lengths: [0, 7, 4],
    steps: 7,
    hidden: 9,
    stepsPerPass: 2,
  },
  {
    name: "packed, hidden 6 (padded to 8 when tiled), 10 sequences, passes of 3 steps",
    lengths: [4, 1, 6, 2, 0, 5, 3, 3, 1, 6],
    steps: 6,
    hidden: 6,
    stepsPerPass: 3,
    packed: true,
  },
  { name: "packed, batch 1, length 1", lengths: [1], steps: 1, hidden: 8, packed: true },
  {
    name: "packed, rising lengths (run longest first: every sequence moves), passes of 3 steps",
    lengths: [1, 1, 2, 3, 3, 4, 5, 6, 7, 8],
    steps: 8,
    hidden: 5,
    stepsPerPass: 3,
    packed: true,
  },
  {
    name: "hidden 76 (W_hh over a uniform's 64 KiB: the tiled kernels read it from storage)",
    lengths: [3, 1, 2],
    steps: 3,
    hidden: 76,
    packed: true,
  },
  {
    name:
      "hidden 96 (partial sums would overflow workgroup memory: the tiled backward shares gradients)",
    lengths: [2, 3, 1],
    steps: 3,
    hidden: 96,
    packed: true,
  },
  {
    name: "packed, output steps past the longest sequence",
    lengths: [2, 3],
    steps: 5,
    hidden: 4,
    packed: true,
  },
];

for (const v of GRU_VARIANTS) {
  for (const c of CASES) {
    gpuTest(`gruSequence ${v.name}, ${c.name}: float64 and finite differences`, async (e) => {
      const B = c.lengths.length;
      const H = c.hidden;
      const lengths = Int32Array.from(c.lengths);
      const rows = c.packed ? lengths.reduce((a, l) => a + l, 0) : B * c.steps;
      const bias = { shape: [3 * H], grad: true };
      await checkOp(e, {
        name: `gru ${c.name}`,
        inputs: [
          {
            data: randomArray(rows * 3 * H, 1, -2, 2),
            shape: c.packed ? [rows, 3 * H] : [B, c.steps, 3 * H],
            grad: true,
          },
          { data: randomArray(3 * H * H, 2, -0.8, 0.8), shape: [3 * H, H], grad: true },
          { data: randomArray(3 * H, 3, -0.5, 0.5), ...bias },
          { data: randomArray(3 * H, 4, -0.5, 0.5), ...bias },
        ],
        gpu: ([gx, w, bi, bh]) =>
          gruSequence(gx, w, bi, bh, lengths, {
            steps: c.packed ? c.steps : undefined,
            stepsPerPass: c.stepsPerPass,
            variant: v.name,
          }),
        ref: ([gx, w, bi, bh]) =>
          gruReference(
            c.packed ? unpackRows(gx, lengths, c.steps, 3 * H) : gx,
            w,
            bi,
            bh,
            lengths,
            c.steps,
            H,
          ),
        maxFdElements: 120,
      });
    });
  }
}

Deno.test("tiled gru passes keep each invocation's product loops under the loop budget", () => {
  const tiled = GRU_VARIANTS.find((v) => v.layout === "tiled")!;
  for (const h of [4, 64, 72, 256]) {
    for (const backward of [false, true]) {
      const per = gruStepsPerPass(h, backward, tiled);
      assert.ok(per >= 1);
      // The product's loop runs ⌈H/4⌉ (forward) or 3⌈H/4⌉ (backward) times a step, unrolled inside.
      assert.ok(per * (backward ? 3 : 1) * Math.ceil(h / 4) <= 32768);
    }
  }
});

gpuTest("a software adapter runs the tiled variant, a GPU the lanes one", (e) => {
  const software = /\[software/.test(e.gpu.adapterName);
  assert.equal(GRU_CHOICE.of(e).layout, software ? "tiled" : "lanes");
});

Deno.test("gru passes keep each invocation under the loop budget", () => {
  for (const h of [1, 64, 65, 512]) {
    for (const backward of [false, true]) {
      const per = gruStepsPerPass(h, backward);
      assert.ok(per >= 1);
      assert.ok(per * Math.ceil(h / 64) * (backward ? 3 : 1) * h <= 32768);
    }
  }
});

gpuTest("gruSequence rejects a length past the steps, naming the sequence", (e) => {
  const gx = e.zeros([2, 3, 6]);
  assert.throws(
    () => gruSequence(gx, e.zeros([6, 2]), e.zeros([6]), e.zeros([6]), Int32Array.from([3, 4])),
    /length 4 of sequence 1/,
  );
});

gpuTest("gruSequence rejects a packed gx whose rows are not the live steps", (e) => {
  const b = e.zeros([6]);
  assert.throws(
    () => gruSequence(e.zeros([6, 6]), e.zeros([6, 2]), b, b, Int32Array.from([3, 4])),
    /Σ lengths = 7/,
  );
});
