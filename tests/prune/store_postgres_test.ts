/**
 * `deno task prune` and `deno task finetune` with `--store postgres://…`: the pruning evaluation
 * and the fine-tuned run land in the shared store, its URL kept without the password.
 */
import assert from "node:assert/strict";
import { finetuneLm } from "../../src/train/finetune.ts";
import { FINETUNE_DEFAULTS, parseFinetuneArgs } from "../../src/train/finetune_config.ts";
import { prepareText, trainLm } from "../../src/train/lm.ts";
import { Logger } from "../../src/train/log.ts";
import { StoreReader } from "../../src/store/read.ts";
import { RunStore } from "../../src/store/runs.ts";
import { main } from "../../tasks/prune.ts";
import { postgresTest } from "../support/postgres_server.ts";
import { tinyLmConfig } from "../support/tiny_data.ts";

const quiet = new Logger({ json: true, write: () => {}, progress: false });

Deno.test("prune and finetune --store take a postgres:// URL and refuse anything else", async () => {
  const url = "postgres://cutrec@127.0.0.1:5432/runs";
  assert.equal(parseFinetuneArgs(["--model", "x", "--store", url]).config.store, url);
  assert.throws(
    () => parseFinetuneArgs(["--model", "x", "--store", "runs.sqlite"]),
    /--store must be postgres:\/\/USER@HOST:PORT\/DB .*got "runs.sqlite"/,
  );
  await assert.rejects(
    main(["--model", "x", "--store", "runs.sqlite"]),
    /--store must be postgres:\/\/USER@HOST:PORT\/DB .*got "runs.sqlite"/,
  );
});

postgresTest(
  "a pruning evaluation and a fine-tuned run record into a PostgreSQL store",
  async ({ e, dir, store }) => {
    const c = await tinyLmConfig(dir, { hidden: 16, stepsPerEpoch: 5 });
    const base = await trainLm(e, c, await prepareText(c), { logger: quiet });
    const model = `${dir}/runs/${base.runId}`;
    const log = console.log;
    console.log = () => {};
    let code: number;
    try {
      code = await main([
        ...["--model", model, "--patterns", "2:4", "--criteria", "magnitude"],
        ...["--store", store, "--json-out", `${dir}/p.json`, "--csv-out", `${dir}/p.csv`],
      ]);
    } finally {
      console.log = log;
    }
    assert.equal(code, 0);
    const reader = StoreReader.open(`${dir}/runs`, store);
    try {
      const [ev] = await reader.pruneEvaluationsOfRun(base.runId);
      assert.equal(ev.id, JSON.parse(await Deno.readTextFile(`${dir}/p.json`)).evaluation);
      assert.equal((await reader.pruneEvaluation(ev.id))!.results.length, 1);
    } finally {
      await reader.close();
    }
    const r = await finetuneLm(e, {
      ...FINETUNE_DEFAULTS,
      method: "lora",
      model,
      prune: "weight-2:4",
      steps: 2,
      calibTokens: 64,
      evalTokens: 0,
      out: `${dir}/runs`,
      store,
    }, { logger: quiet });
    assert.equal(r.status, "finished", r.error ?? "");
    const runs = await RunStore.open(`${dir}/runs`, store);
    try {
      const run = await runs.getRun(r.runId);
      assert.equal(run?.status, "finished");
      assert.ok(!JSON.stringify(run?.config).includes("secret"), "no password in the record");
    } finally {
      await runs.close();
    }
  },
);
