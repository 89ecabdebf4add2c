// Embedding lookup: out[p, c] = table[ids[p], c]. The table may be larger than one binding, so
// the host binds one window of its rows (rows [rowBase, rowBase + rows)) and one window of output
// positions (from posBase) per dispatch; each output element is written by the single dispatch
// whose table window holds its id.
struct Params { n: u32, cols: u32, rowBase: u32, rows: u32, posBase: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let pos = i / p.cols;
  let col = i - pos * p.cols;
  // Ids were range-checked on the host; ids below rowBase wrap to huge values and fail the test.
  let row = u32(ids[p.posBase + pos]) - p.rowBase;
  if (row < p.rows) {
    out[i] = table[row * p.cols + col];
  }
}
