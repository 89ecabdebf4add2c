/**
 * `deno task prune` on the other backbones: stories260K (a llama2.c file; NLL and KL from the
 * dense model on sequences sampled from it) and a SASRec run (validation and test NDCG@10 and
 * HR@10); unstructured 0% equals dense there too. The NLL/KL reduction against a hand example.
 */
import assert from "node:assert/strict";
import { StoreReader } from "../../src/store/read.ts";
import { DEFAULTS, type TrainConfig } from "../../src/train/config.ts";
import { Logger } from "../../src/train/log.ts";
import { prepareData, train } from "../../src/train/recommender.ts";
import { main, type Row } from "../../tasks/prune.ts";
import { nllAndKl } from "../../tasks/prune_backbones.ts";
import { gpuTest } from "../support/check.ts";
import { tinyData } from "../support/tiny_data.ts";

async function quietly(args: string[]): Promise<number> {
  const [log, err] = [console.log, console.error];
  console.log = console.error = () => {};
  try {
    return await main(args);
  } finally {
    console.log = log;
    console.error = err;
  }
}

Deno.test("NLL of the next tokens and KL(dense ‖ pruned), by hand", () => {
  // One sequence [0, 1, 1] over 2 tokens; positions 0 and 1 predict tokens 1 and 1.
  const lp = (p: number) => [Math.log(1 - p), Math.log(p)];
  const dense = Float64Array.from([...lp(0.5), ...lp(0.8), ...lp(0.3)]);
  const pruned = Float64Array.from([...lp(0.25), ...lp(0.8), ...lp(0.9)]);
  const ids = Int32Array.from([0, 1, 1]);
  const same = nllAndKl(ids, 1, 2, dense, dense);
  assert.equal(same.kl, 0);
  assert.ok(Math.abs(same.nll - -(Math.log(0.5) + Math.log(0.8)) / 2) < 1e-12);
  const kl0 = 0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(0.5 / 0.25);
  const r = nllAndKl(ids, 1, 2, dense, pruned);
  assert.ok(Math.abs(r.kl - kl0 / 2) < 1e-12, `${r.kl}`);
  assert.ok(Math.abs(r.nll - -(Math.log(0.25) + Math.log(0.8)) / 2) < 1e-12);
});

gpuTest("stories260K: NLL and KL on sampled sequences, 0% equal to dense", async () => {
  const dir = await Deno.makeTempDir();
  const code = await quietly([
    "--model",
    "data/stories260K/stories260K.bin",
    "--out",
    `${dir}/runs`,
    "--patterns",
    "8:16,u0",
    "--criteria",
    "magnitude",
    "--mitigations",
    "none,learn-shift",
    "--layers",
    "q,k,v,o,gate,up",
    "--sequences",
    "2",
    "--sequence-length",
    "12",
    "--calib-tokens",
    "24",
    "--fit-epochs",
    "2",
    "--json-out",
    `${dir}/p.json`,
    "--csv-out",
    `${dir}/p.csv`,
  ]);
  assert.equal(code, 0);
  const rows = JSON.parse(await Deno.readTextFile(`${dir}/p.json`)).rows as Row[];
  const dense = rows[0].metrics!;
  assert.equal(dense.kl, 0);
  assert.ok(dense.nll > 0 && Number.isFinite(dense.nll));
  const at = (s: string, m: string) =>
    rows.find((r) => r.sparsity === s && r.mitigation === m)!.metrics!;
  assert.ok(at("8:16", "none").kl > 0);
  assert.ok(at("8:16", "learn-shift").kl > 0);
  assert.deepEqual(at("u0", "none"), dense);
  // Evaluations of model files are stored too, with no run to link to.
  const csv = (await Deno.readTextFile(`${dir}/p.csv`)).split("\n")[0];
  assert.equal(csv, "kind,sparsity,criterion,mitigation,kl,nll,bits,refused");
  await Deno.remove(dir, { recursive: true });
});

gpuTest("SASRec run: NDCG@10 and HR@10 on validation and test, in the store", async (e) => {
  const dir = await Deno.makeTempDir();
  const config: TrainConfig = {
    ...DEFAULTS,
    data: await tinyData(dir),
    out: `${dir}/runs`,
    dim: 16,
    heads: 2,
    seqLen: 8,
    batchSize: 32,
    epochs: 2,
    lr: 0.01,
  };
  const quiet = new Logger({ json: true, write: () => {}, progress: false });
  const r = await train(e, config, await prepareData(config), { logger: quiet });
  const written = JSON.parse(await Deno.readTextFile(`${dir}/runs/${r.runId}/config.json`));
  assert.equal(written.task, "sasrec", "the run records its kind");
  const code = await quietly([
    "--model",
    r.runId,
    "--out",
    `${dir}/runs`,
    "--patterns",
    "8:16,u0",
    "--criteria",
    "clact",
    "--weights",
    "magnitude",
    "--calib-tokens",
    "64",
  ]);
  assert.equal(code, 0);
  const report = JSON.parse(await Deno.readTextFile(`${dir}/runs/${r.runId}/prune.json`));
  const rows = report.rows as Row[];
  assert.deepEqual(Object.keys(rows[0].metrics!).sort(), [
    "test_hr@10",
    "test_ndcg@10",
    "valid_hr@10",
    "valid_ndcg@10",
  ]);
  assert.equal(rows.length, 5);
  const u0 = rows.find((x) => x.kind === "activation" && x.sparsity === "u0")!;
  assert.deepEqual(u0.metrics, rows[0].metrics);
  const sparse = rows.find((x) => x.kind === "activation" && x.sparsity === "8:16")!;
  assert.ok(sparse.metrics!["test_ndcg@10"] >= 0 && sparse.refused === null);
  const reader = StoreReader.open(`${dir}/runs`);
  const [ev] = await reader.pruneEvaluationsOfRun(r.runId);
  assert.equal(ev.backbone, "sasrec");
  assert.equal(ev.headline, "test_ndcg@10");
  assert.ok(ev.higherIsBetter);
  await reader.close();
  await Deno.remove(dir, { recursive: true });
});
