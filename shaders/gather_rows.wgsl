// out[i, :] = x[index[i], :] and its backward dx[index[i], :] = g[i, :] (indices are unique, so
// the scatter has no collisions and needs no atomics).
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> index: array<i32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn element(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = element(gid, nwg);
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  dst[i] = src[u32(index[r]) * p.cols + i % p.cols];
}

@compute @workgroup_size(256)
fn scatter(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = element(gid, nwg);
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  dst[u32(index[r]) * p.cols + i % p.cols] = src[i];
}
