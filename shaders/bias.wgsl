// out = x + b over rows of x [rows, cols] (a window of whole rows); b is [cols]. A thread owns one
// column and adds its bias to a chunk of chunk_rows rows. Grid: x, y over column blocks of WG;
// z over row chunks.
struct Params { rows: u32, cols: u32, chunk_rows: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let col = (wid.x + wid.y * nwg.x) * WG + lid;
  if (col >= p.cols) { return; }
  let bias = b[col];
  let r1 = min((wid.z + 1u) * p.chunk_rows, p.rows);
  for (var r = wid.z * p.chunk_rows; r < r1; r++) {
    out[r * p.cols + col] = x[r * p.cols + col] + bias;
  }
}
