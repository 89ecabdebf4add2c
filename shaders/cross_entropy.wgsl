// Materialised softmax cross-entropy over logits [rows, cols]: the reference every fused loss is
// checked against. One workgroup per row; rows with target == ignore give loss 0 and no gradient.
// Only columns [first_valid, valid) take part: those from `valid` on are row padding (a row stride
// rounded up for vec4 matmuls), those before `first_valid` the padding item of a recommender's
// logits (column 0). They get no share of the softmax and a zero gradient.
struct Params { rows: u32, cols: u32, ignore: i32, row0: u32, first_valid: u32, valid: u32 }
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

@group(0) @binding(5) var<storage, read> dloss: array<f32>;
@group(0) @binding(6) var<storage, read_write> dlogits: array<f32>;

// One invocation per logit of the window: (softmax − onehot) · dloss[row].
@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let c = i % p.cols;
  let row = p.row0 + r;
  let t = targets[row];
  if (t == p.ignore || c >= p.valid || c < p.first_valid) { dlogits[i] = 0.0; return; }
  let prob = exp(logits[i] - lse[row]);
  dlogits[i] = dloss[row] * (prob - select(0.0, 1.0, i32(c) == t));
}
