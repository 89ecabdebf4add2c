/**
 * How a map's points are coloured from the embeddings' colour field: classes (strings, or a few
 * distinct integers such as a target's bins) get a categorical palette and a legend; other numbers
 * get the numeric scale the sweep heatmaps use (viridis), on a log scale when they span orders of
 * magnitude (an item's popularity). The page's script receives a palette and each point's index
 * into it, so the choice of colours is made, and tested, here.
 */
import type { EmbeddingColour } from "../store/embeddings.ts";
import { scaleColor, scaleGradient } from "./heatmap.ts";

/** Okabe–Ito's colour-blind-safe set, then Tableau's, darkened where they vanish on white. */
export const CATEGORY_PALETTE = [
  "#0072b2",
  "#e69f00",
  "#009e73",
  "#cc79a7",
  "#56b4e9",
  "#d55e00",
  "#b8a100",
  "#6a3d9a",
  "#8c564b",
  "#7f7f7f",
  "#17becf",
];
/** Classes beyond the palette share one grey "other". */
export const OTHER_COLOUR = "#b0b0b0";
export const PLAIN_COLOUR = "#0072b2";
/** Integer values with at most this many distinct values are classes, not a quantity. */
export const MAX_INTEGER_CLASSES = 12;
/** Steps of the numeric scale that points are binned into. */
export const GRADIENT_STEPS = 32;
/** Non-negative values whose (max + 1) / (min + 1) reaches this are shown on a log scale. */
const LOG_SPAN = 100;

export interface Category {
  label: string;
  colour: string;
  count: number;
}

export type ColourScheme =
  | { kind: "plain"; palette: string[]; index: Uint8Array }
  | {
    kind: "categories";
    name: string;
    categories: Category[];
    palette: string[];
    index: Uint8Array;
  }
  | {
    kind: "gradient";
    name: string;
    log: boolean;
    min: number;
    max: number;
    /** CSS gradient of the whole scale, for the legend. */
    gradient: string;
    palette: string[];
    index: Uint8Array;
  };

export function colourScheme(count: number, colour?: EmbeddingColour): ColourScheme {
  if (!colour) return { kind: "plain", palette: [PLAIN_COLOUR], index: new Uint8Array(count) };
  const values = colour.values;
  const numbers = values.every((v) => typeof v === "number");
  if (numbers && !isFewIntegers(values as number[])) {
    return gradientScheme(colour.name, values as number[]);
  }
  return categoryScheme(colour.name, values);
}

function isFewIntegers(values: number[]): boolean {
  if (!values.every(Number.isInteger)) return false;
  return new Set(values).size <= MAX_INTEGER_CLASSES;
}

/** Classes by size, largest first (numbers in their own order); the smallest past the palette → other. */
function categoryScheme(name: string, values: (number | string)[]): ColourScheme {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(String(v), (counts.get(String(v)) ?? 0) + 1);
  const numeric = values.every((v) => typeof v === "number");
  const labels = [...counts.keys()].sort((a, b) =>
    numeric ? Number(a) - Number(b) : counts.get(b)! - counts.get(a)! || a.localeCompare(b)
  );
  const overflow = labels.length > CATEGORY_PALETTE.length;
  const named = overflow ? labels.slice(0, CATEGORY_PALETTE.length - 1) : labels;
  const slot = new Map(named.map((l, i) => [l, i]));
  const categories: Category[] = named.map((label, i) => ({
    label,
    colour: CATEGORY_PALETTE[i],
    count: counts.get(label)!,
  }));
  const palette = categories.map((c) => c.colour);
  if (overflow) {
    const rest = labels.slice(named.length).reduce((s, l) => s + counts.get(l)!, 0);
    categories.push({
      label: `other (${labels.length - named.length})`,
      colour: OTHER_COLOUR,
      count: rest,
    });
    palette.push(OTHER_COLOUR);
  }
  const index = Uint8Array.from(values, (v) => slot.get(String(v)) ?? named.length);
  return { kind: "categories", name, categories, palette, index };
}

function gradientScheme(name: string, values: number[]): ColourScheme {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const log = min >= 0 && (max + 1) / (min + 1) >= LOG_SPAN;
  const at = (v: number) => (log ? Math.log1p(v) : v);
  const lo = at(min);
  const span = at(max) - lo;
  const index = Uint8Array.from(values, (v) => {
    const t = span > 0 ? (at(v) - lo) / span : 1;
    return Math.min(GRADIENT_STEPS - 1, Math.floor(t * GRADIENT_STEPS));
  });
  const palette = Array.from(
    { length: GRADIENT_STEPS },
    (_, i) => scaleColor((i + 0.5) / GRADIENT_STEPS),
  );
  return { kind: "gradient", name, log, min, max, gradient: scaleGradient(), palette, index };
}
