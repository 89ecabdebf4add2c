// Global L2 norm of many gradient tensors, and clipping by it (with grad_norm_sums.wgsl): the
// partial sums of squares come from `partial_sums` (generated per number of gradients it binds,
// src/train/clip.ts), one per chunk of a gradient in a fixed order; `finish` has one workgroup sum
// all partials by a tree, and `scale` multiplies a gradient by min(1, maxNorm / (norm + 1e-6))
// read from the GPU, so clipping needs no readback.
struct Params { n: u32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.n; i += WG) {
    s += partials[i];
  }
  let total = tree_sum(lid, s);
  if (lid == 0u) {
    norm[0] = sqrt(total);
  }
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  grad[i] *= min(1.0, p.maxNorm / (norm[0] + 1e-6));
}
