/**
 * Weight pruning (magnitude and Wanda, every pattern and unstructured 50%) against the float64
 * host reference, its storage in bits per element against methods.md §3's figures, and Wanda
 * through the model walker with calibration.
 */
import assert from "node:assert/strict";
import { Llama, type LlamaConfig } from "../../src/models/llama.ts";
import { linearLayers } from "../../src/prune/activation.ts";
import { columnNormsHost } from "../../src/prune/criteria.ts";
import {
  applyWeightPruning,
  pruneWeight,
  pruneWeightHost,
  removeWeightPruning,
  storageBits,
  WEIGHT_CRITERIA,
  WeightPruned,
} from "../../src/prune/weights.ts";
import { NM_PATTERNS, nmLayout } from "../../src/sparse/format.ts";
import { matmulTransposedHost } from "../../src/sparse/host.ts";
import { decodeNm } from "../../src/sparse/prune.ts";
import { assertClose, gpuTest, randomArray, randomInts } from "../support/check.ts";

const [T, IN, OUT] = [4, 32, 6];
const X = randomArray(T * IN, 21);
const W = randomArray(OUT * IN, 22);

gpuTest("magnitude and Wanda in every pattern match the host; the product too", async (e) => {
  const xNorms = columnNormsHost(X, T, IN);
  for (const criterion of WEIGHT_CRITERIA) {
    for (
      const sparsity of [...NM_PATTERNS.map((pattern) => ({ pattern })), { unstructured: 0.5 }]
    ) {
      const spec = { sparsity, criterion };
      const what = JSON.stringify(spec);
      await e.tidyAsync(async () => {
        const norms = e.tensor(Float32Array.from(xNorms), [IN]);
        const nm = pruneWeight(e.tensor(W, [OUT, IN]), spec, norms);
        const want = pruneWeightHost(W, OUT, IN, spec, xNorms);
        assert.deepEqual(Array.from(await decodeNm(nm).read()), Array.from(want), what);
        const t = new WeightPruned(nm);
        const y = t.product(e.tensor(X, [1, T, IN]), e.tensor(W, [OUT, IN]));
        assertClose(await y.read(), matmulTransposedHost(X, want, T, OUT, IN), what, 1e-4, 1e-5);
        t.dispose();
      });
    }
  }
});

Deno.test("Wanda keeps a small weight whose input is large", () => {
  // Row [1, 2, 0.5, 0.1] at 2:4: magnitude keeps columns 0 and 1; column 3's input norm of 100
  // makes Wanda keep it instead of column 0.
  const w = [1, 2, 0.5, 0.1];
  assert.deepEqual(
    Array.from(
      pruneWeightHost(w, 1, 4, { sparsity: { pattern: { n: 2, m: 4 } }, criterion: "magnitude" }),
    ),
    [1, 2, 0, 0],
  );
  assert.deepEqual(
    Array.from(
      pruneWeightHost(w, 1, 4, { sparsity: { pattern: { n: 2, m: 4 } }, criterion: "wanda" }, [
        1,
        1,
        1,
        100,
      ]),
    ),
    [0, 2, 0, 0.1],
  );
});

Deno.test("storage: methods.md §3's metadata figures, values and padding on top", () => {
  const figures: [number, number, number][] = [[2, 4, 0.75], [4, 8, 0.875], [8, 16, 0.875], [
    16,
    32,
    0.9375,
  ]];
  for (const [n, m, bits] of figures) {
    const s = storageBits(nmLayout("t", [64, 256], 1, { n, m }, "combinatorial"));
    assert.equal(s.metadata, bits, `${n}:${m}`);
    assert.equal(s.values, 16);
    assert.ok(s.metadataStored >= bits && s.metadataStored < bits + 32 / 256);
    assert.equal(s.total, s.values + s.metadataStored);
  }
  assert.equal(storageBits(nmLayout("t", [4, 16], 1, { n: 8, m: 16 }, "indices"), 16).values, 8);
  assert.equal(storageBits(nmLayout("t", [4, 16], 1, { n: 8, m: 16 }, "indices")).metadata, 2);
});

const LM: LlamaConfig = {
  vocab: 19,
  dim: 16,
  hidden: 32,
  layers: 1,
  heads: 2,
  kvHeads: 1,
  maxLen: 8,
  normEps: 1e-5,
  ropeTheta: 500,
  tied: false,
};

gpuTest(
  "the walker: Wanda calibrates, prunes every projection, and comes off cleanly",
  async (e) => {
    const model = new Llama(e, LM, 2);
    const ids = e.tensor(randomInts(2 * 6, 3, 0, LM.vocab), [2, 6], "i32");
    const run = () => e.tidyAsync(() => model.forward(ids).read());
    const dense = await run();
    const pruned = await applyWeightPruning(
      model,
      {
        sparsity: { pattern: { n: 8, m: 16 } },
        criterion: "wanda",
        layers: ["q", "k", "v", "o", "gate", "up", "down"],
      },
      async () => void (await run()),
    );
    assert.equal(pruned.size, 7);
    // Half of every row's weights are gone: each decoded row keeps exactly half.
    const q = await decodeNm(pruned.get("model.layers.0.self_attn.q_proj")!.nm).read();
    assert.equal(q.filter((v) => v !== 0).length, q.length / 2);
    assert.notDeepEqual(await run(), dense);
    removeWeightPruning(model, pruned);
    assert.deepEqual(await run(), dense);
    assert.ok(linearLayers(model).every((l) => l.layer.inputTransform === null));
    model.dispose();
  },
);
