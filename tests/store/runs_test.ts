import assert from "node:assert/strict";
import { newRunId, RunStore } from "../../src/store/runs.ts";

Deno.test("runs and metrics round-trip through the store", async () => {
  const dir = await Deno.makeTempDir();
  const store = await RunStore.open(dir);
  const id = newRunId();
  await store.createRun({
    id,
    name: "beauty-ce",
    dataset: "Beauty.txt",
    config: { lr: 0.001, loss: "ce" },
  });
  await store.addMetrics(id, [
    { epoch: 1, step: 10, key: "train_loss", value: 9.1 },
    { epoch: 1, step: 10, key: "valid_ndcg@10", value: 0.01 },
    { epoch: 2, step: 20, key: "train_loss", value: 8.5 },
  ]);
  await store.update(id, {
    status: "finished",
    wallSeconds: 12.5,
    peakBytes: 123456789,
    bestValidNdcg10: 0.01,
    finished: true,
  });
  const run = (await store.getRun(id))!;
  assert.equal(run.status, "finished");
  assert.equal(run.config.loss, "ce");
  assert.equal(run.peakBytes, 123456789);
  assert.ok(run.finishedAt);
  assert.deepEqual((await store.metrics(id, "train_loss")).map((m) => m.value), [9.1, 8.5]);
  await store.truncateMetrics(id, 10);
  assert.equal((await store.metrics(id)).length, 2);
  assert.equal((await store.listRuns()).length, 1);
  assert.equal(await store.getRun("nope"), null);
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("run ids sort by time", () => {
  const a = newRunId(new Date("2026-01-01T00:00:00Z"));
  const b = newRunId(new Date("2026-01-02T00:00:00Z"));
  assert.ok(a < b);
  assert.match(a, /^20260101-000000-[0-9a-f]{6}$/);
});
