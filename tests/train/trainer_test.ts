import assert from "node:assert/strict";
import { DEFAULTS, parseTrainArgs, type TrainConfig, trainHelp } from "../../src/train/config.ts";
import { MemoryBudgetError } from "../../src/train/memory.ts";
import {
  prepareData,
  type PreparedData,
  train,
  VALIDATION_SCORES,
  validationNote,
  validationUserCap,
} from "../../src/train/recommender.ts";
import { Logger } from "../../src/train/log.ts";
import { RunStore } from "../../src/store/runs.ts";
import { readSafetensors } from "../../src/train/safetensors.ts";
import { gpuTest } from "../support/check.ts";
import { tinyData } from "../support/tiny_data.ts";

const quiet = () => new Logger({ json: true, write: () => {}, progress: false });

function tinyConfig(data: string, out: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...DEFAULTS,
    data,
    out,
    dim: 16,
    heads: 2,
    seqLen: 8,
    batchSize: 32,
    epochs: 2,
    lr: 0.01,
    dropout: 0.1,
    ...over,
  };
}

gpuTest("a run records config, metrics and checkpoints, and learns the pattern", async (e) => {
  const dir = await Deno.makeTempDir();
  const config = tinyConfig(await tinyData(dir), `${dir}/runs`, { epochs: 4 });
  const r = await train(e, config, await prepareData(config), { logger: quiet() });
  assert.equal(r.status, "finished", r.error ?? "");
  assert.ok(r.test["hr@10"] > 0.5, `test HR@10 ${r.test["hr@10"]}`);
  assert.ok(
    r.test["ndcg@10"] > 2 * r.mostPopTest["ndcg@10"],
    "SASRec beats MostPop on a sequential pattern",
  );
  const store = await RunStore.open(config.out);
  const run = (await store.getRun(r.runId))!;
  assert.equal(run.status, "finished");
  assert.ok(run.peakBytes! > 0 && run.wallSeconds! > 0);
  assert.equal((await store.metrics(r.runId, "train_loss")).length, 4);
  assert.equal((await store.metrics(r.runId, "test_ndcg@10")).length, 1);
  assert.equal((await store.metrics(r.runId, "mostpop_test_ndcg@10")).length, 1);
  await store.close();
  const ckpt = await readSafetensors(`${r.runDir}/last.safetensors`);
  assert.ok("item_embedding" in ckpt.tensors && "optimizer.m.0" in ckpt.tensors);
  await Deno.remove(dir, { recursive: true });
});

gpuTest("a resumed run matches an uninterrupted one bit for bit", async (e) => {
  const dir = await Deno.makeTempDir();
  const data = await tinyData(dir);
  // Fused CE- with per-position negatives adds its table gradient with float atomics, whose order
  // varies; with batch-shared negatives it has a fixed order like every other loss here.
  const cases = [
    { loss: "ce" },
    { loss: "ce-" },
    { loss: "cce" },
    { loss: "cce-", sampler: "shared" },
  ] as const;
  for (const over of cases) {
    const loss = `${over.loss} ${"sampler" in over ? over.sampler : ""}`;
    const straight = tinyConfig(data, `${dir}/a-${over.loss}`, {
      ...over,
      negatives: 5,
      epochs: 2,
    });
    const a = await train(e, straight, await prepareData(straight), { logger: quiet() });
    const first = tinyConfig(data, `${dir}/b-${over.loss}`, { ...over, negatives: 5, epochs: 1 });
    const b1 = await train(e, first, await prepareData(first), { logger: quiet() });
    const second = { ...first, epochs: 2, resume: b1.runId };
    const b2 = await train(e, second, await prepareData(second), { logger: quiet() });
    assert.equal(b2.runId, b1.runId);
    const ta = (await readSafetensors(`${a.runDir}/last.safetensors`)).tensors;
    const tb = (await readSafetensors(`${b2.runDir}/last.safetensors`)).tensors;
    for (const name of Object.keys(ta)) {
      assert.deepEqual(
        new Uint32Array(tb[name].data.buffer),
        new Uint32Array(ta[name].data.buffer),
        `${loss} ${name}`,
      );
    }
    assert.deepEqual(b2.test, a.test);
  }
  await Deno.remove(dir, { recursive: true });
});

gpuTest(
  "a diverging run stops at its first non-finite loss, is marked failed and writes no checkpoint",
  async (e) => {
    const dir = await Deno.makeTempDir();
    const config = tinyConfig(await tinyData(dir), `${dir}/runs`, { lr: 1e36, epochs: 3 });
    const r = await train(e, config, await prepareData(config), { logger: quiet() });
    assert.equal(r.status, "failed");
    assert.match(r.error!, /loss became (NaN|Infinity|-Infinity) at epoch 1, step \d+/);
    const step = Number(/step (\d+)/.exec(r.error!)![1]);
    const store = await RunStore.open(config.out);
    assert.equal((await store.getRun(r.runId))!.status, "failed");
    assert.equal(
      (await store.metrics(r.runId, "train_loss_step")).length,
      step - 1,
      "no step after the bad one",
    );
    await store.close();
    assert.ok(![...Deno.readDirSync(r.runDir)].some((f) => f.name.endsWith(".safetensors")));
    await Deno.remove(dir, { recursive: true });
  },
);

gpuTest(
  "a configuration over the memory budget is refused before anything is written",
  async (e) => {
    const dir = await Deno.makeTempDir();
    const config = tinyConfig(await tinyData(dir), `${dir}/runs`);
    const data = await prepareData({ ...config, out: `${dir}/cache-only` });
    const saved = e.gpu.allocator.limitBytes;
    e.gpu.allocator.limitBytes = 1 << 20;
    try {
      await assert.rejects(() => train(e, config, data, { logger: quiet() }), (err: Error) => {
        assert.ok(err instanceof MemoryBudgetError);
        assert.match(err.message, /needs an estimated .* of GPU memory .* budget is 1.00 MiB/);
        return true;
      });
    } finally {
      e.gpu.allocator.limitBytes = saved;
    }
    assert.throws(() => Deno.statSync(config.out));
    await Deno.remove(dir, { recursive: true });
  },
);

Deno.test("bad input stops with file:line and writes nothing under runs/", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/bad.txt`;
  await Deno.writeTextFile(path, "1 2 3 4\n2 5 x 7\n");
  const config = tinyConfig(path, `${dir}/runs`);
  await assert.rejects(() => prepareData(config), new RegExp(`${path}:2: .*x`));
  assert.throws(() => Deno.statSync(config.out));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--help documents every flag with its default; bad flags are refused", () => {
  const help = trainHelp();
  for (
    const flag of [
      "--data",
      "--format",
      "--loss",
      "--negatives",
      "--batch-size",
      "--seq-len",
      "--epochs",
      "--lr",
      "--seed",
      "--out",
      "--resume",
    ]
  ) {
    assert.match(help, new RegExp(`${flag} .*\\[default: `));
  }
  assert.throws(
    () => parseTrainArgs(["--batch-size", "0"]),
    /--batch-size must be a whole number ≥ 1/,
  );
  assert.throws(
    () => parseTrainArgs(["--loss", "mse"]),
    /--loss: "mse" is not one of cce-, cce, ce, ce-, bce, gbce/,
  );
  assert.throws(() => parseTrainArgs(["--frobnicate"]), /frobnicate/);
  const { config } = parseTrainArgs([
    "--loss",
    "ce-",
    "--negatives",
    "64",
    "--memory-limit",
    "2GiB",
  ]);
  assert.equal(config.loss, "ce-");
  assert.equal(config.negatives, 64);
  assert.equal(config.memoryLimit, 2 ** 31);
});

gpuTest("MovieLens ratings.csv trains from the CSV reader unchanged", async (e) => {
  const path = "../shared/data/ml-latest-small/ratings.csv";
  try {
    Deno.statSync(path);
  } catch {
    return; // the shared data is not on this machine
  }
  const dir = await Deno.makeTempDir();
  const config = tinyConfig(path, `${dir}/runs`, {
    epochs: 1,
    seqLen: 20,
    batchSize: 128,
    evalUsers: 100,
  });
  const data = await prepareData(config);
  assert.equal(data.dataset.users, 610);
  assert.equal(data.dataset.items, 9724);
  const r = await train(e, config, data, { logger: quiet() });
  assert.equal(r.status, "finished", r.error ?? "");
  assert.ok(r.test["ndcg@10"] >= 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("validation samples users only when the catalogue makes a full pass slow", () => {
  assert.equal(validationUserCap(12_101), Math.floor(VALIDATION_SCORES / 12_102), "Beauty: all");
  assert.ok(validationUserCap(12_101) > 22_363, "every Beauty user is validated");
  assert.equal(validationUserCap(1_000_000), 1999, "1M items: about 2,000 users per epoch");
  assert.equal(validationUserCap(1e9), 1000, "never fewer than 1,000");
});

Deno.test("a sampled validation is named on the run line: how many of whom, and the flag", () => {
  const examples = (n: number) =>
    Array.from({ length: n }, (_, user) => ({ user, history: [], target: 1 }));
  const data = {
    split: { train: [], valid: examples(1999), test: examples(100_000) },
    validationSample: true,
  } as unknown as PreparedData;
  const note = validationNote(data, { ...DEFAULTS, seed: 7 });
  assert.match(note, /fixed random 1999 of the 100000 users \(seed 7; at most 2·10⁹ scores/);
  assert.match(note, /final test ranks them all; --eval-users N sets both/);
});

gpuTest(
  "on llvmpipe, train refuses a --seq-len its attention cannot loop over, before a run",
  async (e) => {
    if (!e.gpu.isSoftware) return;
    const dir = await Deno.makeTempDir();
    // Head width 48 has no register kernels: with dropout the generic ones loop 41 times a tile.
    const config = tinyConfig(await tinyData(dir), `${dir}/runs`, { dim: 96, seqLen: 16_000 });
    await assert.rejects(
      async () => await train(e, config, await prepareData(config), { logger: quiet() }),
      /--seq-len 16000: the generic kernels would loop 41000 times .*dropout.*; lower --seq-len/,
    );
    // prepareData caches the dataset there; no run was opened.
    assert.deepEqual([...Deno.readDirSync(`${dir}/runs`)].map((f) => f.name), ["cache"]);
    await Deno.remove(dir, { recursive: true });
  },
);
