// A compressed N:M tensor back to dense (src/sparse/prune.ts): an invocation per group writes its
// kept values in place; `dense` starts zeroed. Needs sparse_nm.wgsl composed in.
struct Params {
  lanes: u32,
  d: u32,
  inner: u32,
  n: u32,
  m: u32,
  width: u32,
  words: u32,
  groups: u32,
  kept: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> nm_meta: array<u32>;
@group(0) @binding(3) var<storage, read> binomials: array<u32>;
@group(0) @binding(4) var<storage, read_write> dense: array<f32>;

fn elem(lane: u32, k: u32, len: u32) -> u32 {
  return ((lane / p.inner) * len + k) * p.inner + lane % p.inner;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * 64u;
  if (id >= p.lanes * p.groups) { return; }
  let lane = id / p.groups;
  let g = id % p.groups;
  var walk = kept_from(lane, g);
  for (var j = 0u; j < p.n; j++) {
    let c = kept_next(&walk);
    dense[elem(lane, c, p.d)] = values[elem(lane, g * p.n + j, p.kept)];
  }
}
