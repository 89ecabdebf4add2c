/**
 * A sweep's trials as parallel coordinates: one vertical axis per grid axis (its values evenly
 * spaced in grid order, the first at the bottom), then peak memory (from zero, the budget marked)
 * and validation NDCG@10; one line per trial, coloured by its NDCG@10 on the heatmap's scale.
 * Pure geometry: the sweep page draws it as SVG on the server.
 */
import type { Param, TrialView } from "../store/sweeps.ts";
import { scalePosition, show, trialPeak } from "./heatmap.ts";
import { bytes, metric } from "./format.ts";

export interface Axis {
  title: string;
  x: number;
  ticks: { y: number; label: string }[];
}

export interface Line {
  key: string;
  runId: string | null;
  /** Position on the colour scale; null for a trial without NDCG@10 (drawn grey). */
  t: number | null;
  /** SVG `points`: one x,y pair per axis the trial has a value on. */
  points: string;
  /** The line's tooltip: its parameters and result. */
  title: string;
}

export interface ParallelLayout {
  width: number;
  height: number;
  /** Where the axes start and end (y of the highest and lowest values). */
  top: number;
  bottom: number;
  axes: Axis[];
  lines: Line[];
  /** The budget's height on the memory axis, when there is one. */
  budget: { x: number; y: number } | null;
}

const GAP = 150;
const LEFT = 70;
const RIGHT = 70;
const TOP = 34;
const PLOT = 220;
const BOTTOM = 16;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function layoutParallel(
  grid: Record<string, Param[]>,
  trials: readonly TrialView[],
  budget: number | null,
  range: { min: number; max: number } | null,
): ParallelLayout | null {
  const names = Object.keys(grid);
  if (!names.length || !trials.length) return null;
  const yAt = (f: number) => TOP + PLOT * (1 - f);
  const xAt = (i: number) => LEFT + GAP * i;

  const axes: Axis[] = names.map((name, i) => {
    const values = grid[name];
    const step = values.length > 1 ? 1 / (values.length - 1) : 0;
    return {
      title: name,
      x: xAt(i),
      ticks: values.map((v, j) => ({ y: yAt(values.length > 1 ? j * step : 0.5), label: show(v) })),
    };
  });

  const memories = trials.map((t) => trialPeak(t) ?? t.estimateBytes)
    .filter((m): m is number => m !== null);
  const memTop = Math.max(...memories, budget ?? 0, 1);
  const memAxis = names.length;
  axes.push({
    title: "peak memory",
    x: xAt(memAxis),
    ticks: [0, 0.5, 1].map((f) => ({ y: yAt(f), label: bytes(memTop * f) })),
  });

  const scores = range ?? { min: 0, max: 1 };
  const ndcgAxis = names.length + 1;
  const span = scores.max - scores.min;
  axes.push({
    title: "valid NDCG@10",
    x: xAt(ndcgAxis),
    ticks: (span > 0 ? [0, 0.5, 1] : [0.5]).map((f) => ({
      y: yAt(f),
      label: metric(scores.min + span * (span > 0 ? f : 0)),
    })),
  });

  const lines = trials.map((t): Line => {
    const pts: [number, number][] = [];
    names.forEach((name, i) => {
      const values = grid[name];
      const j = values.findIndex((v) => same(v, t.params[name]));
      if (j >= 0) pts.push([xAt(i), axes[i].ticks[j].y]);
    });
    const memory = trialPeak(t) ?? t.estimateBytes;
    if (memory !== null) pts.push([xAt(memAxis), yAt(memory / memTop)]);
    const score = t.status === "finished" ? t.validNdcg10 : null;
    // The range spans the trials under the budget; a score beyond it sits at the axis's end.
    const pos = score === null || range === null ? null : scalePosition(score, range);
    if (pos !== null) pts.push([xAt(ndcgAxis), yAt(span > 0 ? pos : 0.5)]);
    const params = Object.entries(t.params).map(([k, v]) => `${k}=${show(v)}`).join(", ");
    return {
      key: t.key,
      runId: t.runId,
      t: pos,
      points: pts.map(([x, y]) => `${round(x)},${round(y)}`).join(" "),
      title: `${params}: ${score === null ? t.status.replaceAll("_", " ") : metric(score)}`,
    };
  });

  return {
    width: xAt(ndcgAxis) + RIGHT,
    height: TOP + PLOT + BOTTOM,
    top: TOP,
    bottom: TOP + PLOT,
    axes,
    // Lines with a score are drawn last, over the grey ones.
    lines: [...lines.filter((l) => l.t === null), ...lines.filter((l) => l.t !== null)],
    budget: budget === null ? null : { x: xAt(memAxis), y: yAt(budget / memTop) },
  };
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}
