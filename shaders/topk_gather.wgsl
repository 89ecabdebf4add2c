// out[r, j] = src[r, idx[r, j]] for the segmented top-k of a software adapter: the scores of each
// row's segment candidates (src = the scores, idx = candidate ids), then the ids of the picked
// candidates (src = candidate ids, idx = positions). Values are copied as raw 32-bit words; no
// loops. The output rows start `out_shift` elements into their binding (an aligned window).
struct Params { rows: u32, cols: u32, src_cols: u32, out_shift: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  out[p.out_shift + i] = src[r * p.src_cols + u32(idx[i])];
}
