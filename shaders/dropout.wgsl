// Dropout with a recomputed mask; needs random.wgsl prepended. Element i of the whole tensor is
// kept when draw (seed, step, i) >= threshold, so P(keep) = 1 - threshold / 2^32 and backward
// (the same kernel applied to the gradient) rebuilds the exact mask without storing it.
struct Params { n: u32, first: u32, seed: u32, step: u32, threshold: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let keep = rand_u32(p.seed, p.step, p.first + i) >= p.threshold;
  y[i] = select(0.0, x[i] * p.scale, keep);
}
