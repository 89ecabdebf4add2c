/** Language-model training through the generic loop: run store, checkpoints, resume, curves. */
import assert from "node:assert/strict";
import { type LmConfig, parseLmTrainArgs, resumeLmConfig } from "../../src/train/lm_config.ts";
import { evaluateText, loadLmRun, prepareText, trainLm } from "../../src/train/lm.ts";
import { tokenObjectiveOf } from "../../src/loss/token_objectives.ts";
import { generate } from "../../src/models/generate.ts";
import { Logger } from "../../src/train/log.ts";
import { RunStore } from "../../src/store/runs.ts";
import { readSafetensors } from "../../src/train/safetensors.ts";
import { gpuTest } from "../support/check.ts";
import { tinyLmConfig } from "../support/tiny_data.ts";

const quiet = () => new Logger({ json: true, write: () => {}, progress: false });

/** A repetitive text a tiny model learns within a few dozen steps. */
/** The shared tiny LM, trained 3 epochs of 20 steps at a learning rate it learns the text with. */
const tinyConfig = (dir: string, over: Partial<LmConfig> = {}) =>
  tinyLmConfig(dir, { stepsPerEpoch: 20, epochs: 3, lr: 2e-2, ...over });

gpuTest("an LM run records losses, tokens/s and checkpoints, and learns the text", async (e) => {
  const dir = await Deno.makeTempDir();
  const c = await tinyConfig(dir);
  const data = await prepareText(c);
  assert.equal(data.tokenizer.vocabSize, 11);
  const r = await trainLm(e, c, data, { logger: quiet() });
  assert.equal(r.status, "finished", r.error ?? "");
  assert.ok(r.valid.loss < Math.log(11) - 0.5, `valid loss ${r.valid.loss}`);
  assert.ok(Math.abs(r.valid.ppl - Math.exp(r.valid.loss)) < 1e-9);
  assert.ok(Math.abs(r.valid.bpc - r.valid.loss / Math.LN2) < 1e-9, "one char per token");
  const store = await RunStore.open(c.out);
  for (const key of ["train_loss", "valid_loss", "valid_bpc", "tokens_per_second"]) {
    assert.equal((await store.metrics(r.runId, key)).length, 3, key);
  }
  assert.equal((await store.metrics(r.runId, "valid_all_loss")).length, 1);
  assert.ok((await store.metrics(r.runId, "tokens_per_second"))[0].value > 0);
  await store.close();
  const ckpt = await readSafetensors(`${r.runDir}/last.safetensors`);
  assert.ok("model.layers.0.self_attn.q_proj.weight" in ckpt.tensors);
  assert.ok("optimizer.m.0" in ckpt.tensors);
  // The run's model and tokenizer come back from its folder and score the same.
  const { model, tokenizer, run } = await loadLmRun(e, c.out, r.runId);
  const again = await evaluateText(model, tokenObjectiveOf(run.loss), data.split.valid, {
    seqLen: run.seqLen,
    batchSize: run.batchSize,
    charsPerToken: 1,
  });
  assert.equal(again.loss, r.valid.loss);
  const g = await generate(model, tokenizer.encode("the "), {
    maxTokens: 8,
    temperature: 0,
    topK: 0,
    seed: 0,
  });
  assert.equal(g.ids.length, 8);
  assert.equal(tokenizer.decode(g.ids), "cat sat ", "greedy continues the pattern");
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

gpuTest("a resumed LM run matches an uninterrupted one bit for bit", async (e) => {
  const dir = await Deno.makeTempDir();
  const straight = await tinyConfig(dir, { out: `${dir}/a`, epochs: 2 });
  const a = await trainLm(e, straight, await prepareText(straight), { logger: quiet() });
  const first = await tinyConfig(dir, { out: `${dir}/b`, epochs: 1 });
  const b1 = await trainLm(e, first, await prepareText(first), { logger: quiet() });
  const { config: requested, given } = parseLmTrainArgs([
    "--resume",
    b1.runId,
    "--out",
    `${dir}/b`,
    "--epochs",
    "2",
  ]);
  const second = resumeLmConfig({ ...first, task: "lm" }, requested, given);
  assert.equal(second.dim, 16);
  const b2 = await trainLm(e, second, await prepareText(second), { logger: quiet() });
  assert.equal(b2.runId, b1.runId);
  const ta = (await readSafetensors(`${a.runDir}/last.safetensors`)).tensors;
  const tb = (await readSafetensors(`${b2.runDir}/last.safetensors`)).tensors;
  for (const name of Object.keys(ta)) {
    assert.deepEqual(
      new Uint32Array(tb[name].data.buffer),
      new Uint32Array(ta[name].data.buffer),
      name,
    );
  }
  assert.deepEqual(b2.valid, a.valid);
  const { config: wrong, given: wrongGiven } = parseLmTrainArgs([
    "--resume",
    b1.runId,
    "--dim",
    "32",
  ]);
  assert.throws(
    () => resumeLmConfig({ ...first }, wrong, wrongGiven),
    /--dim 32 \(the run has 16\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("lm:train flags: data required, head widths checked", () => {
  assert.throws(() => parseLmTrainArgs([]), /--data FILE is required/);
  assert.throws(
    () => parseLmTrainArgs(["--data", "x", "--dim", "30", "--heads", "4"]),
    /even head width/,
  );
  assert.throws(
    () => parseLmTrainArgs(["--data", "x", "--kv-heads", "3"]),
    /multiple of --kv-heads 3/,
  );
  assert.equal(parseLmTrainArgs(["--data", "x", "--untied"]).config.untied, true);
});

gpuTest(
  "on llvmpipe, lm:train refuses a --seq-len its attention cannot loop over, before a run",
  async (e) => {
    if (!e.gpu.isSoftware) return;
    const dir = await Deno.makeTempDir();
    const c = await tinyConfig(dir);
    const data = await prepareText(c);
    // Head width 48 has no register kernels: the generic ones loop 25 times a tile of 16 keys.
    const long = { ...c, seqLen: 24_000, dim: 96, heads: 2, kvHeads: 2 };
    await assert.rejects(
      () => trainLm(e, long, data, { logger: quiet() }),
      /--seq-len 24000: the generic kernels would loop 37500 times .*; lower --seq-len/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((f) => f.name), ["text.txt"], "no runs folder");
    await Deno.remove(dir, { recursive: true });
  },
);
