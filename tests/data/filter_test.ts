import assert from "node:assert/strict";
import type { Dataset } from "../../src/data/dataset.ts";
import { compactItems, kCore, passesRating } from "../../src/data/filter.ts";

function dataset(sequences: number[][]): Dataset {
  const items = Math.max(...sequences.flat());
  return {
    name: "hand",
    items,
    users: sequences.length,
    sequences: sequences.map((s) => Int32Array.from(s)),
    timestamps: sequences.map((s) => Float64Array.from(s, (_, i) => i * 10)),
    originalItemIds: ["", ...Array.from({ length: items }, (_, i) => `i${i + 1}`)],
    originalUserIds: sequences.map((_, u) => `u${u}`),
  };
}

Deno.test("k-core cascades: dropping an item can drop a user and then another item", () => {
  // k = 2: D (1 item) goes; item 4 (once) goes; then C = [3] goes; then item 3 (only A) goes.
  const ds = dataset([[1, 2, 3], [1, 2], [3, 4], [1]]);
  const out = kCore(ds, 2);
  assert.equal(out.users, 2);
  assert.equal(out.items, 2);
  assert.deepEqual(out.sequences.map((s) => Array.from(s)), [[1, 2], [1, 2]]);
  assert.deepEqual(out.originalUserIds, ["u0", "u1"]);
  assert.deepEqual(out.originalItemIds, ["", "i1", "i2"]);
  // Timestamps of the kept interactions follow them.
  assert.deepEqual(out.timestamps!.map((t) => Array.from(t)), [[0, 10], [0, 10]]);
});

Deno.test("k-core with separate user and item thresholds; already-core data is unchanged", () => {
  const ds = dataset([[1, 2, 3], [3, 2, 1], [2, 5]]);
  const itemsOnly = kCore(ds, { items: 2 });
  // Item 5 appears once; 4 never appears; survivors 1,2,3 keep their order and ids.
  assert.deepEqual(itemsOnly.sequences.map((s) => Array.from(s)), [[1, 2, 3], [3, 2, 1], [2]]);
  assert.equal(itemsOnly.items, 3);
  const both = kCore(ds, { users: 2, items: 2 });
  assert.equal(both.users, 2);
  const same = kCore(dataset([[1, 2], [2, 1]]), 2);
  assert.deepEqual(same.sequences.map((s) => Array.from(s)), [[1, 2], [2, 1]]);
  // Duplicates count as interactions.
  assert.equal(kCore(dataset([[1, 1]]), 2).users, 1);
});

Deno.test("k-core can empty a dataset", () => {
  const out = kCore(dataset([[1, 2], [3]]), 5);
  assert.equal(out.users, 0);
  assert.equal(out.items, 0);
  assert.deepEqual(out.originalItemIds, [""]);
});

Deno.test("compactItems removes unused ids keeping order", () => {
  const ds = { ...dataset([[5, 2], [2]]), items: 6 };
  ds.originalItemIds = ["", "a", "b", "c", "d", "e", "f"];
  const out = compactItems(ds);
  assert.equal(out.items, 2);
  assert.deepEqual(out.sequences.map((s) => Array.from(s)), [[2, 1], [1]]);
  assert.deepEqual(out.originalItemIds, ["", "b", "e"]);
});

Deno.test("rating threshold is inclusive", () => {
  assert.equal(passesRating(4, 4), true);
  assert.equal(passesRating(3.5, 4), false);
  assert.equal(passesRating(0, undefined), true);
});
