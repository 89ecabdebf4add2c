/** Buffers the sparse kernels share per engine. */
import type { Engine } from "../tensor/engine.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { binomialTable } from "./format.ts";

const binomials = new WeakMap<Engine, Tensor>();

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
