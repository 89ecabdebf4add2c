/**
 * The same figures on several WebGPU backends of one machine, measured in one run so that their
 * ratio is fair: matmul GFLOP/s, dispatch cost, elementwise bandwidth (the ops benchmark) and
 * training sequences/s of a few losses (the training benchmark).
 */
import type { OpsReport } from "./ops.ts";
import type { TrainFigures } from "./train.ts";
import { type Cell, formatTable } from "./util.ts";

export interface BackendFigures {
  backend: string;
  adapter: string;
  ops: OpsReport;
  train: TrainFigures[];
}

/** One row per figure, one column per backend, and each backend's ratio to the first. */
export function formatBackendReport(runs: BackendFigures[]): string {
  const [first] = runs;
  const rows: { figure: string; unit: string; values: number[]; higherIsBetter: boolean }[] = [];
  first.ops.matmul.forEach((m, i) =>
    rows.push({
      figure: `matmul ${m.size} ${m.product}`,
      unit: "GFLOP/s",
      values: runs.map((r) => r.ops.matmul[i].gflops),
      higherIsBetter: true,
    })
  );
  rows.push({
    figure: "dispatch in one submit",
    unit: "µs/op",
    values: runs.map((r) => r.ops.dispatch.batchedUs),
    higherIsBetter: false,
  });
  rows.push({
    figure: "elementwise add",
    unit: "GB/s",
    values: runs.map((r) => r.ops.elementwise.gbPerS),
    higherIsBetter: true,
  });
  first.train.forEach((t, i) =>
    rows.push({
      figure: `train ${t.label}`,
      unit: "seq/s",
      values: runs.map((r) => r.train[i].sequencesPerSecond),
      higherIsBetter: true,
    })
  );
  const others = runs.slice(1);
  const cells: Cell[][] = rows.map((row) => [
    row.figure,
    row.unit,
    ...row.values,
    ...others.map((_, j) => {
      const ratio = row.values[0] / row.values[j + 1];
      return `${(row.higherIsBetter ? ratio : 1 / ratio).toFixed(2)}×`;
    }),
  ]);
  return formatTable(
    [
      "figure",
      "unit",
      ...runs.map((r) => r.backend),
      ...others.map((r) => `${first.backend} vs ${r.backend}`),
    ],
    cells,
  );
}
