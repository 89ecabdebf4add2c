/**
 * Inverted dropout whose mask is a function of (seed, step, element index) through the
 * counter-based generator: no mask tensor is stored, backward draws the same mask again.
 */
import dropoutShader from "../../../shaders/dropout.wgsl" with { type: "text" };
import { assertDType, declareKernel } from "../kernel.ts";
import { randomU32, withRandom } from "../random.ts";
import type { Tensor } from "../tensor.ts";
import { assertCounterWord } from "./random.ts";
import { dispatchWindowed } from "./windowed.ts";

const DROPOUT_KERNEL = declareKernel({
  name: "dropout",
  source: withRandom(dropoutShader),
  params: { n: "u32", first: "u32", seed: "u32", step: "u32", threshold: "u32", scale: "f32" },
  buffers: ["x", "y"],
});

/** Draws below this u32 drop their element: P(drop) = threshold / 2^32 ≈ p. */
export function dropoutThreshold(p: number): number {
  return Math.min(Math.round(p * 2 ** 32), 0xffffffff);
}

/** Whether element `index` survives dropout(·, p, seed, step): what the kernel decides. */
export function dropoutKeeps(p: number, seed: number, step: number, index: number): boolean {
  return randomU32(seed, step, index) >= dropoutThreshold(p);
}

/**
 * Zeroes each element with probability p and scales the survivors by 1/(1-p). Use a new `step`
 * for every training step (and a distinct seed per dropout site) to draw fresh masks.
 */
export function dropout(x: Tensor, p: number, seed: number, step: number): Tensor {
  assertDType("dropout", x, "f32");
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: p must be in [0, 1), got ${p}`);
  assertCounterWord("dropout", "seed", seed);
  assertCounterWord("dropout", "step", step);
  if (p === 0) return x;
  const e = x.engine;
  const apply = (src: Tensor, name: string): Tensor => {
    const out = e.empty(src.shape, "f32", name);
    dispatchWindowed(e, DROPOUT_KERNEL, src.size, {
      label: name,
      params: { seed, step, threshold: dropoutThreshold(p), scale: 1 / (1 - p) },
      windowed: { x: src, y: out },
    });
    return out;
  };
  return e.record({
    op: "dropout",
    inputs: [x],
    output: apply(x, "dropout"),
    // y = x ⊙ mask / (1 - p) is linear in x: its backward is the same masking of the gradient.
    backward: (g) => [apply(g, "dropout backward")],
  });
}
