/**
 * The multi-machine set-up end to end on loopback: a sweep on a Redis queue whose store is a
 * PostgreSQL database, two workers whose trials record their runs in that same database. Redis and
 * PostgreSQL are servers this test starts itself; it is skipped, saying why, where either is not
 * installed.
 */
import assert from "node:assert/strict";
import { parseSweepArgs } from "../../src/sweep/grid.ts";
import { runSweep } from "../../src/sweep/runner.ts";
import { runWorker } from "../../src/sweep/worker.ts";
import { StoreReader } from "../../src/store/read.ts";
import { SweepStore } from "../../src/store/sweeps.ts";
import { postgresMissing, startPostgres } from "../support/postgres_server.ts";
import { tinyData } from "../support/tiny_data.ts";
import { redisMissing, startRedis } from "./redis_server.ts";

const TINY = ["--dim", "8", "--seq-len", "8", "--batch-size", "32"];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "two workers record a queued sweep's trials in one PostgreSQL store, once each",
  ignore: redisMissing !== null || postgresMissing !== null,
  // Workers, connections and trial processes outlive single awaits by design.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const redis = await startRedis();
    const postgres = await startPostgres();
    const dir = await Deno.makeTempDir();
    const store = await postgres.createStore();
    const workers = ["wa", "wb"].map((name) => {
      const abort = new AbortController();
      const done = runWorker({
        queue: redis.url,
        concurrency: 1,
        budget: null,
        artifacts: `${dir}/${name}`,
        store,
        leaseMs: 30_000,
        name,
        json: true,
        write: () => {},
        signal: abort.signal,
      });
      return { stop: () => (abort.abort(), done) };
    });
    try {
      const data = await tinyData(dir);
      const result = await runSweep(
        parseSweepArgs([
          ...["--data", data, "--out", `${dir}/runs`, ...TINY, "--epochs", "1"],
          ...["--lr", "1e-3,1e-2", "--memory-budget", "64MiB"],
          ...["--queue", redis.url, "--store", store, "--json"],
        ]),
        { write: () => {}, pollMs: 200 },
      );
      assert.equal(result.interrupted, false);
      const trials = result.view.trials;
      assert.deepEqual(trials.map((t) => t.status), ["finished", "finished"]);
      assert.deepEqual(trials.map((t) => t.worker).sort(), ["wa", "wb"]);

      // One place: the dashboard's reader of the PostgreSQL store sees the sweep, its trials'
      // workers and their runs with metrics; no SQLite store was written anywhere.
      const reader = StoreReader.open(`${dir}/runs`, store);
      const view = (await reader.getSweep(result.sweepId))!;
      assert.deepEqual(view.trials.map((t) => t.worker).sort(), ["wa", "wb"]);
      for (const t of view.trials) {
        assert.equal(t.run?.status, "finished");
        assert.equal(t.run?.sweepId, result.sweepId);
        assert.ok(t.validNdcg10! > 0, "the run's metrics are in the store");
        assert.ok(t.run!.checkpoint!.startsWith(`${dir}/${t.worker}/`), "checkpoints stay there");
      }
      assert.equal((await reader.listRuns()).length, 2, "each trial's run once");
      await reader.close();
      for (const folder of ["runs", "wa", "wb"]) {
        assert.ok(!exists(`${dir}/${folder}/runs.sqlite`), `${folder}/runs.sqlite`);
      }

      const sweeps = await SweepStore.open(`${dir}/runs`, store);
      assert.deepEqual(
        (await sweeps.listOutcomes(result.sweepId)).map((o) => o.attempt),
        [1, 1],
        "one ledger entry per trial",
      );
      await sweeps.close();
    } finally {
      for (const w of workers) await w.stop();
      await redis.stop();
      await postgres.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
