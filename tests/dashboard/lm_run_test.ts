/** The run page of a language-model run (lm:train): loss with validation, and tokens/s. */
import assert from "node:assert/strict";
import { createApp } from "../../src/dashboard/app.tsx";
import { makeFixture } from "./fixtures.ts";

const LM_RUN = "20261202-120000-lmlmlm";

/** The keys of every chart series on a page, by chart title. */
function chartKeys(page: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const m of page.matchAll(/data-chart="([^"]*)"/g)) {
    const spec = JSON.parse(m[1].replaceAll("&quot;", '"'));
    out[spec.title] = spec.series.map((s: { key: string }) => s.key);
  }
  return out;
}

Deno.test("an LM run's page charts validation loss and tokens/s, not ranking metrics", async () => {
  const fx = await makeFixture();
  const abort = new AbortController();
  try {
    fx.store.createRun({
      id: LM_RUN,
      name: "tinyshakespeare-llama",
      dataset: "tinyshakespeare",
      config: { task: "lm", batchSize: 64, seqLen: 64, epochs: 2, loss: "ce" },
    });
    fx.store.addMetrics(
      LM_RUN,
      [1, 2].flatMap((epoch) => [
        { epoch, step: epoch * 50, key: "train_loss", value: 3 - epoch },
        { epoch, step: epoch * 50, key: "valid_loss", value: 3.1 - epoch },
        { epoch, step: epoch * 50, key: "tokens_per_second", value: 8000 + epoch },
      ]),
    );
    const app = createApp({ runsDir: fx.dir, signal: abort.signal });
    const res = await app.request(`/runs/${LM_RUN}`);
    assert.equal(res.status, 200);
    const lm = chartKeys(await res.text());
    assert.deepEqual(lm["loss"], ["train_loss_step", "train_loss", "valid_loss"]);
    assert.deepEqual(lm["training throughput"], ["tokens_per_second"]);
    assert.equal(lm["validation ranking"], undefined);
    const page = await (await app.request(`/runs/${LM_RUN}`)).text();
    assert.match(page, /&quot;unit&quot;:&quot;tokens&quot;/);
    // The series the charts fetch are served.
    const metrics = await (await app.request(
      `/api/runs/${LM_RUN}/metrics?keys=valid_loss,tokens_per_second`,
    )).json();
    assert.deepEqual(metrics.series.valid_loss.value, [2.1, 1.1]);
    assert.deepEqual(metrics.series.tokens_per_second.value, [8001, 8002]);
    // A recommender run keeps its ranking chart and has no throughput chart.
    const rec = chartKeys(await (await app.request(`/runs/${fx.ids.finished}`)).text());
    assert.deepEqual(rec["validation ranking"], ["valid_{metric}"]);
    assert.deepEqual(rec["training loss"], ["train_loss_step", "train_loss"]);
    assert.equal(rec["training throughput"], undefined);
  } finally {
    abort.abort();
    await fx.cleanup();
  }
});
