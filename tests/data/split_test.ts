import assert from "node:assert/strict";
import type { Dataset } from "../../src/data/dataset.ts";
import { globalTemporalSplit, leaveOneOut } from "../../src/data/split.ts";
import type { EvalExample } from "../../src/data/split.ts";

function dataset(sequences: number[][], times?: number[][]): Dataset {
  const ds: Dataset = {
    name: "hand",
    items: Math.max(...sequences.flat()),
    users: sequences.length,
    sequences: sequences.map((s) => Int32Array.from(s)),
  };
  if (times) ds.timestamps = times.map((t) => Float64Array.from(t));
  return ds;
}

function plain(examples: EvalExample[]) {
  return examples.map((e) => ({ user: e.user, history: Array.from(e.history), target: e.target }));
}

Deno.test("leave-one-out: last = test, second to last = valid, short users train-only", () => {
  const ds = dataset([[1, 2, 3, 4], [5, 6], [7, 8, 9], [3]]);
  const split = leaveOneOut(ds);
  assert.deepEqual(split.train.map((s) => Array.from(s)), [[1, 2], [5, 6], [7], [3]]);
  assert.deepEqual(plain(split.valid), [
    { user: 0, history: [1, 2], target: 3 },
    { user: 2, history: [7], target: 8 },
  ]);
  assert.deepEqual(plain(split.test), [
    { user: 0, history: [1, 2, 3], target: 4 },
    { user: 2, history: [7, 8], target: 9 },
  ]);
});

Deno.test("global temporal split on a hand-made case", () => {
  // 13 interactions. Sorted times: 1 2 3 4 5 6 7 7.5 8 9 9.2 9.5 10.
  // testFraction 0.25 → boundary sorted[floor(0.75·13) = 9] = 9 (4 test-period interactions);
  // validFraction 1/3 of the 9 pre-test ones → sorted[6] = 7.
  const ds = dataset(
    [[1, 2, 3, 4, 3], [2, 3, 5], [1, 6, 2], [7, 1]],
    [[1, 2, 3, 9.2, 10], [4, 5, 9], [6, 7.5, 8], [7, 9.5]],
  );
  const split = globalTemporalSplit(ds, 0.25, 1 / 3);
  assert.equal(split.testTime, 9);
  assert.equal(split.validTime, 7);
  // Training: everything before the validation period (user 3's first item is at t = 7).
  assert.deepEqual(split.train.map((s) => Array.from(s)), [[1, 2, 3], [2, 3], [1], []]);
  // Validation: user 2's last pre-test item (t = 8), history = pre-test items before it.
  assert.deepEqual(plain(split.valid), [{ user: 2, history: [1, 6], target: 2 }]);
  // Test: the full history, test-period items included (user 0 read item 4 at t = 9.2).
  // User 1's target 5 never occurs in training, so it is dropped.
  assert.deepEqual(plain(split.test), [
    { user: 0, history: [1, 2, 3, 4], target: 3 },
    { user: 3, history: [7], target: 1 },
  ]);
});

Deno.test("global temporal split: the test period is the last fraction of interactions", () => {
  const n = 1000;
  const seqs: number[][] = [];
  const times: number[][] = [];
  for (let u = 0; u < 50; u++) {
    seqs.push(Array.from({ length: 20 }, (_, i) => 1 + ((u + i) % 30)));
    times.push(Array.from({ length: 20 }, (_, i) => u * 20 + i));
  }
  const split = globalTemporalSplit(dataset(seqs, times));
  assert.equal(split.testTime, 0.9 * n);
  const trained = split.train.reduce((a, s) => a + s.length, 0);
  assert.equal(trained, 0.81 * n);
  // Every example's target comes after its history in time and was seen in training.
  const seen = new Set(split.train.flatMap((s) => Array.from(s)));
  for (const e of [...split.valid, ...split.test]) assert.ok(seen.has(e.target));
  assert.equal(split.test.length, 5);
});

Deno.test("global temporal split needs timestamps and a fraction in (0, 1)", () => {
  assert.throws(() => globalTemporalSplit(dataset([[1, 2]])), /no timestamps/);
  assert.throws(() => globalTemporalSplit(dataset([[1, 2]], [[1, 2]]), 0), RangeError);
  assert.throws(() => globalTemporalSplit(dataset([[1, 2]], [[1, 2]]), 0.1, 1), RangeError);
});
