/**
 * `deno task finetune` on a tiny SASRec run: the run's kind is read from its stored configuration;
 * each method after weight and activation 8:16 pruning records validation and test NDCG@10 and
 * HR@10 dense, pruned and fine-tuned, the trainable budget and a merged checkpoint; the step
 * stream cuts exactly the steps asked for out of the run's epochs.
 */
import assert from "node:assert/strict";
import { BatchIterator } from "../../src/data/batches.ts";
import { DEFAULTS, type TrainConfig } from "../../src/train/config.ts";
import { StepBatches } from "../../src/train/finetune_sasrec.ts";
import { Logger } from "../../src/train/log.ts";
import { prepareData, train } from "../../src/train/recommender.ts";
import { main } from "../../tasks/finetune.ts";
import { gpuTest } from "../support/check.ts";
import { tinyData } from "../support/tiny_data.ts";

/** Runs the task with --json; its exit code and the run id of its "finetune" event. */
async function quietly(args: string[]): Promise<{ code: number; run: string }> {
  const [log, err] = [console.log, console.error];
  let run = "";
  console.error = () => {};
  console.log = (line: string) => {
    const ev = JSON.parse(line);
    if (ev.event === "finetune") run = ev.run;
  };
  try {
    return { code: await main([...args, "--json"]), run };
  } finally {
    console.log = log;
    console.error = err;
  }
}

Deno.test("StepBatches: epoch i is batches [i·n, (i+1)·n) of the run's epochs end to end", () => {
  const seqs = Array.from({ length: 5 }, (_, u) => Int32Array.from([u + 1, u + 2, u + 3]));
  const source = new BatchIterator(seqs, { batchSize: 2, seqLen: 4, seed: 3 });
  const flat = [0, 1].flatMap((p) => [...source.epoch(p)].map((b) => [...b.users].join(",")));
  // 3 batches per pass: steps 4..6 straddle the first and second passes.
  const stream = new StepBatches(source, 2);
  const second = [...stream.epoch(1)].map((b) => [...b.users].join(","));
  const third = [...stream.epoch(2)].map((b) => [...b.users].join(","));
  assert.deepEqual(second, flat.slice(2, 4));
  assert.deepEqual(third, flat.slice(4, 6));
  const empty = new StepBatches(new BatchIterator([Int32Array.of(1)], source.opts), 1);
  assert.throws(() => [...empty.epoch(0)], /nothing to train on/);
});

gpuTest("finetune SASRec: every method after weight and activation 8:16 pruning", async (e) => {
  const dir = await Deno.makeTempDir();
  const config: TrainConfig = {
    ...DEFAULTS,
    data: await tinyData(dir),
    out: `${dir}/runs`,
    dim: 16,
    heads: 2,
    seqLen: 8,
    batchSize: 32,
    epochs: 1,
    lr: 0.01,
  };
  const quiet = new Logger({ json: true, write: () => {}, progress: false });
  const base = await train(e, config, await prepareData(config), { logger: quiet });
  const params: Record<string, number> = {};
  const cases: [string, string[]][] = [
    ["weight-8:16", ["--method", "gift-sw"]],
    ["weight-8:16", ["--method", "lora"]],
    ["act-8:16", ["--method", "full", "--criterion", "clact"]],
    ["act-8:16", ["--method", "gift-sw", "--no-noise", "--criterion", "clact"]],
  ];
  for (const [prune, flags] of cases) {
    const what = `${prune} ${flags.join(" ")}`;
    const { code, run } = await quietly([
      "--model",
      `${dir}/runs/${base.runId}`,
      "--out",
      `${dir}/runs`,
      "--prune",
      prune,
      ...flags,
      "--steps",
      "3",
      "--salient",
      "2",
      "--calib-tokens",
      "64",
      "--eval-users",
      "20",
    ]);
    assert.equal(code, 0, what);
    const summary = JSON.parse(await Deno.readTextFile(`${dir}/runs/${run}/finetune.json`));
    assert.equal(summary.status, "finished", `${what}: ${summary.error}`);
    const { dense, pruned, finetuned, repruned } = summary.ranking;
    for (const g of [dense, pruned, finetuned]) {
      assert.deepEqual(Object.keys(g).sort(), [
        "test_hr@10",
        "test_ndcg@10",
        "valid_hr@10",
        "valid_ndcg@10",
      ]);
      for (const v of Object.values(g) as number[]) assert.ok(v >= 0 && v <= 1, what);
    }
    assert.equal(repruned !== undefined, prune.startsWith("weight"), what);
    assert.ok(summary.peak_bytes > summary.trainable_bytes, what);
    await Deno.stat(`${dir}/runs/${run}/merged.safetensors`);
    params[flags[1]] = summary.trainable_params;
  }
  // q, k, v, o, fc1, fc2 of 2 blocks, each 16 wide, with k = 2: 12 · 16 · 2 = 384.
  assert.equal(params["gift-sw"], 384);
  assert.ok(Math.abs(params.lora - params["gift-sw"]) / params["gift-sw"] < 0.35);
  assert.ok(params.full > params.lora);
  await Deno.remove(dir, { recursive: true });
});
