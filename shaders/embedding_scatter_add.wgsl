// dst[targets[first + j], c] += src[srcSkip + j, c]: adds gradient rows into the rows of a bigger
// matrix (densifying, merging SparseRows, sparse into dense). Targets within one dispatch are
// distinct, so no two threads touch one element. Both matrices are bound as row windows: dst
// from row dstBase, src from its window start (srcSkip rows into it).
struct Params { n: u32, cols: u32, first: u32, srcSkip: u32, dstBase: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let j = i / p.cols;
  let col = i - j * p.cols;
  let row = u32(targets[p.first + j]) - p.dstBase;
  dst[row * p.cols + col] += src[(p.srcSkip + j) * p.cols + col];
}
