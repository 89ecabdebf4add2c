/**
 * Shapes a run's metric rows for pages and the API: columnar series for charts, one row per
 * epoch for the epoch table, and the final valid/test/MostPop table.
 */
import { type MetricRow, PEAK_KEY } from "../store/read.ts";

/** Columnar points of one metric key (the layout uPlot draws from). */
export interface Series {
  epoch: number[];
  step: number[];
  value: number[];
  /** When each point was written (Unix seconds; null before the store kept it). */
  time: (number | null)[];
}

export function toSeries(rows: readonly MetricRow[]): Record<string, Series> {
  // No prototype: a metric key is data, and "__proto__" or "constructor" may be one.
  const out: Record<string, Series> = Object.create(null);
  for (const r of rows) {
    const s = out[r.key] ??= { epoch: [], step: [], value: [], time: [] };
    s.epoch.push(r.epoch);
    s.step.push(r.step);
    s.value.push(r.value);
    s.time.push(r.recordedAt);
  }
  return out;
}

/** Keys recorded once per step; the run page charts them but the epoch table leaves them out. */
export const STEP_KEYS = ["train_loss_step"];

export interface EpochRow {
  epoch: number;
  step: number;
  trainLoss: number | null;
  validNdcg10: number | null;
  validHr10: number | null;
  peakBytes: number | null;
  seconds: number | null;
}

/** One row per epoch from the per-epoch keys (the last value wins when a key repeats). */
export function epochRows(rows: readonly MetricRow[]): EpochRow[] {
  const byEpoch = new Map<number, EpochRow>();
  for (const r of rows) {
    if (r.key.startsWith("test_") || r.key.startsWith("mostpop_")) continue;
    const e = byEpoch.get(r.epoch) ?? {
      epoch: r.epoch,
      step: r.step,
      trainLoss: null,
      validNdcg10: null,
      validHr10: null,
      peakBytes: null,
      seconds: null,
    };
    e.step = Math.max(e.step, r.step);
    if (r.key === "train_loss") e.trainLoss = r.value;
    else if (r.key === "valid_ndcg@10") e.validNdcg10 = r.value;
    else if (r.key === "valid_hr@10") e.validHr10 = r.value;
    else if (r.key === "epoch_seconds") e.seconds = r.value;
    else if (r.key === PEAK_KEY) e.peakBytes = Math.max(e.peakBytes ?? 0, r.value);
    else if (!r.key.startsWith("valid_")) continue;
    byEpoch.set(r.epoch, e);
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

/** Final ranking metrics of a run: family (hr, ndcg, …) → k → value, per split. */
export interface FinalMetrics {
  /** The epoch whose parameters were tested (the best validation epoch). */
  bestEpoch: number | null;
  valid: Record<string, number>;
  test: Record<string, number>;
  mostpopTest: Record<string, number>;
}

export function finalMetrics(rows: readonly MetricRow[]): FinalMetrics {
  const test: Record<string, number> = {};
  const mostpopTest: Record<string, number> = {};
  let bestEpoch: number | null = null;
  for (const r of rows) {
    if (r.key.startsWith("test_")) {
      test[r.key.slice(5)] = r.value;
      bestEpoch = r.epoch;
    } else if (r.key.startsWith("mostpop_test_")) {
      mostpopTest[r.key.slice(13)] = r.value;
    }
  }
  if (bestEpoch === null) {
    // Not tested yet (running, stopped or failed): the best validation epoch so far.
    let best = -Infinity;
    for (const r of rows) {
      if (r.key === "valid_ndcg@10" && r.value > best) {
        best = r.value;
        bestEpoch = r.epoch;
      }
    }
  }
  const valid: Record<string, number> = {};
  for (const r of rows) {
    if (r.key.startsWith("valid_") && r.epoch === bestEpoch) valid[r.key.slice(6)] = r.value;
  }
  return { bestEpoch, valid, test, mostpopTest };
}

/** Splits "ndcg@10" keys into families and cut-offs, in a stable reading order. */
export function metricGrid(
  ...tables: Record<string, number>[]
): { families: string[]; ks: number[] } {
  const order = ["hr", "ndcg", "mrr", "coverage"];
  const families = new Set<string>();
  const ks = new Set<number>();
  for (const t of tables) {
    for (const key of Object.keys(t)) {
      const m = /^(.+)@(\d+)$/.exec(key);
      if (!m) continue;
      families.add(m[1]);
      ks.add(Number(m[2]));
    }
  }
  const rank = (f: string) => (order.includes(f) ? order.indexOf(f) : order.length);
  return {
    families: [...families].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)),
    ks: [...ks].sort((a, b) => a - b),
  };
}
