/**
 * N:M compressed tensors (methods.md §3): along one dimension of length D, every group of M
 * consecutive values keeps N of them. A compressed tensor stores the kept values, in ascending
 * position within each group, and metadata saying where they were, in one of two encodings:
 * - "combinatorial": one ⌈log2 C(M,N)⌉-bit code per group, the rank of its kept set in the
 *   combinatorial number system (Σ_i C(c_i, i) over the kept positions c_1 < … < c_N);
 * - "indices": one ⌈log2 M⌉-bit position per kept value (more bits, faster to decode).
 *
 * The tensor is viewed as [outer, D, inner]: a lane is one (outer, inner) pair, the D values it
 * runs along. Values are [outer, D/M·N, inner], the original layout with D shrunk. Metadata is
 * u32 [lanes, words]: each lane's codes (or positions) packed back to back from bit 0 of its
 * first word, a field free to straddle two words, the lane padded to whole words.
 *
 * Unstructured sparsity (top-k of a lane) is the one-group case: pattern k:D with index encoding.
 */
import type { Engine } from "../tensor/engine.ts";
import { ShapeError, shapeString, type Tensor } from "../tensor/tensor.ts";

export type NmEncoding = "combinatorial" | "indices";

/** Keep `n` of every `m`. */
export interface NmPattern {
  n: number;
  m: number;
}

/** The patterns of interest (all 50%). */
export const NM_PATTERNS: readonly NmPattern[] = [
  { n: 2, m: 4 },
  { n: 4, m: 8 },
  { n: 8, m: 16 },
  { n: 16, m: 32 },
];

/** Widest group of a structured pattern: a group's kept set must fit one u32 bit mask. */
export const MAX_M = 32;

export const patternName = (p: NmPattern) => `${p.n}:${p.m}`;

/** C(m, n), exact for m ≤ 32 (C(32, 16) < 2^30). */
export function binomial(m: number, n: number): number {
  if (n < 0 || n > m) return 0;
  let c = 1;
  for (let i = 1; i <= n; i++) c = (c * (m - n + i)) / i;
  return Math.round(c);
}

/** Bits of one group's combinatorial code: ⌈log2 C(M,N)⌉. */
export function codeBits(p: NmPattern): number {
  return Math.max(1, Math.ceil(Math.log2(binomial(p.m, p.n))));
}

/** Bits of one kept value's position in its group: ⌈log2 M⌉. */
export function indexBits(m: number): number {
  return Math.max(1, Math.ceil(Math.log2(m)));
}

/** Metadata bits per element of the dense tensor, before the padding of lanes to whole words. */
export function metadataBitsPerElement(p: NmPattern, encoding: NmEncoding): number {
  return encoding === "combinatorial" ? codeBits(p) / p.m : (p.n * indexBits(p.m)) / p.m;
}

/** Where everything of a compressed tensor lives. */
export interface NmLayout {
  shape: readonly number[];
  axis: number;
  pattern: NmPattern;
  encoding: NmEncoding;
  outer: number;
  /** The compressed dimension's length. */
  d: number;
  inner: number;
  lanes: number;
  /** Groups per lane (D/M) and kept values per lane (D/M·N). */
  groups: number;
  kept: number;
  /** Bits of one metadata field, and fields per lane (one per group, or one per kept value). */
  width: number;
  fields: number;
  words: number;
  valuesShape: number[];
}

/**
 * Checks a pattern (1 ≤ N < M ≤ 32; with `unstructured`, 1 ≤ N ≤ M = D and index encoding) and
 * that the dimension is a multiple of M; the error names the shape and the pattern.
 */
export function nmLayout(
  op: string,
  shape: readonly number[],
  axis: number,
  pattern: NmPattern,
  encoding: NmEncoding,
  unstructured = false,
): NmLayout {
  const { n, m } = pattern;
  const name = patternName(pattern);
  if (!Number.isInteger(axis) || axis < 0 || axis >= shape.length) {
    throw new ShapeError(op, `axis ${axis} is not a dimension of ${shapeString(shape)}`);
  }
  const d = shape[axis];
  if (unstructured) {
    if (!(Number.isInteger(n) && n >= 1 && n <= d && m === d)) {
      throw new RangeError(`${op}: cannot keep ${n} of ${d} along axis ${axis}`);
    }
    if (encoding !== "indices") {
      throw new RangeError(`${op}: unstructured sparsity stores indices, not ${encoding} codes`);
    }
  } else {
    if (!(Number.isInteger(n) && Number.isInteger(m) && n >= 1 && n < m && m <= MAX_M)) {
      throw new RangeError(`${op}: pattern ${name} needs integers 1 ≤ N < M ≤ ${MAX_M}`);
    }
    if (d % m !== 0) {
      throw new ShapeError(
        op,
        `dimension ${axis} of ${shapeString(shape)} (${d}) is not a multiple of M = ${m} ` +
          `for pattern ${name}`,
      );
    }
  }
  if (encoding !== "combinatorial" && encoding !== "indices") {
    throw new RangeError(`${op}: unknown encoding ${encoding}`);
  }
  let outer = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i];
  let inner = 1;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i];
  const groups = d / m;
  const kept = groups * n;
  const width = encoding === "combinatorial" ? codeBits(pattern) : indexBits(m);
  const fields = encoding === "combinatorial" ? groups : kept;
  const valuesShape = [...shape];
  valuesShape[axis] = kept;
  return {
    shape: [...shape],
    axis,
    pattern: { n, m },
    encoding,
    outer,
    d,
    inner,
    lanes: outer * inner,
    groups,
    kept,
    width,
    fields,
    words: Math.ceil((fields * width) / 32),
    valuesShape,
  };
}

/** A compressed tensor on the GPU: values f32 `layout.valuesShape`, metadata u32 [lanes, words]. */
export class NmTensor {
  constructor(
    readonly layout: NmLayout,
    readonly values: Tensor,
    readonly meta: Tensor,
  ) {}

  get shape(): readonly number[] {
    return this.layout.shape;
  }

  get pattern(): NmPattern {
    return this.layout.pattern;
  }

  get encoding(): NmEncoding {
    return this.layout.encoding;
  }

  get engine(): Engine {
    return this.values.engine;
  }

  dispose(): void {
    this.values.dispose();
    this.meta.dispose();
  }
}

/** C(c, i) for c, i in 0..32 at c·33 + i: what the kernels decode combinatorial codes with. */
export function binomialTable(): Uint32Array {
  const t = new Uint32Array(33 * 33);
  for (let c = 0; c <= 32; c++) for (let i = 0; i <= 32; i++) t[c * 33 + i] = binomial(c, i);
  return t;
}

/** The rank of a kept set (ascending positions) in the combinatorial number system. */
export function rankOf(kept: ArrayLike<number>): number {
  let r = 0;
  for (let i = 0; i < kept.length; i++) r += binomial(kept[i], i + 1);
  return r;
}

/** The kept set (ascending) of rank `r` among the n-subsets of 0..m-1: the greedy inverse. */
export function unrank(r: number, n: number, m: number): number[] {
  const out: number[] = [];
  let i = n;
  for (let c = m - 1; c >= 0 && i > 0; c--) {
    const b = binomial(c, i);
    if (b <= r) {
      out.push(c);
      r -= b;
      i--;
    }
  }
  return out.reverse();
}

/** Writes `value` (below 2^width) at bit `bit` of a lane's words starting at `base`. */
export function writeField(
  words: Uint32Array,
  base: number,
  bit: number,
  width: number,
  value: number,
): void {
  const at = base + (bit >>> 5);
  const off = bit & 31;
  words[at] |= (value << off) >>> 0;
  if (off + width > 32) words[at + 1] |= value >>> (32 - off);
}

/** Reads a `width`-bit field at bit `bit` of a lane's words starting at `base`. */
export function readField(words: Uint32Array, base: number, bit: number, width: number): number {
  const at = base + (bit >>> 5);
  const off = bit & 31;
  let v = words[at] >>> off;
  if (off + width > 32) v |= words[at + 1] << (32 - off);
  return width === 32 ? v >>> 0 : (v & ((1 << width) - 1)) >>> 0;
}
