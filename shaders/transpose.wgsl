// The transpose of a block of a row-major matrix. x holds whole rows of src_stride elements (one
// binding window) whose columns from src_col are y's rows; y holds whole rows of dst_stride
// elements (another window) whose columns from dst_col are x's rows. The block is `rows` rows
// from row0 by `cols` columns from col0, both counted inside the windows. A 16 × 16
// tile passes through workgroup memory so that both the reads and the writes are contiguous
// across neighbouring invocations; the tile's rows are padded to 17 so that reading a column of
// it does not hit one memory bank sixteen times (`tiled`, a GPU's kernel).
struct Params {
  rows: u32,
  cols: u32,
  row0: u32,
  col0: u32,
  src_stride: u32,
  src_col: u32,
  dst_stride: u32,
  dst_col: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> tile: array<array<f32, 17>, 16>;

@compute @workgroup_size(16, 16)
fn tiled(@builtin(local_invocation_id) l: vec3u, @builtin(workgroup_id) wg: vec3u) {
  let r = wg.y * 16u + l.y;
  let c = wg.x * 16u + l.x;
  if (r < p.rows && c < p.cols) {
    tile[l.y][l.x] = x[(p.row0 + r) * p.src_stride + p.src_col + p.col0 + c];
  }
  workgroupBarrier();
  let out_row = wg.x * 16u + l.y;
  let out_col = wg.y * 16u + l.x;
  if (out_row < p.cols && out_col < p.rows) {
    y[(p.col0 + out_row) * p.dst_stride + p.dst_col + p.row0 + out_col] = tile[l.x][l.y];
  }
}

// The same block with no workgroup memory, an invocation per element of y (writes contiguous,
// reads strided): a CPU adapter's kernel (src/tensor/ops/transpose.ts).
@compute @workgroup_size(64)
fn direct(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.rows * p.cols) { return; }
  let out_row = i / p.rows;
  let out_col = i % p.rows;
  y[(p.col0 + out_row) * p.dst_stride + p.dst_col + p.row0 + out_col] =
    x[(p.row0 + out_col) * p.src_stride + p.src_col + p.col0 + out_row];
}
