/**
 * Activation-pruning criteria: the GPU scores against the float64 host reference, and the host
 * reference against values worked out by hand.
 */
import assert from "node:assert/strict";
import {
  ActivationScorer,
  columnNorms,
  columnNormsHost,
  CRITERIA,
  quantileSorted,
  scoresHost,
  weightFactor,
} from "../../src/prune/criteria.ts";
import { assertClose, gpuTest, randomArray } from "../support/check.ts";

Deno.test("criteria host reference: hand-worked values", () => {
  // W [2, 2] = [[3, 1], [4, -1]]: column norms 5 and √2, column variances 0.25 and 1.
  const w = [3, 1, 4, -1];
  assert.deepEqual(Array.from(weightFactor("weight-aware", w, 2, 2)!), [5, Math.SQRT2]);
  assert.deepEqual(Array.from(weightFactor("variance", w, 2, 2)!), [0.25, 1]);
  assert.equal(weightFactor("magnitude", w, 2, 2), null);
  // x [2, 2] = [[1, -2], [0, 2]]: column norms 1 and √8, row norms √5 and 2.
  const x = [1, -2, 0, 2];
  const clact = scoresHost("clact", x, 2, 2, w, 2);
  assertClose(clact, [1 / Math.sqrt(5), (2 * Math.sqrt(8)) / Math.sqrt(5), 0, Math.sqrt(8)], "c");
  assert.deepEqual(Array.from(scoresHost("magnitude", x, 2, 2, w, 2)), [1, 2, 0, 2]);
  // numpy.quantile([0, 1, 2, 10], 0.5) = 1.5; at 0.995 it is 2 + 0.985·8.
  assert.equal(quantileSorted([0, 1, 2, 10], 0.5), 1.5);
  assertClose([quantileSorted([0, 1, 2, 10], 0.995)], [2 + 0.985 * 8], "quantile", 1e-12, 0);
});

Deno.test("Amber: clipping tames an outlier, the least column scores 1", () => {
  // 200 values in [-1, 1) and one huge outlier in column 0: clipping to the 99.5% quantile keeps
  // column 0 from dominating the way its raw norm would.
  const out = 201;
  const w = Array.from(randomArray(out * 2, 5));
  w[0] = 1000;
  const f = weightFactor("amber", w, out, 2)!;
  assert.equal(Math.min(...f), 1);
  assert.ok(Math.max(...f) < 2, `factors ${Array.from(f)}`);
  const raw = weightFactor("weight-aware", w, out, 2)!;
  assert.ok(raw[0] / raw[1] > 50);
});

gpuTest("every criterion's GPU scores match the float64 reference", async (e) => {
  const [tokens, inF, out] = [5, 24, 7];
  const x = randomArray(tokens * inF, 1);
  x.fill(0, inF, 2 * inF); // an all-zero token
  const w = randomArray(out * inF, 2);
  for (const c of CRITERIA) {
    await e.tidyAsync(async () => {
      const scorer = await ActivationScorer.create(c, e.tensor(w, [out, inF]));
      const s = scorer.scores(e.tensor(x, [tokens, inF]));
      const want = scoresHost(c, x, tokens, inF, w, out);
      if (c === "magnitude") assert.equal(s, null);
      else assertClose(await s!.read(), want, `${c} scores`, 1e-5, 1e-6);
      scorer.dispose();
    });
  }
});

gpuTest("a scorer refuses inputs of the wrong width", async (e) => {
  await e.tidyAsync(async () => {
    const scorer = await ActivationScorer.create("clact", e.tensor(randomArray(8, 3), [2, 4]));
    assert.throws(() => scorer.scores(e.tensor(randomArray(6, 4), [2, 3])), /\[tokens, 4\]/);
  });
});

// llvmpipe cut one invocation's loop over 70,000 tokens short (the norms of the first ~65k); the
// norms now run in passes of at most LOOP_BUDGET tokens that continue one sum.
gpuTest("column norms over 70,000 tokens (CLACT, weight calibration) match float64", async (e) => {
  const [tokens, features] = [70_000, 6];
  const x = randomArray(tokens * features, 17);
  x.fill(40, (tokens - 1) * features);
  const got = await e.tidyAsync(() => columnNorms(e.tensor(x, [tokens, features])).read());
  assertClose(got, columnNormsHost(x, tokens, features), "column norms", 1e-5, 1e-5);
});
