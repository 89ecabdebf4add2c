// Materialised softmax cross-entropy over logits [rows, cols]: the reference every fused loss is
// checked against. The forward takes a workgroup or an invocation per row (src/loss/ce.ts), the
// backward a thread per column; rows with target == ignore give loss 0 and no gradient.
// Only columns [first_valid, valid) take part: those from `valid` on are row padding (a row stride
// rounded up for vec4 matmuls), those before `first_valid` the padding item of a recommender's
// logits (column 0). They get no share of the softmax and a zero gradient.
struct Params {
  rows: u32,
  cols: u32,
  ignore: i32,
  row0: u32,
  first_valid: u32,
  valid: u32,
  chunk_rows: u32,
  block_cols: u32,
  blocks: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;

fn row_index(wid: vec3u, nwg: vec3u) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn reduce_max(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

// logits are bound as a window starting at row p.row0; targets, lse and loss are whole.
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let r = row_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  var m = -3.4e38;
  for (var c = p.first_valid + lid; c < p.valid; c += WG) { m = max(m, logits[base + c]); }
  m = reduce_max(lid, m);
  var z = 0.0;
  for (var c = p.first_valid + lid; c < p.valid; c += WG) { z += exp(logits[base + c] - m); }
  z = reduce_sum(lid, z);
  if (lid == 0u) {
    let row = p.row0 + r;
    let l = m + log(z);
    lse[row] = l;
    let t = targets[row];
    loss[row] = select(l - logits[base + u32(max(t, 0))], 0.0, t == p.ignore);
  }
}

// `forward` over rows too long for one invocation's loop budget on llvmpipe (~2 · cols / WG
// trips): forward_blocks gives each row's block of p.block_cols columns a workgroup (z the
// block) and writes its max and Σ exp(· − max) to block_stats [rows, blocks, 2];
// forward_combine, an invocation per row, joins the blocks in order.
@group(0) @binding(9) var<storage, read_write> block_stats: array<f32>;

@compute @workgroup_size(WG)
fn forward_blocks(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) lid: u32) {
  let r = row_index(wid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  let c0 = p.first_valid + wid.z * p.block_cols;
  let c1 = min(c0 + p.block_cols, p.valid);
  var m = -3.4e38;
  for (var c = c0 + lid; c < c1; c += WG) { m = max(m, logits[base + c]); }
  m = reduce_max(lid, m);
  var z = 0.0;
  for (var c = c0 + lid; c < c1; c += WG) { z += exp(logits[base + c] - m); }
  z = reduce_sum(lid, z);
  if (lid == 0u) {
    let at = 2u * ((p.row0 + r) * p.blocks + wid.z);
    block_stats[at] = m;
    block_stats[at + 1u] = z;
  }
}

@compute @workgroup_size(WG)
fn forward_combine(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let row = p.row0 + r;
  let at = 2u * row * p.blocks;
  var m = -3.4e38;
  for (var b = 0u; b < p.blocks; b++) { m = max(m, block_stats[at + 2u * b]); }
  var z = 0.0;
  for (var b = 0u; b < p.blocks; b++) {
    z += block_stats[at + 2u * b + 1u] * exp(block_stats[at + 2u * b] - m);
  }
  let l = m + log(z);
  lse[row] = l;
  let t = targets[row];
  loss[row] = select(l - logits[r * p.cols + u32(max(t, 0))], 0.0, t == p.ignore);
}

// The same loss with one invocation per row (no workgroup memory, no barriers): what a CPU
// implementation runs fast, where lanes are SIMD slots and a barrier switches coroutines. The
// caller keeps 2 · (valid − first_valid) loop iterations per invocation under llvmpipe's budget.
@compute @workgroup_size(WG)
fn forward_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  var m = -3.4e38;
  for (var c = p.first_valid; c < p.valid; c++) { m = max(m, logits[base + c]); }
  var z = 0.0;
  for (var c = p.first_valid; c < p.valid; c++) { z += exp(logits[base + c] - m); }
  let row = p.row0 + r;
  let l = m + log(z);
  lse[row] = l;
  let t = targets[row];
  loss[row] = select(l - logits[base + u32(max(t, 0))], 0.0, t == p.ignore);
}

// forward_rows reading vec4s (cols a multiple of 4): a quarter of the loop trips, so rows up to
// four times longer fit one invocation's loop budget. Lanes outside [first_valid, valid) read as
// -3.4e38, whose exp is 0.
@group(0) @binding(7) var<storage, read> logits4: array<vec4f>;

fn valid_lanes(c4: u32, v: vec4f) -> vec4f {
  let col = vec4u(4u * c4) + vec4u(0u, 1u, 2u, 3u);
  let inside = col >= vec4u(p.first_valid) & col < vec4u(p.valid);
  return select(vec4f(-3.4e38), v, inside);
}

@compute @workgroup_size(WG)
fn forward_rows4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let base = r * (p.cols / 4u);
  let c0 = p.first_valid / 4u;
  let c1 = (p.valid + 3u) / 4u;
  var m4 = vec4f(-3.4e38);
  for (var c = c0; c < c1; c++) { m4 = max(m4, valid_lanes(c, logits4[base + c])); }
  let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
  var z4 = vec4f(0.0);
  for (var c = c0; c < c1; c++) { z4 += exp(valid_lanes(c, logits4[base + c]) - m); }
  let row = p.row0 + r;
  let l = m + log(z4.x + z4.y + z4.z + z4.w);
  lse[row] = l;
  let t = u32(max(targets[row], 0));
  loss[row] = select(l - logits4[base + t / 4u][t % 4u], 0.0, targets[row] == p.ignore);
}

@group(0) @binding(5) var<storage, read> dloss: array<f32>;
@group(0) @binding(6) var<storage, read_write> dlogits: array<f32>;

// A thread per column of the window walks a chunk of chunk_rows rows: neighbouring threads touch
// neighbouring logits, a row's target, lse and dloss are one value for every thread, and there is
// no division per element. Grid: x, y over column blocks of WG, z over row chunks.
@compute @workgroup_size(WG)
fn backward_columns(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  if (c >= p.cols) { return; }
  let inside = c >= p.first_valid && c < p.valid;
  let r1 = min((wid.z + 1u) * p.chunk_rows, p.rows);
  for (var r = wid.z * p.chunk_rows; r < r1; r++) {
    let row = p.row0 + r;
    let t = targets[row];
    let i = r * p.cols + c;
    if (t == p.ignore || !inside) {
      dlogits[i] = 0.0;
    } else {
      dlogits[i] = dloss[row] * (exp(logits[i] - lse[row]) - select(0.0, 1.0, i32(c) == t));
    }
  }
}

// backward_columns with a thread per 4 columns (cols a multiple of 4).
@group(0) @binding(8) var<storage, read_write> dlogits4: array<vec4f>;

@compute @workgroup_size(WG)
fn backward_columns4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                     @builtin(local_invocation_index) lid: u32) {
  let c4 = (wid.x + wid.y * nwg.x) * WG + lid;
  let cols4 = p.cols / 4u;
  if (c4 >= cols4) { return; }
  let col = vec4i(vec4u(4u * c4) + vec4u(0u, 1u, 2u, 3u));
  let inside = col >= vec4i(i32(p.first_valid)) & col < vec4i(i32(p.valid));
  let r1 = min((wid.z + 1u) * p.chunk_rows, p.rows);
  for (var r = wid.z * p.chunk_rows; r < r1; r++) {
    let row = p.row0 + r;
    let t = targets[row];
    let onehot = select(vec4f(0.0), vec4f(1.0), col == vec4i(t));
    let g = dloss[row] * (exp(logits4[r * cols4 + c4] - lse[row]) - onehot);
    dlogits4[r * cols4 + c4] = select(vec4f(0.0), g, inside & vec4<bool>(t != p.ignore));
  }
}
