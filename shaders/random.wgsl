// Counter-based random numbers: Philox-2x32-10 (Salmon et al., SC'11; passes BigCrush). Every
// value is a pure function of (seed, stream, index), so kernels draw numbers in any order and
// backward passes recompute masks instead of storing them. The counter is (index, stream) and
// the key is the seed. This file declares functions only: prepend it to a shader that uses them
// (src/tensor/random.ts exports its text as RANDOM_WGSL). src/tensor/random.ts mirrors every
// function bit for bit.

const PHILOX_M: u32 = 0xD256D193u;
const PHILOX_W: u32 = 0x9E3779B9u;

// High 32 bits of a 32×32-bit product from 16-bit halves: WGSL has no 64-bit integers.
fn rand_mulhi(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xFFFFu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xFFFFu;
  let b_hi = b >> 16u;
  let lh = a_lo * b_hi;
  let hl = a_hi * b_lo;
  let mid = ((a_lo * b_lo) >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
  return a_hi * b_hi + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}

fn philox2x32(counter: vec2u, seed: u32) -> vec2u {
  var c = counter;
  var k = seed;
  for (var round = 0u; round < 10u; round++) {
    c = vec2u(rand_mulhi(PHILOX_M, c.x) ^ k ^ c.y, PHILOX_M * c.x);
    k += PHILOX_W;
  }
  return c;
}

// 64 random bits for one (seed, stream, index).
fn rand_bits(seed: u32, stream: u32, index: u32) -> vec2u {
  return philox2x32(vec2u(index, stream), seed);
}

fn rand_u32(seed: u32, stream: u32, index: u32) -> u32 {
  return rand_bits(seed, stream, index).x;
}

// rand_u32 of four indices at once: the same Philox rounds on vectors, one copy of the code for
// four numbers (attention's dropout unrolls a few of these where a loop of draws would count
// against llvmpipe's per-invocation loop cap).
fn rand_u32x4(seed: u32, stream: u32, index: vec4u) -> vec4u {
  var x = index;
  var y = vec4u(stream);
  var k = seed;
  for (var round = 0u; round < 10u; round++) {
    let lh = (PHILOX_M & 0xFFFFu) * (x >> vec4u(16u));
    let hl = (PHILOX_M >> 16u) * (x & vec4u(0xFFFFu));
    let mid = (((PHILOX_M & 0xFFFFu) * (x & vec4u(0xFFFFu))) >> vec4u(16u)) +
      (lh & vec4u(0xFFFFu)) + (hl & vec4u(0xFFFFu));
    let hi = (PHILOX_M >> 16u) * (x >> vec4u(16u)) + (lh >> vec4u(16u)) + (hl >> vec4u(16u)) +
      (mid >> vec4u(16u));
    let x_next = hi ^ vec4u(k) ^ y;
    y = PHILOX_M * x;
    x = x_next;
    k += PHILOX_W;
  }
  return x;
}

// Uniform in [0, 1) on the 2^24 multiples of 2^-24 (exact in f32, so the host agrees bit for bit).
fn rand_uniform(seed: u32, stream: u32, index: u32) -> f32 {
  return f32(rand_u32(seed, stream, index) >> 8u) * 5.9604644775390625e-8;
}

// Uniform integer in [lo, hi) (hi > lo): floor(bits64 · range / 2^64), Lemire's multiply-shift on
// 64 bits. Without rejection each value's probability is off by at most range / 2^64 relative,
// below anything a sampler can detect, and the cost is fixed (no data-dependent loop).
fn rand_int(seed: u32, stream: u32, index: u32, lo: i32, hi: i32) -> i32 {
  let bits = rand_bits(seed, stream, index);
  let range = u32(hi) - u32(lo);
  let carry_in = rand_mulhi(bits.x, range);
  let low_of_high = bits.y * range;
  let carry = select(0u, 1u, low_of_high + carry_in < low_of_high);
  return i32(u32(lo) + rand_mulhi(bits.y, range) + carry);
}
