import assert from "node:assert/strict";
import { MostPop } from "../../src/models/mostpop.ts";
import { evaluateRanking } from "../../src/train/evaluate.ts";
import { gpuTest } from "../support/check.ts";

gpuTest("MostPop ranks by training popularity, ties by lower id, history excluded", async (e) => {
  // Counts: item 2 ×3, items 1 and 3 ×1 (tie → 1 first), item 4 never.
  const pop = new MostPop(e, 4, 5, [Int32Array.of(1, 2), Int32Array.of(2, 3), Int32Array.of(2)]);
  const examples = [
    { user: 0, history: Int32Array.of(1), target: 3 }, // ranking 2, 3, 4 → rank 1
    { user: 1, history: Int32Array.of(2), target: 4 }, // ranking 1, 3, 4 → rank 2
    { user: 2, history: Int32Array.of(4), target: 2 }, // ranking 2, … → rank 0
  ];
  const m = await evaluateRanking(pop, examples, { keepSeen: false, ks: [1, 2, 3] });
  assert.equal(m["hr@1"], 1 / 3);
  assert.equal(m["hr@2"], 2 / 3);
  assert.equal(m["hr@3"], 1);
  assert.ok(Math.abs(m["ndcg@3"] - (1 + 1 / Math.log2(3) + 0.5) / 3) < 1e-12);
  const kept = await evaluateRanking(pop, examples, { keepSeen: true, ks: [1] });
  assert.equal(kept["hr@1"], 1 / 3, "with history kept, item 2 tops every list");
  pop.dispose();
});
