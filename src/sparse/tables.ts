/** Buffers the sparse kernels share per engine. */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { binomial, binomialTable, type NmPattern, patternName, unrank } from "./format.ts";

const binomials = new WeakMap<Engine, Tensor>();
const decodeTables = new WeakMap<Engine, Map<string, Tensor>>();

/** Patterns with at most this many codes get a mask per code (8:16 has 12,870: 50 KiB). */
const MAX_MASK_CODES = 1 << 16;

/** C(c, i) for c, i ≤ 32, uploaded once per engine (kept for its lifetime). */
export function binomialBuffer(e: Engine): Tensor {
  let t = binomials.get(e);
  if (!t) {
    t = e.tensor(binomialTable(), [33 * 33], "u32", "binomials");
    e.keep(t);
    binomials.set(e, t);
  }
  return t;
}

/** Whether a combinatorial code of `p` is decoded by a table lookup (sparse_nm.wgsl MASK_TABLE). */
export function hasMaskTable(p: NmPattern): boolean {
  return p.m <= 32 && binomial(p.m, p.n) <= MAX_MASK_CODES;
}

/** The kept set of every code of `p` as a bit mask, indexed by code. */
export function maskTable(p: NmPattern): Uint32Array {
  const masks = new Uint32Array(binomial(p.m, p.n));
  for (let r = 0; r < masks.length; r++) {
    masks[r] = unrank(r, p.n, p.m).reduce((mask, c) => (mask | (1 << c)) >>> 0, 0);
  }
  return masks;
}

/**
 * The binomials followed, for a pattern with a mask table, by its masks (what the kernels bind
 * as `binomials` with MASK_TABLE set); uploaded once per engine and pattern.
 */
export function decodeTableBuffer(e: Engine, p: NmPattern): Tensor {
  if (!hasMaskTable(p)) return binomialBuffer(e);
  let tables = decodeTables.get(e);
  if (!tables) decodeTables.set(e, tables = new Map());
  const key = patternName(p);
  let t = tables.get(key);
  if (!t) {
    const masks = maskTable(p);
    const data = new Uint32Array(33 * 33 + masks.length);
    data.set(binomialTable());
    data.set(masks, 33 * 33);
    t = e.tensor(data, [data.length], "u32", `decode table ${key}`);
    e.keep(t);
    tables.set(key, t);
  }
  return t;
}
