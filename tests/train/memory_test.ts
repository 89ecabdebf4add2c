import assert from "node:assert/strict";
import { DEFAULTS, type TrainConfig } from "../../src/train/config.ts";
import {
  batchOptions,
  buildModel,
  estimateFor,
  expectedMaxPositions,
  prepareData,
  RecommenderTraining,
} from "../../src/train/recommender.ts";
import { BatchIterator } from "../../src/data/batches.ts";
import { evaluateRanking } from "../../src/train/evaluate.ts";
import { gpuTest } from "../support/check.ts";

Deno.test("expected batch positions lie between the mean batch and the longest rows", () => {
  const rows = Array.from({ length: 500 }, (_, i) => new Int32Array(2 + (i * 37) % 60));
  const lengths = rows.map((r) => Math.min(r.length - 1, 50));
  const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
  const worst = [...lengths].sort((a, b) => b - a).slice(0, 32).reduce((a, b) => a + b, 0);
  const few = expectedMaxPositions(rows, 32, 50, 10);
  const many = expectedMaxPositions(rows, 32, 50, 100_000);
  assert.ok(few > 32 * mean && few < many && many <= worst, `${few} ${many} ${worst}`);
  const equal = Array.from({ length: 100 }, () => new Int32Array(11));
  assert.equal(expectedMaxPositions(equal, 16, 50, 1000), 160, "no spread: exactly B·len");
  assert.equal(expectedMaxPositions(equal, 16, 4, 1000), 64, "rows are cut to seqLen");
});

const PEAK_CASES = [
  { label: "ce", within: 1.3, loss: "ce" },
  { label: "ce-", within: 1.3, loss: "ce-", sampler: "uniform", negatives: 64 },
  // The item table's parameters, Adam moments and dense gradient dominate this one, so the bound
  // is tight: counting the dense gradient twice or a flat slack on the table would break it.
  {
    label: "cce- on 50,000 items",
    within: 1.15,
    loss: "cce-",
    sampler: "uniform",
    negatives: 64,
    catalog: "50000",
    dim: 64,
    seqLen: 10,
    batchSize: 32,
  },
  // Popularity negatives with logQ keep 12 bytes per item on the device beside the table.
  {
    label: "cce- popularity + logQ on 200,000 items",
    within: 1.15,
    loss: "cce-",
    sampler: "popularity",
    logQ: true,
    negatives: 64,
    catalog: "200000",
    dim: 4,
    seqLen: 10,
    batchSize: 32,
  },
] as const;

for (const { label, within, ...over } of PEAK_CASES) {
  gpuTest(
    `the ${label} estimate bounds the measured peak of its steps within ${within}×`,
    async (e) => {
      const dir = await Deno.makeTempDir();
      const c: TrainConfig = {
        ...DEFAULTS,
        catalog: "small",
        out: dir,
        dim: 32,
        seqLen: 20,
        batchSize: 64,
        ...over,
      };
      const data = await prepareData(c);
      const al = e.gpu.allocator;
      al.trimPool();
      await e.gpu.sync();
      al.resetPeaks();
      const base = al.reservedBytes;
      const training = new RecommenderTraining(e, c, data);
      const batches = new BatchIterator(data.split.train, batchOptions(c)).epoch(0);
      const steps = 6;
      for (let step = 1; step <= steps; step++) {
        await training.step(batches.next().value!, step);
      }
      const measured = al.peakReservedBytes - base;
      const estimate = estimateFor(c, data, steps).step;
      training.dispose();
      assert.ok(
        estimate >= measured && estimate <= within * measured,
        `estimate ${estimate} against measured ${measured}`,
      );
      await Deno.remove(dir, { recursive: true });
    },
  );
}

gpuTest(
  "evaluation stays within the estimate's evaluation term, freeing block by block",
  async (e) => {
    const dir = await Deno.makeTempDir();
    const c: TrainConfig = { ...DEFAULTS, catalog: "small", out: dir, seqLen: 50 };
    const data = await prepareData(c);
    const al = e.gpu.allocator;
    al.trimPool();
    await e.gpu.sync();
    const model = buildModel(e, c, data.dataset.items);
    await e.gpu.sync();
    const base = al.liveBytes;
    al.resetPeaks();
    await evaluateRanking(model, data.split.valid.slice(0, 600), { keepSeen: false });
    const measured = al.peakLiveBytes - base;
    const estimate = estimateFor(c, data).evaluation;
    model.dispose();
    assert.ok(
      estimate >= measured && estimate <= 1.3 * measured,
      `evaluation estimate ${estimate} against measured ${measured}`,
    );
    await Deno.remove(dir, { recursive: true });
  },
);
