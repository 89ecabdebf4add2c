import assert from "node:assert/strict";
import {
  DEFAULTS,
  parseTrainArgs,
  resumeConfig,
  type TrainConfig,
} from "../../src/train/config.ts";
import { prepareData, train } from "../../src/train/recommender.ts";
import { Logger } from "../../src/train/log.ts";
import { RunSession } from "../../src/train/session.ts";
import { LOST_AFTER_SECONDS, RunStore } from "../../src/store/runs.ts";
import { gpuTest } from "../support/check.ts";
import { tinyData } from "../support/tiny_data.ts";

const quiet = () => new Logger({ json: true, write: () => {}, progress: false });

Deno.test("resume takes the stored configuration and applies only what may change", () => {
  const stored = { ...DEFAULTS, loss: "ce", lr: 0.01, dim: 16, epochs: 2 };
  const parsed = parseTrainArgs(["--resume", "R", "--epochs", "5", "--patience", "2"]);
  const c = resumeConfig(stored, parsed.config, parsed.given);
  assert.equal(c.loss, "ce", "not the default cce-");
  assert.equal(c.lr, 0.01);
  assert.equal(c.dim, 16);
  assert.equal(c.epochs, 5);
  assert.equal(c.patience, 2);
  assert.equal(c.resume, "R");
});

Deno.test("a resume flag that contradicts the stored configuration is refused, listing all", () => {
  const stored = { ...DEFAULTS, loss: "ce", lr: 0.01 };
  const parsed = parseTrainArgs(["--resume", "R", "--loss", "bce", "--lr", "0.5", "--epochs", "3"]);
  assert.throws(
    () => resumeConfig(stored, parsed.config, parsed.given),
    (e: Error) => {
      assert.match(e.message, /--loss "bce" \(the run has "ce"\)/);
      assert.match(e.message, /--lr 0\.5 \(the run has 0\.01\)/);
      assert.doesNotMatch(e.message, /--epochs 3/);
      assert.match(e.message, /Only --epochs, --patience, --eval-every may change/);
      return true;
    },
  );
  // A flag repeated with the stored value is no contradiction.
  const same = parseTrainArgs(["--resume", "R", "--loss", "ce"]);
  assert.equal(resumeConfig(stored, same.config, same.given).loss, "ce");
});

Deno.test("flag values: negative numbers name the range, --data with --catalog is refused", () => {
  assert.throws(() => parseTrainArgs(["--lr", "-1"]), /--lr must be > 0, got -1/);
  assert.throws(
    () => parseTrainArgs(["--batch-size", "-3"]),
    /--batch-size must be a whole number ≥ 1, got -3/,
  );
  assert.throws(
    () => parseTrainArgs(["--data", "x.txt", "--catalog", "large"]),
    /--data and --catalog both name the training data/,
  );
  assert.deepEqual(
    [...parseTrainArgs(["--dim", "32", "--json"]).given].sort(),
    ["dim", "json"],
  );
});

gpuTest("a programmatic resume with a different objective is refused", async (e) => {
  const dir = await Deno.makeTempDir();
  const config: TrainConfig = {
    ...DEFAULTS,
    data: await tinyData(dir),
    out: `${dir}/runs`,
    loss: "ce",
    dim: 16,
    heads: 2,
    seqLen: 8,
    batchSize: 32,
    epochs: 1,
  };
  const data = await prepareData(config);
  const first = await train(e, config, data, { logger: quiet() });
  await assert.rejects(
    () => train(e, { ...config, loss: "bce", resume: first.runId }, data, { logger: quiet() }),
    /--loss "bce" \(the run has "ce"\)/,
  );
  const more = await train(e, { ...config, epochs: 2, resume: first.runId }, data, {
    logger: quiet(),
  });
  assert.equal(more.epochs, 2);
  const store = await RunStore.open(config.out);
  assert.equal(
    (await store.getRun(first.runId))!.config.epochs,
    2,
    "the new epoch count is recorded",
  );
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a run whose process stopped beating reads back as lost, and resumes", async () => {
  const dir = await Deno.makeTempDir();
  const session = await RunSession.open({
    out: dir,
    resume: null,
    name: "n",
    dataset: "d",
    config: { loss: "ce" },
    configFile: {},
    logger: quiet(),
  });
  const store = await RunStore.open(dir);
  assert.equal((await store.getRun(session.runId))!.status, "running");
  // The process dies without finishing: its last beat ages past the limit.
  const past = new Date(Date.now() - (LOST_AFTER_SECONDS + 5) * 1000);
  await store.heartbeat(session.runId, past);
  assert.equal((await store.getRun(session.runId))!.status, "lost");
  assert.equal((await store.listRuns())[0].status, "lost");
  const again = await RunSession.open({
    out: dir,
    resume: session.runId,
    name: "n",
    dataset: "d",
    config: { loss: "ce" },
    configFile: {},
    logger: quiet(),
  });
  assert.equal((await store.getRun(session.runId))!.status, "running");
  again.finish({ status: "stopped", error: null, wallSeconds: 1, peakBytes: 0 });
  await session.finish({ status: "stopped", error: null, wallSeconds: 1, peakBytes: 0 });
  assert.equal((await store.getRun(session.runId))!.status, "stopped");
  await store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--catalog is checked with the other flags; a temporal split needs timestamps", async () => {
  assert.throws(() => parseTrainArgs(["--catalog", "1"]), /--catalog must be small, medium/);
  const dir = await Deno.makeTempDir();
  const c = {
    ...DEFAULTS,
    data: await tinyData(dir),
    out: `${dir}/runs`,
    split: "temporal" as const,
  };
  await assert.rejects(() => prepareData(c), /--split temporal: .*tiny\.txt has no timestamps/);
  await Deno.remove(dir, { recursive: true });
});
