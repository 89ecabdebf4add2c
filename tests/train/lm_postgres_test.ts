/** lm:train with `--store postgres://…`: the run lands in the shared store, not in a sqlite file. */
import assert from "node:assert/strict";
import { parseLmTrainArgs } from "../../src/train/lm_config.ts";
import { prepareText, trainLm } from "../../src/train/lm.ts";
import { Logger } from "../../src/train/log.ts";
import { RunStore } from "../../src/store/runs.ts";
import { postgresTest } from "../support/postgres_server.ts";
import { tinyLmConfig } from "../support/tiny_data.ts";

Deno.test("lm:train --store takes a postgres:// URL and refuses anything else", () => {
  const url = "postgres://cutrec@127.0.0.1:5432/runs";
  assert.equal(parseLmTrainArgs(["--data", "x", "--store", url]).config.store, url);
  assert.throws(
    () => parseLmTrainArgs(["--data", "x", "--store", "runs.sqlite"]),
    /--store must be postgres:\/\/USER@HOST:PORT\/DB .*got "runs.sqlite"/,
  );
});

postgresTest(
  "an LM run records into a PostgreSQL store, its URL kept without the password",
  async ({ e, dir, store }) => {
    const c = await tinyLmConfig(dir, { store, hidden: 24, stepsPerEpoch: 5 });
    const logger = new Logger({ json: true, write: () => {}, progress: false });
    const r = await trainLm(e, c, await prepareText(c), { logger });
    assert.equal(r.status, "finished", r.error ?? "");
    const runs = await RunStore.open(c.out, store);
    try {
      const run = await runs.getRun(r.runId);
      assert.equal(run?.status, "finished");
      assert.ok(!JSON.stringify(run?.config).includes("secret"), "no password in the record");
      assert.equal((await runs.metrics(r.runId, "train_loss")).length, 1);
    } finally {
      await runs.close();
    }
    assert.ok(
      !(await Array.fromAsync(Deno.readDir(c.out))).some((f) => f.name.endsWith(".sqlite")),
      "no sqlite store written",
    );
  },
);
