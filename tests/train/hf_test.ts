/**
 * The Hugging Face layout: export and reload give identical logits (one file and shards), the
 * exported tensors follow Hugging Face's half-split rotary convention (checked by the float64
 * reference run in that convention), and broken checkpoints name tensor, file and shapes.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadLlama2c } from "../../src/models/llama2c.ts";
import { type Llama, WeightError } from "../../src/models/llama.ts";
import { exportHfLlama, loadHfLlama } from "../../src/train/hf.ts";
import { readSafetensors, writeSafetensors } from "../../src/train/safetensors.ts";
import type { Engine } from "../../src/tensor/engine.ts";
import { gpuTest } from "../support/check.ts";
import { referenceLogits } from "../support/llama_reference.ts";

const STORIES = fileURLToPath(new URL("../../data/stories260K/stories260K.bin", import.meta.url));
const IDS = [1, 403, 407, 261, 379, 259, 13, 506, 280, 300, 1, 45];

async function logits(e: Engine, model: Llama): Promise<Float32Array> {
  return await e.tidyAsync(async () => {
    const h = model.forward(e.tensor(IDS, [1, IDS.length], "i32"));
    return await model.logits(e.alias(h, [IDS.length, model.config.dim])).readF32();
  });
}

gpuTest(
  "stories260K exported to the Hugging Face layout reloads with identical logits",
  async (e) => {
    const dir = await Deno.makeTempDir();
    const original = await loadLlama2c(e, STORIES);
    const want = await logits(e, original);
    await exportHfLlama(original, dir);
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    assert.equal(config.num_key_value_heads, 4);
    assert.equal(config.tie_word_embeddings, true);
    const file = await readSafetensors(`${dir}/model.safetensors`);
    assert.ok(!("lm_head.weight" in file.tensors), "a tied head is not written");
    assert.deepEqual(file.tensors["model.layers.0.self_attn.k_proj.weight"].shape, [32, 64]);
    const reloaded = await loadHfLlama(e, dir);
    assert.deepEqual(await logits(e, reloaded), want);
    // The exported tensors, run in Hugging Face's convention (rotate_half), give the same logits.
    const hfWeights = (name: string) => file.tensors[name].data;
    const hfRef = referenceLogits(reloaded.config, hfWeights, IDS, "half").flatMap((r) => [...r]);
    const scale = Math.max(...hfRef.map(Math.abs));
    assert.ok(hfRef.every((v, i) => Math.abs(v - want[i]) <= 1e-4 * scale));
    // …and in the adjacent convention they do not: the permutation matters.
    const adjacent = referenceLogits(reloaded.config, hfWeights, IDS, "adjacent").flatMap((
      r,
    ) => [...r]);
    assert.ok(adjacent.some((v, i) => Math.abs(v - want[i]) > 1e-2 * scale));
    original.dispose();
    reloaded.dispose();
    await Deno.remove(dir, { recursive: true });
  },
);

gpuTest(
  "a sharded export loads through its index; broken ones name tensor, file, shapes",
  async (e) => {
    const dir = await Deno.makeTempDir();
    const original = await loadLlama2c(e, STORIES);
    const want = await logits(e, original);
    await exportHfLlama(original, dir, { shardBytes: 300_000 });
    const index = JSON.parse(await Deno.readTextFile(`${dir}/model.safetensors.index.json`));
    const shards = [...new Set(Object.values(index.weight_map as Record<string, string>))];
    assert.ok(shards.length >= 3, `${shards.length} shards`);
    const reloaded = await loadHfLlama(e, `${dir}/config.json`);
    assert.deepEqual(await logits(e, reloaded), want);
    reloaded.dispose();

    // Drop a tensor from its shard: the error names it, the index and the expected shape.
    const name = "model.layers.2.mlp.up_proj.weight";
    const shard = `${dir}/${index.weight_map[name]}`;
    const st = await readSafetensors(shard);
    const { [name]: dropped, ...rest } = st.tensors;
    await writeSafetensors(shard, rest);
    await assert.rejects(() => loadHfLlama(e, dir), (err: Error) => {
      assert.ok(err instanceof WeightError);
      assert.match(err.message, /tensor model\.layers\.2\.mlp\.up_proj\.weight is missing/);
      assert.match(err.message, /model\.safetensors\.index\.json/);
      assert.match(err.message, /\[172, 64\]/);
      return true;
    });
    // Put it back with the wrong shape: the error names the shard and both shapes.
    await writeSafetensors(shard, {
      ...rest,
      [name]: { dtype: "F32", shape: [64, 172], data: dropped.data },
    });
    await assert.rejects(() => loadHfLlama(e, dir), (err: Error) => {
      assert.match(
        err.message,
        /tensor model\.layers\.2\.mlp\.up_proj\.weight in .*model-000\d\d-of-000\d\d\.safetensors is \[64, 172\], the model expects \[172, 64\]/,
      );
      return true;
    });
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ model_type: "gpt2" }));
    await assert.rejects(() => loadHfLlama(e, dir), /config\.json: model_type "gpt2" is not llama/);
    original.dispose();
    await Deno.remove(dir, { recursive: true });
  },
);
