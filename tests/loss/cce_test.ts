import assert from "node:assert/strict";
import { cceRows, cceSampledRows } from "../../src/loss/cce.ts";
import { fullCrossEntropy, type Negatives, sampledCrossEntropy } from "../../src/loss/losses.ts";
import {
  aliasProbabilities,
  drawNegatives,
  logQOf,
  type NegativeKind,
  type NegativeSpec,
} from "../../src/loss/negatives.ts";
import { popularityAlias } from "../../src/data/samplers.ts";
import { scale } from "../../src/tensor/ops/elementwise.ts";
import { sum } from "../../src/tensor/ops/reduce.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, checkOp, gpuTest, randomArray, randomInts } from "../support/check.ts";
import { withBindingLimit } from "../support/small_bindings.ts";

/** Loss rows and gradients, from the GPU or from a float64 reference. */
interface Result {
  loss: ArrayLike<number>;
  dh: ArrayLike<number>;
  dtable: ArrayLike<number>;
}

/** What the float64 references read: h [n, d], table [items + 1, d], targets and dloss [n]. */
interface Inputs {
  n: number;
  d: number;
  items: number;
  h: ArrayLike<number>;
  table: ArrayLike<number>;
  targets: Int32Array;
  dloss: ArrayLike<number>;
}

interface Problem extends Inputs {
  h: Float32Array;
  table: Float32Array;
  dloss: Float32Array;
}

function problem(n: number, d: number, items: number, seed: number, scale = 1): Problem {
  return {
    n,
    d,
    items,
    h: randomArray(n * d, seed, -scale, scale),
    table: randomArray((items + 1) * d, seed + 1, -scale, scale),
    targets: randomInts(n, seed + 2, 1, items + 1),
    dloss: randomArray(n, seed + 3, -0.5, 1.5),
  };
}

type LossOp = (h: Tensor, table: Tensor, targets: Tensor) => Tensor;

/** Runs the op with both inputs requiring grad and backward seeded with the problem's dloss. */
function runGpu(e: Engine, p: Problem, op: LossOp): Promise<Result> {
  return e.tidyAsync(async () => {
    const h = e.tensor(p.h, [p.n, p.d]);
    const table = e.tensor(p.table, [p.items + 1, p.d]);
    h.requiresGrad = table.requiresGrad = true;
    e.startTape();
    const rows = op(h, table, e.tensor(p.targets, [p.n]));
    const loss = await rows.readF32();
    e.backward(rows, e.tensor(p.dloss, [p.n]));
    const result = { loss, dh: await h.grad!.readF32(), dtable: await table.grad!.readF32() };
    h.zeroGrad();
    table.zeroGrad();
    return result;
  });
}

/**
 * Float64 loss rows and gradients of softmax CE over, for each position n, the items of
 * `candidates(n)`: [item, logit offset] pairs, the target first.
 */
function reference(p: Inputs, candidates: (n: number) => [number, number][]): Result {
  const { n, d } = p;
  const loss = new Float64Array(n);
  const dh = new Float64Array(n * d);
  const dtable = new Float64Array((p.items + 1) * d);
  const dot = (r: number, item: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += p.h[r * d + c] * p.table[item * d + c];
    return s;
  };
  for (let r = 0; r < n; r++) {
    const list = candidates(r);
    const logits = list.map(([item, offset]) => dot(r, item) + offset);
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((s, v) => s + Math.exp(v - m), 0));
    loss[r] = lse - logits[0];
    list.forEach(([item], j) => {
      const g = p.dloss[r] * (Math.exp(logits[j] - lse) - (j === 0 ? 1 : 0));
      for (let c = 0; c < d; c++) {
        dh[r * d + c] += g * p.table[item * d + c];
        dtable[item * d + c] += g * p.h[r * d + c];
      }
    });
  }
  return { loss, dh, dtable };
}

/** The logQ correction of `spec`'s draws in float64: −log(K·q_id), q uniform over C − 1 items. */
function logQReference(spec: NegativeSpec): (id: number) => number {
  if (spec.kind !== "popularity") return () => Math.log(Math.max(spec.items - 1, 1) / spec.k);
  const q = aliasProbabilities(spec.alias!);
  return (id) => -Math.log(spec.k * q[id - 1]);
}

function sampledReference(p: Inputs, spec: NegativeSpec, logQ: boolean): Result {
  const ids = drawNegatives(spec, p.n);
  const shift = logQ ? logQReference(spec) : () => 0;
  return reference(p, (r) => {
    const list: [number, number][] = [[p.targets[r], 0]];
    for (let j = 0; j < spec.k; j++) {
      const id = ids[spec.kind === "shared" ? j : r * spec.k + j];
      if (id !== p.targets[r]) list.push([id, shift(id)]);
    }
    return list;
  });
}

/** Softmax over the items 1..C: row 0 is padding. */
function fullReference(p: Inputs): Result {
  return reference(p, (r) => {
    const list: [number, number][] = [[p.targets[r], 0]];
    for (let i = 1; i <= p.items; i++) if (i !== p.targets[r]) list.push([i, 0]);
    return list;
  });
}

/** The padding row's gradient is exactly zero: it is never scored. */
function assertRowZeroUntouched(got: Result, d: number, what: string): void {
  const row = Array.from({ length: d }, (_, c) => got.dtable[c]);
  assert.deepEqual(row, new Array(d).fill(0), `${what} dtable row 0`);
}

function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]));
  return m;
}

/** Element-wise within `rtol`, with the absolute floor rtol·max|expected| for near-zero sums. */
function assertResultsClose(got: Result, want: Result, what: string, rtol = 1e-5): void {
  for (const key of ["loss", "dh", "dtable"] as const) {
    assertClose(got[key], want[key], `${what} ${key}`, rtol, rtol * maxAbs(want[key]));
  }
}

function specOf(kind: NegativeKind, k: number, items: number, seed: number): NegativeSpec {
  if (kind !== "popularity") return { kind, k, items, seed };
  const counts = Float64Array.from(
    { length: items + 1 },
    (_, i) => (i === 0 ? 0 : 1 + (i % 5) ** 2),
  );
  return { kind, k, items, seed, alias: popularityAlias(counts, items) };
}

const sampledCases: {
  n: number;
  d: number;
  items: number;
  k: number;
  kind: NegativeKind;
  logQ: boolean;
}[] = [
  { n: 1, d: 3, items: 7, k: 1, kind: "uniform", logQ: false },
  { n: 37, d: 5, items: 50, k: 16, kind: "uniform", logQ: true },
  { n: 19, d: 13, items: 30, k: 9, kind: "shared", logQ: false },
  { n: 19, d: 13, items: 30, k: 9, kind: "shared", logQ: true },
  { n: 23, d: 8, items: 40, k: 12, kind: "popularity", logQ: false },
  { n: 23, d: 8, items: 40, k: 12, kind: "popularity", logQ: true },
  { n: 5, d: 45, items: 20, k: 4096, kind: "uniform", logQ: true },
  { n: 6, d: 4, items: 10, k: 4096, kind: "shared", logQ: false },
  { n: 3, d: 7, items: 12, k: 4096, kind: "popularity", logQ: true },
];

for (const { n, d, items, k, kind, logQ } of sampledCases) {
  gpuTest(
    `cce- ${kind}${logQ ? " logQ" : ""} N=${n} d=${d} C=${items} K=${k} equals float64`,
    async (e) => {
      const p = problem(n, d, items, n * 100 + k);
      const spec = specOf(kind, k, items, 1000 + n);
      const got = await runGpu(e, p, (h, t, y) => cceSampledRows(h, t, y, spec, { logQ }));
      assertResultsClose(got, sampledReference(p, spec, logQ), "cce-");
      assertRowZeroUntouched(got, d, "cce-");
    },
  );
}

gpuTest("cce- rows average to the materialised sampled CE", async (e) => {
  const p = problem(29, 6, 25, 5);
  const runs = [
    ["uniform", false],
    ["shared", false],
    ["uniform", true],
    ["popularity", true],
  ] as const;
  for (const [kind, logQ] of runs) {
    const spec = specOf(kind, 11, p.items, 77);
    const [fused, materialised] = await e.tidyAsync(async () => {
      const h = e.tensor(p.h, [p.n, p.d]);
      const table = e.tensor(p.table, [p.items + 1, p.d]);
      const targets = e.tensor(p.targets, [p.n]);
      const rows = await cceSampledRows(h, table, targets, spec, { logQ }).readF32();
      const neg: Negatives = {
        ids: drawNegatives(spec, p.n),
        k: spec.k,
        shared: kind === "shared",
        logQ: logQOf(spec),
      };
      const mean = await sampledCrossEntropy(h, table, p.targets, neg, { logQ }).readF32();
      return [rows.reduce((s, v) => s + v, 0) / p.n, mean[0]];
    });
    assert.ok(
      Math.abs(fused - materialised) <= 1e-5 * Math.abs(materialised),
      `${kind}${logQ ? " logQ" : ""}: ${fused} vs ${materialised}`,
    );
  }
});

gpuTest("cce- gradients match finite differences", async (e) => {
  const [n, d, items] = [4, 3, 6];
  const spec = specOf("uniform", 5, items, 3);
  const targets = randomInts(n, 8, 1, items + 1);
  await checkOp(e, {
    name: "cceSampledRows",
    inputs: [
      { data: randomArray(n * d, 1), shape: [n, d], grad: true },
      { data: randomArray((items + 1) * d, 2), shape: [items + 1, d], grad: true },
    ],
    gpu: ([h, table]) => cceSampledRows(h, table, e.tensor(targets, [n]), spec, { logQ: true }),
    ref: ([h, table]) => {
      const p = { n, d, items, h, table, targets, dloss: new Float64Array(n) };
      return sampledReference(p, spec, true).loss as Float64Array;
    },
  });
});

const fullCases = [
  { n: 1, d: 3, items: 5 },
  { n: 37, d: 5, items: 100 },
  { n: 13, d: 13, items: 257 },
  { n: 40, d: 64, items: 300 },
];

for (const { n, d, items } of fullCases) {
  gpuTest(`cce N=${n} d=${d} C=${items} equals float64 full CE`, async (e) => {
    const p = problem(n, d, items, n + d + items);
    const got = await runGpu(e, p, (h, t, y) => cceRows(h, t, y));
    assertResultsClose(got, fullReference(p), "cce");
    assertRowZeroUntouched(got, d, "cce");
  });
}

gpuTest("cce equals the materialised full CE, row 0 left out of both", async (e) => {
  // C = 5: the padding row's share would be visible in the loss.
  const p = problem(11, 6, 5, 91);
  p.dloss.fill(1 / p.n);
  const want = fullReference(p);
  const wantMean = Array.from(want.loss).reduce((s, v) => s + v, 0) / p.n;
  const run = (op: (h: Tensor, table: Tensor) => Tensor) =>
    e.tidyAsync(async () => {
      const h = e.tensor(p.h, [p.n, p.d]);
      const table = e.tensor(p.table, [p.items + 1, p.d]);
      h.requiresGrad = table.requiresGrad = true;
      e.startTape();
      const loss = op(h, table);
      const value = (await loss.read())[0];
      e.backward(loss);
      const result = { loss: [value], dh: await h.grad!.read(), dtable: await table.grad!.read() };
      h.zeroGrad();
      table.zeroGrad();
      return result;
    });
  const results = [
    ["cce", await run((h, t) => scale(sum(cceRows(h, t, e.tensor(p.targets, [p.n]))), 1 / p.n))],
    ["ce", await run((h, t) => fullCrossEntropy(h, t, p.targets))],
  ] as const;
  for (const [name, got] of results) {
    assert.ok(Math.abs(got.loss[0] - wantMean) < 1e-5 * wantMean, `${name} ${got.loss[0]}`);
    assertClose(got.dh, want.dh, `${name} dh`, 1e-5, 1e-5 * maxAbs(want.dh));
    assertClose(got.dtable, want.dtable, `${name} dtable`, 1e-5, 1e-5 * maxAbs(want.dtable));
    assertRowZeroUntouched(got, p.d, name);
  }
});

gpuTest("cce gradients match finite differences", async (e) => {
  const [n, d, items] = [5, 3, 9];
  const targets = randomInts(n, 4, 1, items + 1);
  await checkOp(e, {
    name: "cceRows",
    inputs: [
      { data: randomArray(n * d, 11), shape: [n, d], grad: true },
      { data: randomArray((items + 1) * d, 12), shape: [items + 1, d], grad: true },
    ],
    gpu: ([h, table]) => cceRows(h, table, e.tensor(targets, [n])),
    ref: ([h, table]) => {
      const p = { n, d, items, h, table, targets, dloss: new Float64Array(n) };
      return fullReference(p).loss as Float64Array;
    },
  });
});

gpuTest("fused losses give each input the same gradient when only it requires one", async (e) => {
  const p = problem(21, 6, 33, 8);
  const ops: [string, LossOp][] = [
    ["cce", (h, t, y) => cceRows(h, t, y)],
    ["cce- uniform", (h, t, y) => cceSampledRows(h, t, y, specOf("uniform", 7, 33, 5))],
    ["cce- shared", (h, t, y) => cceSampledRows(h, t, y, specOf("shared", 7, 33, 5))],
  ];
  for (const [name, op] of ops) {
    const both = await runGpu(e, p, op);
    for (const only of ["dh", "dtable"] as const) {
      const grad = await e.tidyAsync(async () => {
        const h = e.tensor(p.h, [p.n, p.d]);
        const table = e.tensor(p.table, [p.items + 1, p.d]);
        const leaf = only === "dh" ? h : table;
        leaf.requiresGrad = true;
        e.startTape();
        const rows = op(h, table, e.tensor(p.targets, [p.n]));
        e.backward(rows, e.tensor(p.dloss, [p.n]));
        const g = await leaf.grad!.readF32();
        leaf.zeroGrad();
        return g;
      });
      assertResultsClose({ ...both, [only]: grad }, both, `${name} ${only} alone`);
    }
  }
});

gpuTest("cce and every cce- gradient are the same bits run to run", async (e) => {
  const p = problem(45, 13, 90, 3);
  const ops: [string, LossOp][] = [
    ["cce", (h, t, y) => cceRows(h, t, y)],
    ...(["shared", "uniform", "popularity"] as const).map((kind): [string, LossOp] => [
      `cce- ${kind}`,
      (h, t, y) => cceSampledRows(h, t, y, specOf(kind, 40, 90, 2), { logQ: true }),
    ]),
  ];
  for (const [name, op] of ops) {
    const first = await runGpu(e, p, op);
    const again = await runGpu(e, p, op);
    for (const key of ["loss", "dh", "dtable"] as const) {
      assertClose(again[key], first[key], `${name} ${key} rerun`, 0, 0);
    }
  }
});

gpuTest("cce gradient filtering stays within its bound", async (e) => {
  const eps = 2 ** -12;
  const p = problem(64, 16, 2000, 21, 1.5);
  const exact = fullReference(p);
  const got = await runGpu(e, p, (h, t, y) => cceRows(h, t, y, { filterEps: eps }));
  assertClose(got.loss, exact.loss, "filtered cce loss", 1e-5, 1e-6);
  // A skipped gradient entry is below eps·|dloss| in size, so the sums that drop it move by at
  // most eps times the sum of the magnitudes they are made of.
  const { n, d, items } = p;
  let worst = 0;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < d; c++) {
      let bound = 0;
      for (let i = 0; i <= items; i++) bound += Math.abs(p.table[i * d + c]);
      bound *= eps * Math.abs(p.dloss[r]);
      const err = Math.abs(got.dh[r * d + c] - exact.dh[r * d + c]);
      assert.ok(err <= bound + 1e-5 * maxAbs(exact.dh), `dh[${r}, ${c}] off by ${err} > ${bound}`);
      worst = Math.max(worst, err / maxAbs(exact.dh));
    }
  }
  for (let i = 0; i <= items; i++) {
    for (let c = 0; c < d; c++) {
      let bound = 0;
      for (let r = 0; r < n; r++) bound += Math.abs(p.dloss[r] * p.h[r * d + c]);
      bound *= eps;
      const err = Math.abs(got.dtable[i * d + c] - exact.dtable[i * d + c]);
      assert.ok(err <= bound + 1e-5 * maxAbs(exact.dtable), `dtable[${i}, ${c}] off by ${err}`);
      worst = Math.max(worst, err / maxAbs(exact.dtable));
    }
  }
  assert.ok(worst > 0, "filtering skipped no tile");
  console.log(`filterEps 2^-12: max gradient error ${worst.toExponential(2)} of the largest entry`);
});

gpuTest(
  "fused losses over tables larger than one binding equal the one-binding results",
  async (e) => {
    for (const [d, items] of [[8, 200], [5, 240]]) {
      const p = problem(20, d, items, d * items);
      const ops: [string, LossOp][] = [
        ["cce", (h, t, y) => cceRows(h, t, y)],
        ...(["uniform", "shared", "popularity"] as const).map((kind): [string, LossOp] => [
          `cce- ${kind}`,
          (h, t, y) => cceSampledRows(h, t, y, specOf(kind, 24, items, 9), { logQ: true }),
        ]),
      ];
      for (const [name, op] of ops) {
        const whole = await runGpu(e, p, op);
        let windowed: Result | undefined;
        await withBindingLimit(e, 2048, async () => {
          windowed = await runGpu(e, p, op);
        });
        assertResultsClose(windowed!, whole, `${name} d=${d} in windows`);
      }
    }
  },
);

// Sizes past what one invocation may loop over on llvmpipe, so the kernels run in several passes.
gpuTest("cce over many positions or many items runs in passes and equals float64", async (e) => {
  for (const [n, items] of [[7600, 40], [40, 7600]]) {
    const p = problem(n, 64, items, n + items);
    const got = await runGpu(e, p, (h, t, y) => cceRows(h, t, y));
    assertResultsClose(got, fullReference(p), `cce N=${n} C=${items}`);
  }
});

gpuTest(
  "cce- with a popular target and many positions runs in passes and equals float64",
  async (e) => {
    const p = problem(2500, 45, 2, 17);
    const spec = specOf("shared", 8, 2, 4);
    const got = await runGpu(e, p, (h, t, y) => cceSampledRows(h, t, y, spec));
    assertResultsClose(got, sampledReference(p, spec, false), "cce- N=2500");
  },
);

// The per-position negatives' table gradient buckets entries by id, CCE_TABLE_GRAD_CHUNK (256)
// list entries per invocation: ids drawn hundreds of times have buckets that cross chunks.
const bucketCases: { what: string; n: number; d: number; items: number; k: number }[] = [
  { what: "two items: every bucket crosses chunks", n: 60, d: 5, items: 2, k: 30 },
  { what: "one position, ids repeated in its slots", n: 1, d: 6, items: 3, k: 700 },
  { what: "d = 1 (one partial column group)", n: 40, d: 1, items: 4, k: 50 },
  { what: "d = 6, many ids each drawn once or twice", n: 9, d: 6, items: 500, k: 40 },
];

for (const { what, n, d, items, k } of bucketCases) {
  for (const kind of ["uniform", "popularity"] as const) {
    gpuTest(`cce- ${kind} table gradient, ${what}, equals float64`, async (e) => {
      const p = problem(n, d, items, n * 7 + k);
      const spec = specOf(kind, k, items, 31 + n);
      const got = await runGpu(e, p, (h, t, y) => cceSampledRows(h, t, y, spec, { logQ: true }));
      assertResultsClose(got, sampledReference(p, spec, true), `cce- ${kind} ${what}`);
      assertRowZeroUntouched(got, d, "cce-");
    });
  }
}

gpuTest("cce- table gradient with a bucket crossing chunks in a second table window", async (e) => {
  // 71 rows of 64 bytes in windows of 64 rows; item 65 draws half of the 1,000 negatives.
  const [n, d, items, k] = [20, 16, 70, 50];
  const p = problem(n, d, items, 12);
  const counts = Float64Array.from({ length: items + 1 }, (_, i) => (i === 0 ? 0 : 1));
  counts[65] = items;
  const spec: NegativeSpec = { kind: "popularity", k, items, seed: 6 };
  spec.alias = popularityAlias(counts, items);
  assert.ok(drawNegatives(spec, n).filter((id) => id === 65).length > 300);
  const op: LossOp = (h, t, y) => cceSampledRows(h, t, y, spec, { logQ: true });
  let windowed: Result | undefined;
  await withBindingLimit(e, 4096, async () => {
    windowed = await runGpu(e, p, op);
  });
  assertResultsClose(windowed!, sampledReference(p, spec, true), "cce- in windows of 64 rows");
});

gpuTest("cce- table gradient of all-zero upstream gradients is exactly zero", async (e) => {
  const p = problem(20, 5, 6, 3);
  p.dloss.fill(0);
  const got = await runGpu(e, p, (h, t, y) => cceSampledRows(h, t, y, specOf("uniform", 9, 6, 1)));
  assert.deepEqual(Array.from(got.dtable), new Array(got.dtable.length).fill(0));
});

gpuTest("fused losses refuse bad inputs, naming the op and shapes", (e) => {
  const h = e.tensor(new Float32Array(6), [2, 3]);
  const table = e.tensor(new Float32Array(20), [5, 4]);
  const good = e.tensor(new Float32Array(15), [5, 3]);
  const targets = e.tensor(new Int32Array([1, 2]), [2]);
  const spec = specOf("uniform", 3, 4, 1);
  assert.throws(
    () => cceRows(h, table, targets),
    /cceRows: h \[2, 3\], table \[5, 4\] and targets \[2\]/,
  );
  assert.throws(
    () => cceSampledRows(h, table, targets, spec),
    /cceSampledRows: h \[2, 3\], table \[5, 4\]/,
  );
  assert.throws(
    () => cceRows(h, good, e.tensor(new Int32Array([1, 5]), [2])),
    /cceRows: target 5 at position 1 is outside 1..4/,
  );
  assert.throws(
    () => cceSampledRows(h, good, e.tensor(new Int32Array([0, 1]), [2]), spec),
    /cceSampledRows: target 0 at position 0 is outside 1..4/,
  );
  assert.throws(
    () => cceSampledRows(h, good, targets, { ...spec, k: 0 }),
    /cceSampledRows: K must be ≥ 1/,
  );
  assert.throws(() => cceSampledRows(h, good, targets, { ...spec, items: 9 }), /draws from 1..9/);
  assert.throws(
    () =>
      cceRows(
        e.tensor(new Float32Array(2 * 4097), [2, 4097]),
        e.tensor(new Float32Array(3 * 4097), [3, 4097]),
        targets,
      ),
    /d = 4097 is outside \[1, 4096\]/,
  );
});
