// Losses over a similarity matrix s [rows, cols] of unit vectors, one thread per row i; a pair
// (i, j) is positive when group_a[i] == group_b[j]. With skip_self the diagonal is no pair.
// MODE 0, margin with hard negatives (CoLES): d = √(2 − 2s),
//   loss_i = Σ_pos d² + Σ over the neg_count negatives of largest s: relu(margin − d)².
// MODE 1, InfoNCE: loss_i = −mean_pos [s_ip/τ − LSE_{j≠i}(s_ij/τ)].
// MODE 2, SigLIP: logit = s·e^{t'} + b with (t', b) = scalars, label ±1,
//   loss_i = −Σ_j log σ(label · logit).
// backward writes ds = dloss_i · ∂loss_i/∂s_ij and, for SigLIP, the row's share of the scalars'
// gradient (∂/∂t', ∂/∂b) into dscalars [rows, 2] (the host sums the rows).
struct Params {
  rows: u32,
  cols: u32,
  skip_self: u32,
  neg_count: u32,
  margin: f32,
  temperature: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read> group_a: array<i32>;
@group(0) @binding(3) var<storage, read> group_b: array<i32>;
@group(0) @binding(4) var<storage, read> scalars: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;
@group(0) @binding(6) var<storage, read> dloss: array<f32>;
@group(0) @binding(7) var<storage, read_write> ds: array<f32>;
@group(0) @binding(8) var<storage, read_write> dscalars: array<f32>;

override MODE: u32 = 0u;
const MAX_NEG: u32 = 16u;

fn row_of(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

fn is_pair(i: u32, j: u32) -> bool {
  return !(p.skip_self != 0u && i == j);
}

fn positive(i: u32, j: u32) -> bool {
  return group_a[i] == group_b[j];
}

fn stable_sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

fn log_sigmoid(v: f32) -> f32 {
  return min(v, 0.0) - log(1.0 + exp(-abs(v)));
}

fn distance(v: f32) -> f32 {
  return sqrt(max(2.0 - 2.0 * v, 0.0));
}

// MODE 0. Gradient of relu(m − d)² by s: 2 relu(m − d) / d (d = 0 gives none).
fn margin_row(i: u32, grad: bool, scale: f32) -> f32 {
  let base = i * p.cols;
  var hard_j: array<u32, MAX_NEG>;
  var hard_s: array<f32, MAX_NEG>;
  var kept = 0u;
  var total = 0.0;
  for (var j = 0u; j < p.cols; j++) {
    if (!is_pair(i, j)) { continue; }
    let v = s[base + j];
    if (positive(i, j)) {
      total += 2.0 - 2.0 * v;
      if (grad) { ds[base + j] = -2.0 * scale; }
      continue;
    }
    if (grad) { ds[base + j] = 0.0; }
    // Insertion into the list of the largest similarities, kept sorted in descending order.
    if (kept < p.neg_count || v > hard_s[kept - 1u]) {
      var at = min(kept, p.neg_count - 1u);
      if (kept < p.neg_count) { kept++; }
      while (at > 0u && hard_s[at - 1u] < v) {
        hard_s[at] = hard_s[at - 1u];
        hard_j[at] = hard_j[at - 1u];
        at--;
      }
      hard_s[at] = v;
      hard_j[at] = j;
    }
  }
  for (var k = 0u; k < kept; k++) {
    let d = distance(hard_s[k]);
    let gap = max(p.margin - d, 0.0);
    total += gap * gap;
    if (grad && d > 1e-6) { ds[base + hard_j[k]] = 2.0 * gap / d * scale; }
  }
  if (grad && p.skip_self != 0u && i < p.cols) { ds[base + i] = 0.0; }
  return total;
}

// MODE 1. ∂/∂s_ij = (softmax_ij − [j positive] / |P|) / τ.
fn infonce_row(i: u32, grad: bool, scale: f32) -> f32 {
  let base = i * p.cols;
  var top = -3.0e38;
  for (var j = 0u; j < p.cols; j++) {
    if (is_pair(i, j)) { top = max(top, s[base + j] / p.temperature); }
  }
  var z = 0.0;
  var pos_sum = 0.0;
  var pos = 0.0;
  for (var j = 0u; j < p.cols; j++) {
    if (!is_pair(i, j)) { continue; }
    let v = s[base + j] / p.temperature;
    z += exp(v - top);
    if (positive(i, j)) {
      pos_sum += v;
      pos += 1.0;
    }
  }
  let lse = top + log(z);
  if (pos == 0.0) {
    if (grad) { for (var j = 0u; j < p.cols; j++) { ds[base + j] = 0.0; } }
    return 0.0;
  }
  if (grad) {
    for (var j = 0u; j < p.cols; j++) {
      if (!is_pair(i, j)) {
        ds[base + j] = 0.0;
        continue;
      }
      let soft = exp(s[base + j] / p.temperature - lse);
      let wanted = select(0.0, 1.0 / pos, positive(i, j));
      ds[base + j] = (soft - wanted) / p.temperature * scale;
    }
  }
  return lse - pos_sum / pos;
}

// MODE 2. With q = σ(−label · logit): ∂/∂logit = −label · q.
fn siglip_row(i: u32, grad: bool, scale: f32) -> f32 {
  let base = i * p.cols;
  let t = exp(scalars[0]);
  let b = scalars[1];
  var total = 0.0;
  var dt = 0.0;
  var db = 0.0;
  for (var j = 0u; j < p.cols; j++) {
    if (!is_pair(i, j)) {
      if (grad) { ds[base + j] = 0.0; }
      continue;
    }
    let label = select(-1.0, 1.0, positive(i, j));
    let logit = s[base + j] * t + b;
    total -= log_sigmoid(label * logit);
    if (grad) {
      let dlogit = -label * stable_sigmoid(-label * logit) * scale;
      ds[base + j] = dlogit * t;
      dt += dlogit * s[base + j] * t;
      db += dlogit;
    }
  }
  if (grad) {
    dscalars[2u * i] = dt;
    dscalars[2u * i + 1u] = db;
  }
  return total;
}

fn row_loss(i: u32, grad: bool, scale: f32) -> f32 {
  if (MODE == 0u) { return margin_row(i, grad, scale); }
  if (MODE == 1u) { return infonce_row(i, grad, scale); }
  return siglip_row(i, grad, scale);
}

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = row_of(gid, nwg);
  if (i >= p.rows) { return; }
  loss[i] = row_loss(i, false, 0.0);
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = row_of(gid, nwg);
  if (i >= p.rows) { return; }
  _ = row_loss(i, true, dloss[i]);
}
