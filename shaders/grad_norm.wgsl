// Global L2 norm of many gradient tensors, and clipping by it. The reduction order is fixed, so
// the norm (and the clipped step) is bit-identical run to run: `partial_sums` has each workgroup
// sum the squares of one chunk of a tensor into partials[at + group] by a tree, `finish` has one
// workgroup sum all partials the same way, and `scale` multiplies a gradient by
// min(1, maxNorm / (norm + 1e-6)) read from the GPU, so clipping needs no readback.
struct Params { n: u32, at: u32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> norm: array<f32>;

const WG: u32 = 256u;
// Elements per thread in `partial_sums`; the host sizes the partials with the same chunk.
const PER_THREAD: u32 = 16u;
var<workgroup> sums: array<f32, WG>;

fn tree_sum(lid: u32, value: f32) -> f32 {
  sums[lid] = value;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
    if (lid < stride) {
      sums[lid] += sums[lid + stride];
    }
    workgroupBarrier();
  }
  return sums[0];
}

@compute @workgroup_size(256)
fn partial_sums(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let group = wid.x + wid.y * nwg.x;
  let base = group * WG * PER_THREAD;
  var s = 0.0;
  for (var k = 0u; k < PER_THREAD; k++) {
    let i = base + k * WG + lid;
    if (i < p.n) {
      let g = grad[i];
      s += g * g;
    }
  }
  let total = tree_sum(lid, s);
  if (lid == 0u && base < p.n) {
    partials[p.at + group] = total;
  }
}

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
