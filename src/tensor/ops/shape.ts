/** Shape ops that move no data. */
import type { Tensor } from "../tensor.ts";

/** The same elements viewed with another shape; -1 stands for the remaining size. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((s) => s !== -1).reduce((a, b) => a * b, 1);
  const resolved = shape.map((s) => (s === -1 ? x.size / known : s));
  const e = x.engine;
  const y = e.alias(x, resolved);
  return e.record({
    op: "reshape",
    inputs: [x],
    output: y,
    backward: (g) => [e.alias(g, x.shape)],
  });
}
