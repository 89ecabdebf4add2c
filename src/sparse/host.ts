/**
 * The float64 host reference of the N:M formats and the prune kernels: what the GPU kernels are
 * tested against, element for element and bit for bit on the metadata.
 */
import type { Engine } from "../tensor/engine.ts";
import {
  type NmEncoding,
  type NmLayout,
  nmLayout,
  type NmPattern,
  NmTensor,
  rankOf,
  readField,
  unrank,
  writeField,
} from "./format.ts";

/** A compressed tensor on the host. */
export interface HostNm {
  layout: NmLayout;
  values: Float64Array;
  meta: Uint32Array;
}

/** Index of element `k` of lane `lane` in a [outer, len, inner] array. */
function at(l: NmLayout, lane: number, k: number, len: number): number {
  const o = Math.floor(lane / l.inner);
  return (o * len + k) * l.inner + (lane % l.inner);
}

/**
 * The `n` positions of `scores` (ascending) with the highest scores, ties to the lower position:
 * a stable sort by descending score.
 */
export function topPositions(scores: ArrayLike<number>, n: number): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => (scores[b] - scores[a]) || (a - b));
  return order.slice(0, n).sort((a, b) => a - b);
}

/** Compresses every lane, keeping the top N of each group by `scores`. */
function compress(
  l: NmLayout,
  x: ArrayLike<number>,
  scores: ArrayLike<number>,
): { nm: HostNm; masked: Float64Array } {
  const { n, m } = l.pattern;
  const values = new Float64Array(l.lanes * l.kept);
  const meta = new Uint32Array(l.lanes * l.words);
  const masked = new Float64Array(x.length);
  for (let lane = 0; lane < l.lanes; lane++) {
    for (let g = 0; g < l.groups; g++) {
      const s = Array.from({ length: m }, (_, c) => scores[at(l, lane, g * m + c, l.d)]);
      const kept = topPositions(s, n);
      kept.forEach((c, j) => {
        const src = at(l, lane, g * m + c, l.d);
        values[at(l, lane, g * n + j, l.kept)] = x[src];
        masked[src] = x[src];
        if (l.encoding === "indices") {
          writeField(meta, lane * l.words, (g * n + j) * l.width, l.width, c);
        }
      });
      if (l.encoding === "combinatorial") {
        writeField(meta, lane * l.words, g * l.width, l.width, rankOf(kept));
      }
    }
  }
  return { nm: { layout: l, values, meta }, masked };
}

/**
 * Keeps the top N of every M along `axis` by `scores` (|x| when null), ties to the lower index:
 * the compressed tensor and the masked dense one.
 */
export function pruneHost(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  pattern: NmPattern,
  encoding: NmEncoding,
  scores: ArrayLike<number> | null = null,
): { nm: HostNm; masked: Float64Array } {
  const l = nmLayout("pruneHost", shape, axis, pattern, encoding);
  return compress(l, x, scores ?? Array.from(x, Math.abs));
}

/** Keeps the top `k` of every lane along `axis` (unstructured), ties to the lower index. */
export function pruneUnstructuredHost(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  k: number,
  scores: ArrayLike<number> | null = null,
): { nm: HostNm; masked: Float64Array } {
  const l = nmLayout(
    "pruneUnstructuredHost",
    shape,
    axis,
    { n: k, m: shape[axis] },
    "indices",
    true,
  );
  return compress(l, x, scores ?? Array.from(x, Math.abs));
}

/** Kept positions of a lane along the compressed dimension, ascending. */
export function keptPositions(nm: HostNm, lane: number): number[] {
  const l = nm.layout;
  const { n, m } = l.pattern;
  const out: number[] = [];
  for (let g = 0; g < l.groups; g++) {
    if (l.encoding === "combinatorial") {
      const code = readField(nm.meta, lane * l.words, g * l.width, l.width);
      for (const c of unrank(code, n, m)) out.push(g * m + c);
    } else {
      for (let j = 0; j < n; j++) {
        out.push(g * m + readField(nm.meta, lane * l.words, (g * n + j) * l.width, l.width));
      }
    }
  }
  return out;
}

/** The dense tensor of a compressed one: kept values in place, zeros elsewhere. */
export function decodeHost(nm: HostNm): Float64Array {
  const l = nm.layout;
  const out = new Float64Array(l.lanes * l.d);
  for (let lane = 0; lane < l.lanes; lane++) {
    keptPositions(nm, lane).forEach((c, q) => {
      out[at(l, lane, c, l.d)] = nm.values[at(l, lane, q, l.kept)];
    });
  }
  return out;
}

/** Y = A·Bᵀ in float64: a [rows, k], b [cols, k] → [rows, cols] (the dense side of the tests). */
export function matmulTransposedHost(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  cols: number,
  k: number,
): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += a[r * k + i] * b[c * k + i];
      y[r * cols + c] = s;
    }
  }
  return y;
}

/** Uploads a host compressed tensor (values as f32). */
export function uploadNm(e: Engine, nm: HostNm, name = "nm"): NmTensor {
  const values = e.tensor(
    Float32Array.from(nm.values),
    nm.layout.valuesShape,
    "f32",
    `${name} values`,
  );
  const meta = e.tensor(nm.meta, [nm.layout.lanes, nm.layout.words], "u32", `${name} metadata`);
  return new NmTensor(nm.layout, values, meta);
}
