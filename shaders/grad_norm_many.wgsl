// grad_norm.wgsl's `partial_sums` for up to 15 small gradients in one dispatch (a model's norms,
// biases and small weights: one dispatch each cost more than their sums). Workgroup layer z sums
// gradient z: its chunks of WG · PER_THREAD elements go to partials[at[z] + chunk] by the same
// tree, so the norm is the same, bit for bit. Gradient slots past the ones given are bound to
// any of them and never read.
struct Params { n: array<vec4u, 4>, at: array<vec4u, 4> }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read> g0: array<f32>;
@group(0) @binding(3) var<storage, read> g1: array<f32>;
@group(0) @binding(4) var<storage, read> g2: array<f32>;
@group(0) @binding(5) var<storage, read> g3: array<f32>;
@group(0) @binding(6) var<storage, read> g4: array<f32>;
@group(0) @binding(7) var<storage, read> g5: array<f32>;
@group(0) @binding(8) var<storage, read> g6: array<f32>;
@group(0) @binding(9) var<storage, read> g7: array<f32>;
@group(0) @binding(10) var<storage, read> g8: array<f32>;
@group(0) @binding(11) var<storage, read> g9: array<f32>;
@group(0) @binding(12) var<storage, read> g10: array<f32>;
@group(0) @binding(13) var<storage, read> g11: array<f32>;
@group(0) @binding(14) var<storage, read> g12: array<f32>;
@group(0) @binding(15) var<storage, read> g13: array<f32>;
@group(0) @binding(16) var<storage, read> g14: array<f32>;

const WG: u32 = 256u;
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

// Element i of gradient `slot` (the same for the whole workgroup).
fn load(slot: u32, i: u32) -> f32 {
  switch slot {
    case 0u: { return g0[i]; }
    case 1u: { return g1[i]; }
    case 2u: { return g2[i]; }
    case 3u: { return g3[i]; }
    case 4u: { return g4[i]; }
    case 5u: { return g5[i]; }
    case 6u: { return g6[i]; }
    case 7u: { return g7[i]; }
    case 8u: { return g8[i]; }
    case 9u: { return g9[i]; }
    case 10u: { return g10[i]; }
    case 11u: { return g11[i]; }
    case 12u: { return g12[i]; }
    case 13u: { return g13[i]; }
    default: { return g14[i]; }
  }
}

@compute @workgroup_size(256)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let slot = wid.z;
  let n = p.n[slot / 4u][slot % 4u];
  let group = wid.x + wid.y * nwg.x;
  let base = group * WG * PER_THREAD;
  var s = 0.0;
  for (var k = 0u; k < PER_THREAD; k++) {
    let i = base + k * WG + lid;
    if (i < n) {
      let g = load(slot, i);
      s += g * g;
    }
  }
  let total = tree_sum(lid, s);
  if (lid == 0u && base < n) {
    partials[p.at[slot / 4u][slot % 4u] + group] = total;
  }
}
