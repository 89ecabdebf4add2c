/**
 * `deno task prune` end to end on a tiny trained run: a row per combination beside the dense one,
 * 2:4 scored, 0% equal to dense, refused combinations reported, the CSV with a line per row.
 */
import assert from "node:assert/strict";
import { prepareText, trainLm } from "../../src/train/lm.ts";
import { Logger } from "../../src/train/log.ts";
import { main, type Row } from "../../tasks/prune.ts";
import { StoreReader } from "../../src/store/read.ts";
import { gpuTest } from "../support/check.ts";
import { tinyLmConfig } from "../support/tiny_data.ts";

gpuTest("prune task: dense, activation and weight rows, JSON and CSV", async (e) => {
  const dir = await Deno.makeTempDir();
  // hidden 24: 8:16 divides the projections' width 16 but not down_proj's input 24.
  const c = await tinyLmConfig(dir, { stepsPerEpoch: 20 });
  const quiet = new Logger({ json: true, write: () => {}, progress: false });
  const r = await trainLm(e, c, await prepareText(c), { logger: quiet });
  const json = `${dir}/p.json`;
  const csv = `${dir}/p.csv`;
  const log = console.log;
  const err = console.error;
  console.log = console.error = () => {};
  let code: number;
  try {
    code = await main([
      "--model",
      `${dir}/runs/${r.runId}`,
      "--patterns",
      "8:16,2:4,u0",
      "--criteria",
      "clact",
      "--mitigations",
      "none,median-static,smoothquant,learn-shift",
      "--weights",
      "wanda",
      "--weight-extras",
      "none,o1:8+vc",
      "--calib-tokens",
      "64",
      "--fit-epochs",
      "2",
      "--json-out",
      json,
      "--csv-out",
      csv,
    ]);
  } finally {
    console.log = log;
    console.error = err;
  }
  assert.equal(code, 0);
  const report = JSON.parse(await Deno.readTextFile(json));
  const rows = (report.rows as Row[]).map((r) => ({ ...r, loss: r.metrics?.loss }));
  const of = (kind: string, sparsity: string) =>
    rows.filter((x) => x.kind === kind && x.sparsity === sparsity);
  assert.equal(rows.length, 19);
  assert.equal(rows[0].kind, "dense");
  for (const sparsity of ["8:16", "2:4", "u0"]) {
    assert.equal(of("activation", sparsity).length, 4, sparsity);
    assert.equal(of("weight", sparsity).length, 2, sparsity);
  }
  for (const row of [...of("activation", "8:16"), ...of("weight", "8:16")]) {
    assert.match(row.refused ?? "", /down_proj: input width 24 is not a multiple of M = 16/);
  }
  for (const row of [...of("activation", "2:4"), ...of("weight", "2:4")]) {
    assert.ok(Number.isFinite(row.loss) && row.loss !== rows[0].loss, JSON.stringify(row));
  }
  for (const row of of("activation", "u0")) assert.equal(row.loss, rows[0].loss);
  assert.match(of("weight", "u0")[0].refused ?? "", /ratio 0 keeps W dense/);
  // The outliers' own 1:8 values and codes come on top of 2:4's: more bits per element.
  const [plain, extra] = of("weight", "2:4");
  assert.equal(extra.mitigation, "o1:8+vc");
  assert.ok(extra.bits! > plain.bits!, `${extra.bits} > ${plain.bits}`);
  // The run store holds the evaluation, linked to the run, a row per combination.
  const reader = StoreReader.open(`${dir}/runs`);
  const [ev] = await reader.pruneEvaluationsOfRun(r.runId);
  assert.equal(ev.id, report.evaluation);
  assert.equal(ev.headline, "loss");
  assert.equal(ev.dense.loss, rows[0].loss);
  assert.equal((await reader.pruneEvaluation(ev.id))!.results.length, rows.length - 1);
  await reader.close();
  assert.equal((await Deno.readTextFile(csv)).trim().split("\n").length, rows.length + 1);
  await Deno.remove(dir, { recursive: true });
});
