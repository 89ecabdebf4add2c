import assert from "node:assert/strict";
import "../../src/tensor/ops/mod.ts";
import { MATMUL_VARIANTS, matmulVariantOf } from "../../src/tensor/ops/matmul.ts";
import { tuneMatmul } from "../../src/tensor/ops/matmul_tune.ts";
import { gpuTest } from "../support/check.ts";

const TINY = [{ m: 24, k: 8, n: 16, transA: false, transB: true }];

gpuTest(
  "the matmul variant is measured once per adapter, cached, and re-tuned on request",
  async (e) => {
    const dir = await Deno.makeTempDir();
    const opts = { cacheDir: `${dir}/cache`, shapes: TINY, repeats: 1 };
    const none = await tuneMatmul(e, { ...opts, measure: false });
    assert.equal(none.source, "default");
    assert.equal(none.variant.name, MATMUL_VARIANTS[0].name);
    const first = await tuneMatmul(e, opts);
    assert.equal(first.source, "measured");
    assert.deepEqual(Object.keys(first.times).sort(), MATMUL_VARIANTS.map((v) => v.name).sort());
    const fastest = Object.entries(first.times).sort((a, b) => a[1] - b[1])[0][0];
    assert.equal(first.variant.name, fastest);
    assert.equal(matmulVariantOf(e).name, fastest, "the engine uses the choice");
    const saved = JSON.parse(await Deno.readTextFile(first.path));
    assert.equal(saved.adapter, e.gpu.adapterName);
    const again = await tuneMatmul(e, opts);
    assert.equal(again.source, "cache");
    assert.equal(again.variant.name, fastest);
    assert.equal((await tuneMatmul(e, { ...opts, retune: true })).source, "measured");
    // A cache written on another adapter is not this one's.
    await Deno.writeTextFile(first.path, JSON.stringify({ ...saved, adapter: "other GPU" }));
    assert.equal((await tuneMatmul(e, { ...opts, measure: false })).source, "default");
    await Deno.remove(dir, { recursive: true });
  },
);
