import assert from "node:assert/strict";
import {
  CATEGORY_PALETTE,
  colourScheme,
  GRADIENT_STEPS,
  OTHER_COLOUR,
  PLAIN_COLOUR,
} from "../../src/dashboard/embedding_colour.ts";

Deno.test("no colour field: every point in one colour", () => {
  const s = colourScheme(3);
  assert.equal(s.kind, "plain");
  assert.deepEqual(s.palette, [PLAIN_COLOUR]);
  assert.deepEqual(Array.from(s.index), [0, 0, 0]);
});

Deno.test("a few integers (target bins) are classes in numeric order", () => {
  const s = colourScheme(5, { name: "age_bin", values: [2, 0, 1, 2, 3] });
  assert.equal(s.kind, "categories");
  if (s.kind !== "categories") return;
  assert.deepEqual(s.categories.map((c) => [c.label, c.count]), [["0", 1], ["1", 1], ["2", 2], [
    "3",
    1,
  ]]);
  assert.deepEqual(Array.from(s.index), [2, 0, 1, 2, 3]);
  assert.deepEqual(s.palette, CATEGORY_PALETTE.slice(0, 4));
});

Deno.test("strings are classes, largest first; past the palette the rest are one other", () => {
  const values = ["b", "a", "b", "c"];
  const s = colourScheme(4, { name: "segment", values });
  if (s.kind !== "categories") throw new Error(s.kind);
  assert.deepEqual(s.categories.map((c) => c.label), ["b", "a", "c"]);
  assert.deepEqual(Array.from(s.index), [0, 1, 0, 2]);

  const many = Array.from({ length: 20 }, (_, i) => `k${i}`);
  const wide = colourScheme(20, { name: "mcc", values: many });
  if (wide.kind !== "categories") throw new Error(wide.kind);
  assert.equal(wide.categories.length, CATEGORY_PALETTE.length);
  assert.deepEqual(wide.categories.at(-1), {
    label: "other (10)",
    colour: OTHER_COLOUR,
    count: 10,
  });
  assert.equal(wide.index[19], CATEGORY_PALETTE.length - 1);
  assert.equal(wide.palette.length, CATEGORY_PALETTE.length);
});

Deno.test("other numbers get the viridis scale, on a log scale when they span 100×", () => {
  const s = colourScheme(3, { name: "amount", values: [0.5, 1.5, 1.0] });
  if (s.kind !== "gradient") throw new Error(s.kind);
  assert.equal(s.log, false);
  assert.deepEqual([s.min, s.max], [0.5, 1.5]);
  assert.deepEqual(Array.from(s.index), [0, GRADIENT_STEPS - 1, GRADIENT_STEPS / 2]);
  assert.equal(s.palette.length, GRADIENT_STEPS);
  assert.match(s.gradient, /^linear-gradient/);

  // Popularity: 13 distinct counts from 0 to 999; log1p puts 30 near the middle.
  const counts = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30, 999];
  const pop = colourScheme(counts.length, { name: "popularity", values: counts });
  if (pop.kind !== "gradient") throw new Error(pop.kind);
  assert.equal(pop.log, true);
  assert.equal(pop.index[0], 0);
  assert.equal(pop.index[12], GRADIENT_STEPS - 1);
  assert.equal(pop.index[11], Math.floor((Math.log1p(30) / Math.log1p(999)) * GRADIENT_STEPS));
});
