/**
 * Tensors of counter-based random numbers (Philox-2x32-10, shaders/random.wgsl): element i of a
 * tensor drawn with (seed, stream) is exactly what src/tensor/random.ts gives for
 * (seed, stream, i), so the host can predict any sample without a readback.
 */
import fillShader from "../../../shaders/random_fill.wgsl" with { type: "text" };
import type { Engine } from "../engine.ts";
import { numel, type Tensor } from "../tensor.ts";
import { declareKernel } from "../kernel.ts";
import { withRandom } from "../random.ts";
import { dispatchWindowed } from "./windowed.ts";

const RANDOM_FILL_KERNEL = declareKernel({
  name: "random fill",
  source: withRandom(fillShader),
  params: { n: "u32", first: "u32", seed: "u32", stream: "u32", lo: "i32", hi: "i32" },
  buffers: ["out"],
});

/** Checks a seed, stream or step: the generator takes unsigned 32-bit integers. */
export function assertCounterWord(op: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${op}: ${what} must be an integer in [0, 2^32), got ${v}`);
  }
}

/** u32 [n, 2]: both 32-bit words of draws 0..n-1 (the raw generator output). */
export function randomBitsTensor(engine: Engine, n: number, seed: number, stream: number): Tensor {
  assertCounterWord("randomBits", "seed", seed);
  assertCounterWord("randomBits", "stream", stream);
  const out = engine.empty([n, 2], "u32", "random bits");
  dispatchWindowed(engine, RANDOM_FILL_KERNEL, n, {
    entry: "fill_bits",
    label: "random bits",
    params: { seed, stream, lo: 0, hi: 0 },
    windowed: { out },
  }, 8);
  return out;
}

/** f32 uniform in [0, 1) (multiples of 2^-24). */
export function randomUniformTensor(
  engine: Engine,
  shape: readonly number[],
  seed: number,
  stream: number,
): Tensor {
  assertCounterWord("randomUniform", "seed", seed);
  assertCounterWord("randomUniform", "stream", stream);
  const out = engine.empty(shape, "f32", "random uniform");
  dispatchWindowed(engine, RANDOM_FILL_KERNEL, numel(shape), {
    entry: "fill_uniform",
    label: "random uniform",
    params: { seed, stream, lo: 0, hi: 0 },
    windowed: { out },
  });
  return out;
}

/** i32 uniform in [lo, hi) (see rand_int in the shader for the method and its bias bound). */
export function randomIntTensor(
  engine: Engine,
  shape: readonly number[],
  lo: number,
  hi: number,
  seed: number,
  stream: number,
): Tensor {
  assertCounterWord("randomInt", "seed", seed);
  assertCounterWord("randomInt", "stream", stream);
  if (
    !Number.isInteger(lo) || !Number.isInteger(hi) || !(hi > lo) || lo < -(2 ** 31) ||
    hi > 2 ** 31 - 1
  ) {
    throw new RangeError(`randomInt: [${lo}, ${hi}) is not a non-empty i32 range`);
  }
  const out = engine.empty(shape, "i32", "random int");
  dispatchWindowed(engine, RANDOM_FILL_KERNEL, numel(shape), {
    entry: "fill_int",
    label: "random int",
    params: { seed, stream, lo, hi },
    windowed: { out },
  });
  return out;
}
