/**
 * Lays a pruning evaluation (src/store/prune.ts) out as heatmaps: pattern down, criterion across,
 * one heatmap per kind and mitigation (weight rows: per addition), coloured by the evaluation's
 * headline metric on the numeric scale the sweep heatmaps use (heatmap.ts), with the dense
 * model's value as the reference. The colour runs from worst to best whichever way the metric
 * points: the best cell is at the bright end, lower-is-better metrics included.
 */
import type { PruneEvaluation, PruneResult } from "../store/prune.ts";
import { scalePosition } from "./heatmap.ts";

export interface PruneCell {
  result: PruneResult | null;
  value: number | null;
  /** Position on the colour scale, 0 (worst) to 1 (best); null without a value. */
  t: number | null;
  /** Better than (or equal to) the dense model: pruning cost nothing here. */
  atDense: boolean;
  best: boolean;
}

export interface PruneHeatmap {
  kind: PruneResult["kind"];
  mitigation: string;
  patterns: string[];
  criteria: string[];
  /** rows[patternIndex][criterionIndex] */
  rows: PruneCell[][];
}

export interface PruneLayout {
  headline: string;
  dense: number | null;
  range: { min: number; max: number } | null;
  heatmaps: PruneHeatmap[];
}

const unique = (values: string[]) => [...new Set(values)];

export function layoutPrune(ev: PruneEvaluation, results: readonly PruneResult[]): PruneLayout {
  const key = ev.headline;
  const valueOf = (r: PruneResult) => r.metrics?.[key] ?? null;
  const dense = ev.dense[key] ?? null;
  const scored = results.map(valueOf).filter((v): v is number => v !== null && isFinite(v));
  const all = dense === null ? scored : [...scored, dense];
  const range = all.length ? { min: Math.min(...all), max: Math.max(...all) } : null;
  const better = (a: number, b: number) => (ev.higherIsBetter ? a >= b : a <= b);
  const groups = unique(results.map((r) => `${r.kind}\u0000${r.mitigation}`));
  const heatmaps = groups.map((g): PruneHeatmap => {
    const [kind, mitigation] = g.split("\u0000") as [PruneResult["kind"], string];
    const mine = results.filter((r) => r.kind === kind && r.mitigation === mitigation);
    const patterns = unique(mine.map((r) => r.pattern));
    const criteria = unique(mine.map((r) => r.criterion));
    const values = mine.map(valueOf).filter((v): v is number => v !== null);
    const best = values.length ? values.reduce((a, b) => (better(a, b) ? a : b)) : null;
    const rows = patterns.map((p) =>
      criteria.map((c): PruneCell => {
        const result = mine.find((r) => r.pattern === p && r.criterion === c) ?? null;
        const value = result ? valueOf(result) : null;
        const pos = value !== null && range ? scalePosition(value, range) : null;
        return {
          result,
          value,
          t: pos === null ? null : ev.higherIsBetter ? pos : 1 - pos,
          atDense: value !== null && dense !== null && better(value, dense),
          best: value !== null && value === best,
        };
      })
    );
    return { kind, mitigation, patterns, criteria, rows };
  });
  return { headline: key, dense, range, heatmaps };
}
