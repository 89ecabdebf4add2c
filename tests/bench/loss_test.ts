import assert from "node:assert/strict";
import { Engine } from "../../src/tensor/engine.ts";
import {
  budgetRefusal,
  estimateCellBytes,
  LOSS_VARIANTS,
  type LossCell,
  type LossGrid,
  type LossReport,
  lowerBoundBytes,
  planCells,
  runLossBenchmark,
  runsFor,
  TARGET,
  targetVerdict,
  TimeModel,
  workOf,
} from "../../bench/loss.ts";
import { findChromium, memoryPlotSvg, renderPng, seriesOf } from "../../bench/plot.ts";
import { engine, gpuTest } from "../support/check.ts";

const GiB = 1024 ** 3;
const TINY: LossGrid = {
  catalogs: [40, 300],
  negatives: [4, 16],
  dims: [8],
  variants: LOSS_VARIANTS,
  positions: 48,
};
const tinyOptions = { grid: TINY, repeats: 1, maxSeconds: 60, cellSeconds: 1 };

let tiny: Promise<LossReport> | null = null;
/** The tiny grid, run once for the tests that read it. */
function tinyReport(): Promise<LossReport> {
  tiny ??= engine().then((e) => runLossBenchmark(e, tinyOptions));
  return tiny;
}

function cellOf(cells: LossCell[], v: string, c: number, k: number | null): LossCell {
  const cell = cells.find((x) => x.variant === v && x.catalog === c && x.negatives === k);
  assert.ok(cell, `no ${v} cell at C=${c} K=${k}`);
  return cell;
}

Deno.test("planCells: the full losses once per (C, d), the sampled ones per K", () => {
  const cells = planCells(TINY);
  assert.equal(cells.length, 2 * (2 + 2 * 3));
  assert.deepEqual(
    cells.slice(0, 8).map((c) => `${c.variant}:${c.negatives}`),
    ["ce:null", "cce:null", "ce-:4", "ce-shared:4", "cce-:4", "ce-:16", "ce-shared:16", "cce-:16"],
  );
  assert.equal(cells[0].lowerBoundBytes, 4 * 2 * (48 * 8 + 41 * 8));
  assert.equal(lowerBoundBytes(6400, 1_000_000, 64), 8 * (6400 * 64 + 1_000_001 * 64));
});

Deno.test("estimates: the target cell as the allocator measured it; refusals name the estimate", () => {
  const { catalog: c, negatives: k, dim: d, positions: n } = TARGET;
  // Peaks the allocator reported for these cells on llvmpipe (its size classes are exact).
  const ce = estimateCellBytes("ce-", n, c, k, d);
  assert.ok(Math.abs(ce.total / 4_546_019_328 - 1) < 0.02, `CE- estimate ${ce.total}`);
  const cce = estimateCellBytes("cce-", n, c, k, d);
  // With the per-position table gradient's bucketed entries (2026-12-02).
  assert.ok(Math.abs(cce.total / 635_420_928 - 1) < 0.02, `CCE- estimate ${cce.total}`);
  assert.equal(budgetRefusal(cce, 1 * GiB, 2 * GiB), null);
  // Full CE at 1M items: the logits alone are one 25.6 GB buffer.
  const full = estimateCellBytes("ce", n, c, 0, d);
  assert.equal(full.largest, n * 1_000_004 * 4);
  assert.match(
    budgetRefusal(full, 100 * GiB, 2 * GiB)!,
    /^exceeds budget \(estimate .*maxBufferSize/,
  );
  assert.match(
    budgetRefusal(ce, 4 * GiB, 2 * GiB)!,
    /^exceeds budget \(estimate 4\.\d+ GiB > 4\.00 GiB\)$/,
  );
});

Deno.test("runsFor: a warm-up and the repeats when they fit, else fewer, down to one timed run", () => {
  assert.deepEqual(runsFor(1, 3, 30), { runs: 4, timed: 3 });
  assert.deepEqual(runsFor(12, 3, 30), { runs: 2, timed: 1 });
  assert.deepEqual(runsFor(60, 3, 30), { runs: 1, timed: 1 });
});

Deno.test("TimeModel: prior rates, then rescaled by the largest measured cell of the variant", () => {
  const m = new TimeModel();
  const small = workOf("cce-", 6400, 10_000, 64, 64);
  const big = workOf("cce-", 6400, 10_000, 1024, 64);
  assert.equal(m.predict("cce-", big), m.modelled(big));
  m.observe("cce-", small, 3 * m.modelled(small));
  assert.ok(Math.abs(m.predict("cce-", big) / (3 * m.modelled(big)) - 1) < 1e-9);
  // A smaller cell measured later does not replace the larger reference.
  m.observe("cce-", workOf("cce-", 6400, 10_000, 16, 64), 1e-6);
  assert.ok(Math.abs(m.predict("cce-", big) / (3 * m.modelled(big)) - 1) < 1e-9);
  // Other variants keep their prior.
  const other = workOf("ce-", 6400, 10_000, 1024, 64);
  assert.equal(m.predict("ce-", other), m.modelled(other));
});

gpuTest(
  "tiny grid: every cell runs, fused losses equal materialised ones, estimates hold",
  async (e) => {
    const live = e.gpu.allocator.liveBytes;
    const r = await tinyReport();
    // What stays: the negative generator's one-cell placeholder, kept for the engine's life.
    assert.ok(e.gpu.allocator.liveBytes - live <= 256, "the benchmark left buffers allocated");
    for (const c of r.cells) {
      assert.equal(
        c.status,
        "measured",
        `${c.variant} C=${c.catalog} K=${c.negatives}: ${c.reason}`,
      );
      assert.ok(c.ms! > 0 && c.runs === 2 && c.timedRuns === 1);
      assert.ok(c.peakBytes! >= c.lowerBoundBytes);
      const ratio = c.estimateBytes / c.peakBytes!;
      assert.ok(ratio > 0.8 && ratio < 1.25, `${c.variant} C=${c.catalog}: est/peak ${ratio}`);
    }
    for (const c of TINY.catalogs) {
      const close = (a: LossCell, b: LossCell) =>
        assert.ok(
          Math.abs(a.loss! - b.loss!) <= 1e-4 * Math.abs(b.loss!),
          `${a.loss} vs ${b.loss}`,
        );
      close(cellOf(r.cells, "cce", c, null), cellOf(r.cells, "ce", c, null));
      for (const k of TINY.negatives) {
        close(cellOf(r.cells, "cce-", c, k), cellOf(r.cells, "ce-", c, k));
      }
    }
    assert.ok(r.target.checks.every((c) => c.value === null && c.pass === null));
  },
);

gpuTest("budget: a cell over it is refused with its estimate and never allocates", async (e) => {
  const ce = estimateCellBytes("ce", TINY.positions, 300, 0, 8).total;
  const r = await runLossBenchmark(e, {
    ...tinyOptions,
    grid: { ...TINY, catalogs: [300], negatives: [4], variants: ["ce", "cce-"] },
    budgetBytes: ce - 1,
  });
  const [full, fused] = r.cells;
  assert.equal(full.status, "exceeds budget");
  assert.match(full.reason!, /^exceeds budget \(estimate .* > /);
  assert.equal(full.peakBytes, undefined);
  assert.equal(fused.status, "measured");
});

Deno.test({
  name: "an out-of-memory error the estimate missed is a refusal, and frees the cell's buffers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const e = await Engine.create({ memoryLimit: 1.5 * 1024 * 1024 });
    try {
      const grid: LossGrid = {
        catalogs: [2000],
        negatives: [4],
        dims: [32],
        variants: ["ce", "cce-"],
        positions: 64,
      };
      const live = e.gpu.allocator.liveBytes;
      const r = await runLossBenchmark(e, { ...tinyOptions, grid, budgetBytes: GiB });
      const [full, fused] = r.cells;
      assert.equal(full.status, "out of memory");
      assert.match(full.reason!, /^out of memory at run time although the estimate was /);
      assert.equal(fused.status, "measured", fused.reason);
      assert.ok(e.gpu.allocator.liveBytes - live <= 256, "the failed cell left buffers allocated");
      assert.equal(e.tape, null);
    } finally {
      e.destroy();
    }
  },
});

Deno.test("targetVerdict: the ratios at the target cell against the issue's targets", () => {
  const base = planCells({
    catalogs: [TARGET.catalog],
    negatives: [TARGET.negatives],
    dims: [TARGET.dim],
    variants: ["ce-", "cce-"],
    positions: TARGET.positions,
  });
  const lb = base[0].lowerBoundBytes;
  const [ce, cce] = base.map((c) => ({ ...c, status: "measured" as const }));
  Object.assign(ce, { peakBytes: lb + 3000, ms: 300 });
  Object.assign(cce, { peakBytes: lb + 100, ms: 100 });
  const checks = targetVerdict([ce, cce]).checks;
  assert.deepEqual(checks.map((c) => c.pass), [true, false, true, true]);
  assert.equal(checks[0].value, 30);
  assert.equal(checks[3].value, 3);
  assert.ok(targetVerdict([ce]).checks.every((c) => c.pass === null));
});

gpuTest("plot: one series per loss, hollow markers for cells not run, a PNG", async (e) => {
  const r = await tinyReport();
  const refused = await runLossBenchmark(e, {
    ...tinyOptions,
    grid: { ...TINY, catalogs: [300], negatives: [16] },
    maxSeconds: 1e-9,
  });
  assert.ok(
    refused.cells.every((c) => c.status === "skipped" && /^skipped \(predicted /.test(c.reason!)),
  );
  const svg = memoryPlotSvg([...r.cells.filter((c) => c.catalog === 40), ...refused.cells], {
    negatives: 16,
    dim: 8,
    title: "tiny",
  });
  // Five series of two points each, and the legend's seven markers.
  assert.equal(svg.match(/<circle /g)!.length, 5 * 2 + 7);
  assert.equal(svg.match(/<circle [^>]*fill="#fff"\/>/g)!.length, 5);
  assert.match(svg, /lower bound/);
  const chromium = findChromium();
  if (!chromium) return;
  const path = await Deno.makeTempFile({ suffix: ".png" });
  try {
    await renderPng(svg, path, chromium);
    const head = (await Deno.readFile(path)).slice(0, 8);
    assert.deepEqual([...head], [137, 80, 78, 71, 13, 10, 26, 10]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("the plot leaves out cells a partial result never reached", () => {
  const planned = planCells({ ...TINY, variants: ["cce-"] });
  const [reached, ...rest] = planned.filter((c) => c.negatives === 4);
  const cells: LossCell[] = [{ ...reached, status: "measured", peakBytes: 1000 }, ...rest];
  assert.ok(rest.length > 0 && rest.every((c) => c.status === "pending"));
  assert.deepEqual(seriesOf(cells, "cce-", 4, 8), [
    { catalog: reached.catalog, bytes: 1000, measured: true },
  ]);
});
