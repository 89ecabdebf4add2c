// GIFT-SW's effective weight (src/finetune/compose.ts); needs random.wgsl prepended.
// W [rows, cols] frozen, S [rows, k] the trainable salient columns, slot[j] = S's column of input
// column j (or -1). compose: W_eff[r, j] = S[r, slot[j]] for a salient column, else
// W[r, j] + half_delta[r] * eps, eps ~ N(0, 1) drawn from Philox under key `seed` (the layer's) at
// counter (r * cols + j, step) when `noise` is 1: nothing but W_eff is written, no noise tensor.
// gather_columns is compose's backward: dS[r, q] = dW_eff[r, salient_cols[q]].
struct Params { rows: u32, cols: u32, k: u32, seed: u32, step: u32, noise: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> salient_values: array<f32>;
@group(0) @binding(3) var<storage, read> column_slot: array<i32>;
@group(0) @binding(4) var<storage, read> half_delta: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> salient_cols: array<i32>;
@group(0) @binding(7) var<storage, read> grad: array<f32>;
@group(0) @binding(8) var<storage, read_write> grad_salient: array<f32>;

const TWO_PI: f32 = 6.283185307179586;

fn flat(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

// A standard normal by Box–Muller from one 64-bit draw: u1 in (0, 1] (never log 0), u2 in [0, 1).
// src/finetune/compose.ts's gaussianHost computes the same from the same bits.
fn gaussian(seed: u32, stream: u32, index: u32) -> f32 {
  let bits = rand_bits(seed, stream, index);
  let u1 = f32((bits.x >> 8u) + 1u) * 5.9604644775390625e-8;
  let u2 = f32(bits.y >> 8u) * 5.9604644775390625e-8;
  return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

@compute @workgroup_size(64)
fn compose(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let j = i % p.cols;
  let slot = column_slot[j];
  if (slot >= 0) {
    out[i] = salient_values[r * p.k + u32(slot)];
    return;
  }
  var w = weight[i];
  if (p.noise == 1u) { w += half_delta[r] * gaussian(p.seed, p.step, i); }
  out[i] = w;
}

@compute @workgroup_size(64)
fn gather_columns(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = flat(gid, nwg);
  if (i >= p.rows * p.k) { return; }
  let r = i / p.k;
  grad_salient[i] = grad[r * p.cols + u32(salient_cols[i % p.k])];
}
