/**
 * Lays a sweep's trials out as heatmaps: negatives across, batch size down (the first two grid
 * axes when those are absent), one heatmap per combination of any further axes. Cells over the
 * memory budget are marked; the best finished trial under the budget is highlighted.
 */
import type { TrialView } from "../store/sweeps.ts";

export interface HeatCell {
  trial: TrialView | null;
  /** Best validation NDCG@10 of the trial's run (once the trial finished). */
  ndcg10: number | null;
  /** Measured peak bytes when the trial ran, otherwise the estimate. */
  memoryBytes: number | null;
  exceedsBudget: boolean;
  best: boolean;
}

export interface Heatmap {
  /** The fixed values of the axes beyond the two drawn ("" when there are none). */
  title: string;
  x: { axis: string; values: unknown[] };
  y: { axis: string | null; values: unknown[] };
  /** rows[yIndex][xIndex] */
  rows: HeatCell[][];
}

export interface SweepLayout {
  heatmaps: Heatmap[];
  /** The finished trial with the highest NDCG@10 whose memory fits the budget. */
  best: TrialView | null;
  /** NDCG@10 range of the finished trials under the budget (the coloured cells). */
  range: { min: number; max: number } | null;
}

/** The trial's measured peak, or its run's while the trial record has none yet. */
export function trialPeak(t: TrialView): number | null {
  return t.peakBytes ?? t.run?.peakBytes ?? null;
}

function memoryOf(t: TrialView): number | null {
  return trialPeak(t) ?? t.estimateBytes;
}

function exceedsBudget(t: TrialView, budget: number | null): boolean {
  if (t.status === "exceeds_budget") return true;
  const m = memoryOf(t);
  return budget !== null && m !== null && m > budget;
}

export function layoutSweep(
  grid: Record<string, unknown[]>,
  trials: readonly TrialView[],
  budget: number | null,
): SweepLayout {
  const ranked = trials.filter((t) =>
    t.status === "finished" && t.validNdcg10 !== null && !exceedsBudget(t, budget)
  );
  const best = ranked.reduce<TrialView | null>(
    (b, t) => (b === null || t.validNdcg10! > b.validNdcg10! ? t : b),
    null,
  );
  const scores = ranked.map((t) => t.validNdcg10!);
  const range = scores.length ? { min: Math.min(...scores), max: Math.max(...scores) } : null;

  const axes = Object.keys(grid);
  if (!axes.length) return { heatmaps: [], best, range };
  const xAxis = axes.includes("negatives") ? "negatives" : axes[0];
  const rest = axes.filter((a) => a !== xAxis);
  const yAxis = rest.includes("batchSize") ? "batchSize" : rest[0] ?? null;
  const fixedAxes = rest.filter((a) => a !== yAxis);

  const heatmaps = combinations(fixedAxes.map((a) => grid[a])).map((fixed) => {
    const title = fixedAxes.map((a, i) => `${a} = ${show(fixed[i])}`).join(", ");
    const yValues = yAxis === null ? [null] : grid[yAxis];
    const rows = yValues.map((yv) =>
      grid[xAxis].map((xv): HeatCell => {
        const trial = trials.find((t) =>
          same(t.params[xAxis], xv) &&
          (yAxis === null || same(t.params[yAxis], yv)) &&
          fixedAxes.every((a, i) => same(t.params[a], fixed[i]))
        ) ?? null;
        return {
          trial,
          ndcg10: trial?.status === "finished" ? trial.validNdcg10 : null,
          memoryBytes: trial ? memoryOf(trial) : null,
          exceedsBudget: trial ? exceedsBudget(trial, budget) : false,
          best: trial !== null && trial === best,
        };
      })
    );
    return {
      title,
      x: { axis: xAxis, values: grid[xAxis] },
      y: { axis: yAxis, values: yAxis === null ? [] : grid[yAxis] },
      rows,
    };
  });
  return { heatmaps, best, range };
}

function combinations(lists: unknown[][]): unknown[][] {
  return lists.reduce<unknown[][]>(
    (acc, values) => acc.flatMap((prefix) => values.map((v) => [...prefix, v])),
    [[]],
  );
}

/** Grid values and trial params compare by JSON value (64 and "64" differ, as they should). */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function show(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Viridis stops: perceptually even, readable in light and dark mode, and for colour-blind eyes. */
const VIRIDIS: [number, number, number][] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

/** Where a score sits in the range, 0 (lowest) to 1 (highest); 1 when all scores are equal. */
export function scalePosition(v: number, range: { min: number; max: number }): number {
  if (!(range.max > range.min)) return 1;
  return Math.min(1, Math.max(0, (v - range.min) / (range.max - range.min)));
}

/** The colour of position t on the numeric scale, as `rgb(…)`. */
export function scaleColor(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const [r, g, b] = VIRIDIS[i].map((c, j) => Math.round(c + (VIRIDIS[i + 1][j] - c) * f));
  return `rgb(${r}, ${g}, ${b})`;
}

/** Dark text on the light (yellow, green) end of the scale, white on the dark end. */
export function scaleText(t: number): string {
  return t > 0.62 ? "#1a1a1a" : "#ffffff";
}

/** The CSS gradient of the whole scale, for its legend. */
export function scaleGradient(): string {
  const stops = VIRIDIS.map((_, i) => scaleColor(i / (VIRIDIS.length - 1)));
  return `linear-gradient(to right, ${stops.join(", ")})`;
}
