/**
 * The counter-based generator of shaders/random.wgsl (Philox-2x32-10) on the host, bit for bit:
 * tests reproduce what a kernel drew, and host code can predict a kernel's samples (negatives,
 * dropout masks) without reading them back. Every value is a pure function of
 * (seed, stream, index); see the shader for the methods behind uniform floats and integers.
 */
import randomShader from "../../shaders/random.wgsl" with { type: "text" };

/** The WGSL functions rand_bits, rand_u32, rand_uniform, rand_int: prepend to a shader. */
export const RANDOM_WGSL: string = randomShader;

/** A shader with the generator's functions available to it. */
export function withRandom(shader: string): string {
  return `${RANDOM_WGSL}\n${shader}`;
}

const PHILOX_M = 0xd256d193;
const PHILOX_W = 0x9e3779b9;
const TWO_POW_MINUS_24 = 5.9604644775390625e-8;

/** High 32 bits of a 32×32-bit product (16-bit halves, exactly as the shader computes it). */
export function mulHi32(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lh = aLo * bHi;
  const hl = aHi * bLo;
  const mid = ((aLo * bLo) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (aHi * bHi + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox-2x32-10 of the counter (c0, c1) under key `seed`; returns two u32 words. */
export function philox2x32(c0: number, c1: number, seed: number): [number, number] {
  let x = c0 >>> 0;
  let y = c1 >>> 0;
  let k = seed >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi = mulHi32(PHILOX_M, x);
    const lo = Math.imul(PHILOX_M, x) >>> 0;
    x = (hi ^ k ^ y) >>> 0;
    y = lo;
    k = (k + PHILOX_W) >>> 0;
  }
  return [x, y];
}

/** 64 random bits for one (seed, stream, index), as the shader's rand_bits. */
export function randomBits(seed: number, stream: number, index: number): [number, number] {
  return philox2x32(index, stream, seed);
}

export function randomU32(seed: number, stream: number, index: number): number {
  return randomBits(seed, stream, index)[0];
}

/** Uniform in [0, 1), a multiple of 2^-24 (the same f32 value the shader produces). */
export function randomUniform(seed: number, stream: number, index: number): number {
  return (randomU32(seed, stream, index) >>> 8) * TWO_POW_MINUS_24;
}

/** Uniform integer in [lo, hi), both i32, as the shader's rand_int. */
export function randomInt(
  seed: number,
  stream: number,
  index: number,
  lo: number,
  hi: number,
): number {
  if (!(hi > lo)) throw new RangeError(`randomInt: empty range [${lo}, ${hi})`);
  const [x, y] = randomBits(seed, stream, index);
  const range = ((hi >>> 0) - (lo >>> 0)) >>> 0;
  const carryIn = mulHi32(x, range);
  const lowOfHigh = Math.imul(y, range) >>> 0;
  const carry = ((lowOfHigh + carryIn) >>> 0) < lowOfHigh ? 1 : 0;
  return ((lo >>> 0) + mulHi32(y, range) + carry) | 0;
}

/** mulberry32: a small, fast, seedable generator of floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
