import assert from "node:assert/strict";
import {
  bestPerBudget,
  csvField,
  exportCsv,
  formatReport,
  reportJson,
  sortTrials,
  trialsCsv,
} from "../../src/sweep/report.ts";
import type { SweepView, TrialView } from "../../src/store/sweeps.ts";

const MiB = 1024 ** 2;

function trial(over: Partial<TrialView> & { key: string }): TrialView {
  return {
    sweepId: "s1",
    params: {},
    status: "finished",
    runId: null,
    estimateBytes: null,
    peakBytes: null,
    error: null,
    startedAt: null,
    finishedAt: null,
    worker: null,
    attempt: 0,
    run: null,
    validNdcg10: null,
    validHr10: null,
    validCoverage10: null,
    bestEpoch: null,
    secondsPerEpoch: null,
    ...over,
  };
}

function view(): SweepView {
  const t = (negatives: number, batchSize: number, over: Partial<TrialView>) =>
    trial({
      key: `batch-size=${batchSize},negatives=${negatives}`,
      params: { negatives, batchSize },
      runId: `run-${negatives}-${batchSize}`,
      ...over,
    });
  return {
    sweep: {
      id: "s1",
      name: "tiny negatives×batch-size",
      args: { loss: "ce-" },
      grid: { negatives: [32, 128], batchSize: [64, 256, 1024] },
      budgetBytes: 4 * MiB,
      createdAt: "2026-01-01T00:00:00.000Z",
      status: "failed",
    },
    trials: [
      t(32, 64, {
        validNdcg10: 0.2,
        validHr10: 0.4,
        validCoverage10: 0.5,
        peakBytes: 1.5 * MiB,
        estimateBytes: 1.6 * MiB,
        secondsPerEpoch: 2,
      }),
      t(128, 64, {
        validNdcg10: 0.3,
        validHr10: 0.5,
        validCoverage10: 0.6,
        peakBytes: 3 * MiB,
        estimateBytes: 2 * MiB,
        secondsPerEpoch: 3,
      }),
      t(32, 256, {
        validNdcg10: 0.35,
        validHr10: 0.55,
        validCoverage10: 0.7,
        peakBytes: 3.5 * MiB,
        estimateBytes: 3.6 * MiB,
        secondsPerEpoch: 1,
      }),
      t(128, 256, {
        status: "failed",
        runId: null,
        error: 'loss became NaN, "here"\nat step 2',
      }),
      t(32, 1024, { status: "exceeds_budget", runId: null, estimateBytes: 9 * MiB }),
      t(128, 1024, { status: "pending", runId: null }),
    ],
  };
}

Deno.test("trials sort by validation NDCG@10, then the unfinished by status", () => {
  assert.deepEqual(sortTrials(view().trials).map((t) => [t.status, t.validNdcg10]), [
    ["finished", 0.35],
    ["finished", 0.3],
    ["finished", 0.2],
    ["pending", null],
    ["failed", null],
    ["exceeds_budget", null],
  ]);
});

Deno.test("the best trial per budget: powers of two over the measured peaks and the sweep's", () => {
  const best = bestPerBudget(view());
  assert.deepEqual(
    best.map((b) => [b.budgetBytes / MiB, b.sweepBudget, b.trial?.validNdcg10 ?? null]),
    [[2, false, 0.2], [4, true, 0.35]],
  );
  const small = view();
  small.sweep.budgetBytes = 1 * MiB;
  assert.deepEqual(
    bestPerBudget(small).map((b) => [b.budgetBytes / MiB, b.trial?.key ?? null]),
    [[1, null], [2, "batch-size=64,negatives=32"], [4, "batch-size=256,negatives=32"]],
  );
});

Deno.test("the table has every trial, the errors, the estimate check and the best per budget", () => {
  const text = formatReport(view());
  const lines = text.split("\n");
  const header = lines.findIndex((l) => l.startsWith("negatives"));
  assert.match(lines[header], /negatives\s+batch-size\s+status\s+NDCG@10\s+HR@10\s+Cov@10\s+peak/);
  assert.match(lines[header + 2], /^32\s+256\s+finished\s+0\.3500\s+0\.5500\s+0\.7000\s+3\.50 MiB/);
  assert.match(lines[header + 3], /^128\s+64\s+finished\s+0\.3000 .* -33%\s+3\.00$/);
  assert.match(text, /exceeds budget\s+-\s+-\s+-\s+-\s+9\.00 MiB/);
  assert.match(text, /failed:\n {2}negatives=128 batch-size=256: loss became NaN/);
  assert.match(text, /memory estimate off by more than 20% for 1 of 3 measured trials/);
  assert.match(text, /≤ 2\.00 MiB: negatives=32 batch-size=64 {2}NDCG@10 0\.2000/);
  assert.match(
    text,
    /≤ 4\.00 MiB \(sweep budget\): negatives=32 batch-size=256 {2}NDCG@10 0\.3500/,
  );
});

Deno.test("--json is one object with the sweep, the sorted trials and the best per budget", () => {
  const json = JSON.parse(JSON.stringify(reportJson(view())));
  assert.equal(json.sweep.id, "s1");
  assert.equal(json.sweep.budget_bytes, 4 * MiB);
  assert.deepEqual(json.sweep.grid, { negatives: [32, 128], batchSize: [64, 256, 1024] });
  assert.equal(json.trials.length, 6);
  assert.equal(json.trials[0].valid_ndcg10, 0.35);
  assert.ok(Math.abs(json.trials[1].estimate_error - (2 - 3) / 3) < 1e-12);
  assert.deepEqual(json.best.map((b: { key: string }) => b.key), [
    "batch-size=64,negatives=32",
    "batch-size=256,negatives=32",
  ]);
});

Deno.test("the CSV export quotes per RFC 4180 and is written atomically", async () => {
  assert.equal(csvField("plain"), "plain");
  assert.equal(csvField('a "b", c'), '"a ""b"", c"');
  assert.equal(csvField("two\nlines"), '"two\nlines"');
  assert.equal(csvField(null), "");
  assert.equal(csvField(0.5), "0.5");

  const csv = trialsCsv(view());
  assert.ok(csv.endsWith("\r\n"));
  const rows = csv.split("\r\n").slice(0, -1);
  assert.equal(rows.length, 7);
  assert.ok(rows[0].startsWith("sweep_id,key,negatives,batchSize,status,run_id,valid_ndcg10"));
  assert.ok(rows[1].startsWith('s1,"batch-size=256,negatives=32",32,256,finished,run-32-256,0.35'));
  assert.ok(csv.includes('"loss became NaN, ""here""\nat step 2"'));

  const dir = await Deno.makeTempDir();
  await exportCsv(view(), `${dir}/trials.csv`);
  assert.equal(await Deno.readTextFile(`${dir}/trials.csv`), csv);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["trials.csv"]);
  await assert.rejects(exportCsv(view(), `${dir}/missing/trials.csv`));
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["trials.csv"]);
  await Deno.remove(dir, { recursive: true });
});
