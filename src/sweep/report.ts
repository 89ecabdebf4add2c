/**
 * A sweep's results: the trials table sorted by validation NDCG@10, the best configuration under
 * each memory budget, one JSON object for machines and a CSV export of every trial.
 */
import { formatBytes } from "../gpu/allocator.ts";
import type { Param, SweepView, TrialStatus, TrialView } from "../store/sweeps.ts";
import { flagName } from "./grid.ts";

/** A measured peak further than this from the estimate (relative to the peak) is reported. */
export const ESTIMATE_TOLERANCE = 0.2;

/** Order of trials that have no NDCG@10 yet, after all finished ones. */
const STATUS_ORDER: Record<TrialStatus, number> = {
  finished: 0,
  pruned: 1,
  running: 2,
  pending: 3,
  failed: 4,
  exceeds_budget: 5,
};

/** Finished trials by validation NDCG@10 (best first), then the others by status, then key. */
export function sortTrials(trials: readonly TrialView[]): TrialView[] {
  return [...trials].sort((a, b) =>
    (b.validNdcg10 ?? -Infinity) - (a.validNdcg10 ?? -Infinity) ||
    STATUS_ORDER[a.status] - STATUS_ORDER[b.status] ||
    (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  );
}

/** (estimate − peak) / peak, or null without both. */
export function estimateError(t: TrialView): number | null {
  return t.estimateBytes !== null && t.peakBytes
    ? (t.estimateBytes - t.peakBytes) / t.peakBytes
    : null;
}

export interface BudgetBest {
  budgetBytes: number;
  /** True for the sweep's own budget. */
  sweepBudget: boolean;
  /** The finished trial with the highest validation NDCG@10 whose measured peak fits. */
  trial: TrialView | null;
}

/**
 * The best trial per budget level: the sweep's budget and every power of two from the smallest
 * measured peak up to the one that holds the largest (larger levels would repeat the last answer).
 */
export function bestPerBudget(view: SweepView): BudgetBest[] {
  const ranked = view.trials.filter((t) =>
    t.status === "finished" && t.peakBytes !== null && t.validNdcg10 !== null
  );
  const levels = new Set<number>();
  if (ranked.length) {
    const peaks = ranked.map((t) => t.peakBytes!);
    const top = 2 ** Math.ceil(Math.log2(Math.max(...peaks)));
    for (let p = 2 ** Math.ceil(Math.log2(Math.min(...peaks))); p <= top; p *= 2) levels.add(p);
  }
  const budget = view.sweep.budgetBytes;
  if (budget !== null) levels.add(budget);
  return [...levels].sort((a, b) => a - b).map((level) => ({
    budgetBytes: level,
    sweepBudget: level === budget,
    trial: ranked.filter((t) => t.peakBytes! <= level)
      .reduce<TrialView | null>((b, t) => (b && b.validNdcg10! >= t.validNdcg10! ? b : t), null),
  }));
}

function describe(t: TrialView): string {
  return Object.entries(t.params).map(([k, v]) => `${flagName(k)}=${v}`).join(" ") || "(single)";
}

const fixed = (v: number | null, digits: number) => (v === null ? "-" : v.toFixed(digits));
const bytes = (v: number | null) => (v === null ? "-" : formatBytes(v));
const percent = (v: number | null) =>
  v === null ? "-" : `${v >= 0 ? "+" : ""}${(v * 100).toFixed(0)}%`;

/** The table for people: one row per trial, then errors, then the best per budget. */
export function formatReport(view: SweepView): string {
  const axes = Object.keys(view.sweep.grid);
  const head = [
    ...axes.map(flagName),
    "status",
    "NDCG@10",
    "HR@10",
    "Cov@10",
    "peak",
    "estimate",
    "est-err",
    "s/epoch",
  ];
  // Trials run on queue workers say where; a local sweep's table stays as it was.
  const workers = view.trials.some((t) => t.worker !== null);
  if (workers) head.push("worker");
  const trials = sortTrials(view.trials);
  const rows = trials.map((t) => [
    ...axes.map((a) => (a in t.params ? String(t.params[a]) : "-")),
    t.status === "exceeds_budget" ? "exceeds budget" : t.status,
    fixed(t.validNdcg10, 4),
    fixed(t.validHr10, 4),
    fixed(t.validCoverage10, 4),
    bytes(t.peakBytes),
    bytes(t.estimateBytes),
    percent(estimateError(t)),
    fixed(t.secondsPerEpoch, 2),
    ...(workers ? [t.worker ?? "-"] : []),
  ]);
  const numeric = new Set(
    head.map((_, i) => i).filter((i) => i >= axes.length + 1 && head[i] !== "worker"),
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ").trimEnd();
  const out = [
    `sweep ${view.sweep.id} "${view.sweep.name}" (${view.sweep.status})`,
    "",
    line(head),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ];
  const failed = trials.filter((t) => t.status === "failed");
  if (failed.length) {
    out.push("", "failed:");
    for (const t of failed) out.push(`  ${describe(t)}: ${t.error ?? "unknown error"}`);
  }
  const off = trials.filter((t) => Math.abs(estimateError(t) ?? 0) > ESTIMATE_TOLERANCE);
  if (off.length) {
    out.push(
      "",
      `memory estimate off by more than ${ESTIMATE_TOLERANCE * 100}% for ${off.length} of ` +
        `${trials.filter((t) => t.peakBytes !== null).length} measured trials (est-err column)`,
    );
  }
  const best = bestPerBudget(view);
  if (best.length) out.push("", "best under budget:");
  for (const b of best) {
    const label = `  ≤ ${formatBytes(b.budgetBytes)}${b.sweepBudget ? " (sweep budget)" : ""}`;
    out.push(
      b.trial
        ? `${label}: ${describe(b.trial)}  NDCG@10 ${fixed(b.trial.validNdcg10, 4)}  peak ${
          bytes(b.trial.peakBytes)
        }  run ${b.trial.runId}`
        : `${label}: no finished trial fits`,
    );
  }
  return out.join("\n");
}

function trialJson(t: TrialView) {
  return {
    key: t.key,
    params: t.params,
    status: t.status,
    run_id: t.runId,
    valid_ndcg10: t.validNdcg10,
    valid_hr10: t.validHr10,
    valid_coverage10: t.validCoverage10,
    best_epoch: t.bestEpoch,
    peak_bytes: t.peakBytes,
    estimate_bytes: t.estimateBytes,
    estimate_error: estimateError(t),
    seconds_per_epoch: t.secondsPerEpoch,
    error: t.error,
    started_at: t.startedAt,
    finished_at: t.finishedAt,
    worker: t.worker,
    attempt: t.attempt,
  };
}

/** Everything as one JSON-ready object (trials in table order). */
export function reportJson(view: SweepView) {
  const s = view.sweep;
  return {
    sweep: {
      id: s.id,
      name: s.name,
      status: s.status,
      budget_bytes: s.budgetBytes,
      args: s.args,
      grid: s.grid,
      created_at: s.createdAt,
    },
    trials: sortTrials(view.trials).map(trialJson),
    best: bestPerBudget(view).map((b) => ({
      budget_bytes: b.budgetBytes,
      sweep_budget: b.sweepBudget,
      key: b.trial?.key ?? null,
      run_id: b.trial?.runId ?? null,
      valid_ndcg10: b.trial?.validNdcg10 ?? null,
      peak_bytes: b.trial?.peakBytes ?? null,
    })),
  };
}

/** One RFC 4180 field: quoted when it holds a comma, a quote or a line break. */
export function csvField(v: Param | null): string {
  const s = v === null ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** Every trial as CSV (CRLF line ends, a header row, one column per grid axis). */
export function trialsCsv(view: SweepView): string {
  const axes = Object.keys(view.sweep.grid);
  const head = [
    "sweep_id",
    "key",
    ...axes,
    "status",
    "run_id",
    "valid_ndcg10",
    "valid_hr10",
    "valid_coverage10",
    "peak_bytes",
    "estimate_bytes",
    "estimate_error",
    "seconds_per_epoch",
    "error",
    "started_at",
    "finished_at",
    "worker",
  ];
  const rows = sortTrials(view.trials).map((t) => [
    view.sweep.id,
    t.key,
    ...axes.map((a) => t.params[a] ?? null),
    t.status,
    t.runId,
    t.validNdcg10,
    t.validHr10,
    t.validCoverage10,
    t.peakBytes,
    t.estimateBytes,
    estimateError(t),
    t.secondsPerEpoch,
    t.error,
    t.startedAt,
    t.finishedAt,
    t.worker,
  ]);
  return [head, ...rows].map((r) => r.map(csvField).join(",") + "\r\n").join("");
}

/** Writes the CSV atomically: a temporary file beside it, then a rename. */
export async function exportCsv(view: SweepView, path: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, trialsCsv(view));
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
