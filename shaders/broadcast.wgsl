// The backward of a sum: spreads a reduced gradient back over the summed elements. Element i of
// the whole tensor (p.first + i in this window) reads g[((p.first + i) / inner) % outer] · scale:
// inner = n, outer = 1 for a full sum; inner = cols, outer = rows for the last axis; inner = 1,
// outer = cols for column sums.
struct Params { n: u32, first: u32, inner: u32, outer: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  dx[i] = g[((p.first + i) / p.inner) % p.outer] * p.scale;
}
