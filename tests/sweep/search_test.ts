import assert from "node:assert/strict";
import {
  ashaPlan,
  parseRange,
  rungCutoff,
  rungOf,
  samplePoints,
  sampleRange,
} from "../../src/sweep/search.ts";

Deno.test("ranges: uniform and log-uniform, whole numbers kept whole, ends reachable", () => {
  assert.equal(parseRange("32,64"), null);
  const lr = parseRange("1e-4..1e-2:log")!;
  assert.equal(sampleRange(lr, 0), 1e-4);
  assert.equal(sampleRange(lr, 0.5), 1e-3);
  assert.equal(sampleRange(parseRange("0.1..0.5")!, 0.5), 0.3);
  const heads = parseRange("1..4")!;
  assert.deepEqual([0, 0.24, 0.26, 0.99].map((u) => sampleRange(heads, u)), [1, 1, 2, 4]);
  // log over whole numbers: 32..2047 spans 6 octaves, each drawn equally often.
  const negatives = parseRange("32..2047:log")!;
  assert.equal(sampleRange(negatives, 0), 32);
  assert.equal(sampleRange(negatives, 1 / 6 + 1e-9), 64);
  assert.equal(sampleRange(negatives, 0.999999), 2047);
  assert.equal(sampleRange(lr, 0.123), Number(sampleRange(lr, 0.123).toPrecision(3)));
});

Deno.test("sampled points are distinct and depend only on the seed", () => {
  // "0.0" is no whole number: a float range.
  const dims = [{ range: parseRange("0.0..1.0")! }, { choices: ["a", "b"] }];
  const show = (p: unknown[]) => p.join(",");
  const a = samplePoints(dims, 20, 7, show);
  assert.deepEqual(samplePoints(dims, 20, 7, show), a);
  assert.equal(new Set(a.map(show)).size, 20);
  assert.notDeepEqual(samplePoints(dims, 20, 8, show), a);
});

Deno.test("ASHA: rungs at min·eta^k, the passed rung reported once, top 1/eta go on", () => {
  assert.deepEqual(ashaPlan(27, 1, 3).rungs, [1, 3, 9]);
  assert.deepEqual(ashaPlan(10, 2, 2).rungs, [2, 4, 8]);
  assert.deepEqual(ashaPlan(1, 1, 3).rungs, []);
  const plan = ashaPlan(10, 1, 3);
  const reported = new Set<number>();
  assert.equal(rungOf(plan, 1, reported), 1);
  reported.add(1);
  assert.equal(rungOf(plan, 2, reported), null);
  // A trial validating every 2 epochs reports epoch 4 to rung 3.
  assert.equal(rungOf(plan, 4, reported), 3);
  assert.equal(rungCutoff([], 3), null, "the first trial at a rung goes on");
  assert.equal(rungCutoff([0.2], 3), 0.2);
  // Ten values 0.1..1.0: the 2/3 quantile, so the top third go on.
  const ten = Array.from({ length: 10 }, (_, i) => (i + 1) / 10);
  assert.ok(Math.abs(rungCutoff(ten, 3)! - 0.7) < 1e-12);
  assert.ok(Math.abs(rungCutoff([0.4, 0.2], 2)! - 0.3) < 1e-12);
});
