import assert from "node:assert/strict";
import { formatMetricsTable, RankingMetrics } from "../../src/train/metrics.ts";

function near(actual: number, expected: number, what: string) {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} != ${expected}`);
}

Deno.test("hr, ndcg and mrr of ranks [0, 3, 12] match the hand computation", () => {
  const m = new RankingMetrics([1, 5, 10, 20], 100);
  m.add([0, 3, 12]);
  const r = m.result();
  near(r["hr@1"], 1 / 3, "hr@1");
  near(r["hr@5"], 2 / 3, "hr@5");
  near(r["hr@10"], 2 / 3, "hr@10");
  near(r["hr@20"], 1, "hr@20");
  near(r["ndcg@1"], 1 / 3, "ndcg@1");
  near(r["ndcg@10"], (1 + 1 / Math.log2(5)) / 3, "ndcg@10");
  near(r["ndcg@20"], (1 + 1 / Math.log2(5) + 1 / Math.log2(14)) / 3, "ndcg@20");
  near(r["mrr@10"], (1 + 1 / 4) / 3, "mrr@10");
  near(r["mrr@20"], (1 + 1 / 4 + 1 / 13) / 3, "mrr@20");
  assert.equal(r["coverage@10"], undefined, "no coverage without top-k lists");
  assert.equal(m.count, 3);
});

Deno.test("metrics added chunk by chunk equal one call", () => {
  const ranks = [5, 0, 99, 100, 7, 1, 19, 20, 2];
  const whole = new RankingMetrics(undefined, 1000);
  whole.add(ranks);
  const chunks = new RankingMetrics(undefined, 1000);
  chunks.add(ranks.slice(0, 4));
  chunks.add(new Int32Array(0));
  chunks.add(Int32Array.from(ranks.slice(4)));
  const a = whole.result();
  const b = chunks.result();
  assert.deepEqual(Object.keys(a), Object.keys(b));
  for (const key of Object.keys(a)) near(b[key], a[key], key);
  near(a["hr@100"], 8 / 9, "rank 100 is outside the top 100");
});

Deno.test("coverage counts distinct real items of the first k ids of each list", () => {
  const m = new RankingMetrics([1, 2, 3], 10);
  // Lists are [users, 4] (wider than max k); -1 and 0 are holes, not items.
  m.add([0, 5], new Int32Array([3, 1, 2, 9, 3, 4, -1, 8]));
  m.add([1], new Int32Array([7, 0, 1, 5]));
  const r = m.result();
  near(r["coverage@1"], 2 / 10, "coverage@1"); // {3, 7}
  near(r["coverage@2"], 4 / 10, "coverage@2"); // {3, 1, 4, 7}
  near(r["coverage@3"], 5 / 10, "coverage@3"); // {3, 1, 2, 4, 7}
  near(r["hr@1"], 1 / 3, "hr@1");
  assert.equal(r["surprisal@1"], undefined);
});

Deno.test("surprisal is the normalised self-information of the recommended items", () => {
  // 8 users; item 1 seen by 8, item 2 by 2, item 3 by 1, item 4 never (counted as 1).
  const m = new RankingMetrics([1, 2], 4, {
    popularity: { itemUsers: [0, 8, 2, 1, 0], users: 8 },
  });
  m.add([0, 1], new Int32Array([1, 2, 3, 4]));
  const r = m.result();
  // self-information / log2(8): item 1 → 0, item 2 → 2/3, items 3 and 4 → 1
  near(r["surprisal@1"], (0 + 1) / 2, "surprisal@1");
  near(r["surprisal@2"], ((0 + 2 / 3) / 2 + (1 + 1) / 2) / 2, "surprisal@2");
  near(r["coverage@2"], 1, "coverage@2");
});

Deno.test("metrics refuse bad ranks, lists and mixed chunks", () => {
  const m = new RankingMetrics([1, 5], 10);
  assert.throws(() => m.add([-1]), /rank -1 of user 0/);
  assert.throws(() => m.add([1.5]), /rank 1.5/);
  assert.throws(() => m.add([1, 2], new Int32Array(9)), /9 top-k ids for 2 users/);
  assert.throws(
    () => m.add([1], new Int32Array([11, 1, 2, 3, 4])),
    /id 11 of user 0 is neither a hole/,
  );
  // The refused chunks counted nothing, and a chunk with lists is still accepted.
  assert.equal(m.count, 0);
  m.add([0], new Int32Array([1, 2, 3, 4, 5]));
  assert.equal(m.result()["hr@1"], 1);
  const n = new RankingMetrics([1], 10);
  n.add([0], new Int32Array([1]));
  assert.throws(() => n.add([0]), /every chunk or with none/);
  assert.throws(() => new RankingMetrics([0], 10), /positive integers/);
  assert.throws(() => new RankingMetrics([1], 0), /items must be/);
  assert.ok(Number.isNaN(new RankingMetrics([1], 5).result()["hr@1"]), "no users: NaN");
});

Deno.test("formatMetricsTable lays out metrics by split and k", () => {
  const valid = new RankingMetrics([1, 10], 100);
  valid.add([0, 3, 12], new Int32Array(30).fill(1));
  const text = formatMetricsTable(
    { valid: valid.result(), test: { "hr@1": 0.25, "ndcg@10": 0.125, "extra@1": 1 } },
    [1, 10],
  );
  assert.equal(
    text,
    [
      "split  metric        @1     @10",
      "valid  hr        0.3333  0.6667",
      "valid  ndcg      0.3333  0.4769",
      "valid  mrr       0.3333  0.4167",
      "valid  coverage  0.0100  0.0100",
      "valid  extra          -       -",
      "test   hr        0.2500       -",
      "test   ndcg           -  0.1250",
      "test   mrr            -       -",
      "test   coverage       -       -",
      "test   extra     1.0000       -",
    ].join("\n"),
  );
});
