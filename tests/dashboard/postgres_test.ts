/**
 * The dashboard on a PostgreSQL store (`deno task serve --store postgres://…`): the fixture's runs
 * and sweep written there, read back through the same routes. The test starts its own server and
 * is skipped, saying why, where PostgreSQL is not installed.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/dashboard/app.tsx";
import { postgresMissing, startPostgres } from "../support/postgres_server.ts";
import { makeFixture } from "./fixtures.ts";

Deno.test({
  name: "runs list, run API with its metric cursor, and the sweep page from PostgreSQL",
  ignore: postgresMissing !== null,
  fn: async () => {
    const server = await startPostgres();
    const store = await server.createStore();
    const fx = await makeFixture(store);
    const abort = new AbortController();
    try {
      const app = createApp({ runsDir: fx.dir, store, signal: abort.signal });
      const list = await (await app.request("/api/runs")).json();
      assert.equal(list.total, (await fx.store.listRuns()).length);
      assert.ok(list.runs.some((r: { id: string }) => r.id === fx.ids.finished));

      const metrics = await (await app.request(`/api/runs/${fx.ids.finished}/metrics`)).json();
      assert.ok(metrics.cursor > 0);
      assert.ok(metrics.series.train_loss.value.length > 0);
      const after = await (
        await app.request(`/api/runs/${fx.ids.finished}/metrics?after=${metrics.cursor}`)
      ).json();
      assert.deepEqual(Object.keys(after.series), [], "nothing after the newest row");

      const sweep = await app.request(`/sweeps/${fx.ids.sweep}`);
      assert.equal(sweep.status, 200);
      assert.match(await sweep.text(), /negatives × batch/);
    } finally {
      abort.abort();
      await fx.cleanup();
      await server.stop();
    }
  },
});
