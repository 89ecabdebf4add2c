// Layer normalisation over the last axis of x [rows, cols]: y = (x - mean) · rstd · gamma + beta,
// rstd = 1 / sqrt(var + eps) with the biased variance. A segment of TPR threads (a power of two)
// handles one row and WG / TPR rows share a workgroup; row sums are trees in workgroup memory, so
// the order is fixed. x, y, g and dx are bound as a window of rows starting at row p.row0; mean,
// rstd and the partials are bound whole.
struct Params { rows: u32, cols: u32, eps: f32, row0: u32, chunk_rows: u32, chunk0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(7) var<storage, read> g: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read_write> partial_sums: array<f32>;

override TPR: u32;
const WG: u32 = 64u;
var<workgroup> red: array<vec2f, WG>;

// The sum of v over the calling thread's segment (t is its index in the segment), for every
// thread of it. Must be reached by the whole workgroup.
fn segment_sum(lid: u32, t: u32, v: vec2f) -> vec2f {
  // A row to itself needs no tree, and llvmpipe pays for every barrier.
  if (TPR == 1u) { return v; }
  red[lid] = v;
  workgroupBarrier();
  for (var k = TPR / 2u; k > 0u; k = k / 2u) {
    if (t < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  let total = red[lid - t];
  workgroupBarrier();
  return total;
}

fn row_of(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * (WG / TPR) + lid / TPR;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
           @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let t = lid % TPR;
  let live = r < p.rows;
  let base = r * p.cols;
  let n = f32(p.cols);
  var s = 0.0;
  if (live) { for (var c = t; c < p.cols; c += TPR) { s += x[base + c]; } }
  let mu = segment_sum(lid, t, vec2f(s, 0.0)).x / n;
  // Two passes (mean, then squared deviations): one-pass E[x²] - E[x]² cancels catastrophically.
  var q = 0.0;
  if (live) {
    for (var c = t; c < p.cols; c += TPR) {
      let d = x[base + c] - mu;
      q += d * d;
    }
  }
  let inv_std = 1.0 / sqrt(segment_sum(lid, t, vec2f(q, 0.0)).x / n + p.eps);
  if (!live) { return; }
  for (var c = t; c < p.cols; c += TPR) {
    y[base + c] = (x[base + c] - mu) * inv_std * gamma[c] + beta[c];
  }
  if (t == 0u) {
    mean[p.row0 + r] = mu;
    rstd[p.row0 + r] = inv_std;
  }
}

// dx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂)) with ĝ = g · gamma and x̂ the normalised input.
@compute @workgroup_size(WG)
fn backward_x(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
              @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let t = lid % TPR;
  let live = r < p.rows;
  let base = r * p.cols;
  var mu = 0.0;
  var inv_std = 0.0;
  var acc = vec2f(0.0);
  if (live) {
    mu = mean[p.row0 + r];
    inv_std = rstd[p.row0 + r];
    for (var c = t; c < p.cols; c += TPR) {
      let gh = g[base + c] * gamma[c];
      acc += vec2f(gh, gh * (x[base + c] - mu) * inv_std);
    }
  }
  let means = segment_sum(lid, t, acc) / f32(p.cols);
  if (!live) { return; }
  for (var c = t; c < p.cols; c += TPR) {
    let xh = (x[base + c] - mu) * inv_std;
    dx[base + c] = inv_std * (g[base + c] * gamma[c] - means.x - xh * means.y);
  }
}

// First stage of dgamma = Σ_rows g · x̂ and dbeta = Σ_rows g: chunk k of chunk_rows rows writes
// row p.chunk0 + k of partials [chunks, 2 · cols] (dgamma's then dbeta's); column_sum.wgsl's
// `finish` adds the chunks. Grid: x, y over column blocks of WG; z over this window's chunks.
@compute @workgroup_size(WG)
fn param_partials(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_index) lid: u32) {
  let col = (wid.x + wid.y * nwg.x) * WG + lid;
  if (col >= p.cols) { return; }
  let r0 = wid.z * p.chunk_rows;
  let r1 = min(r0 + p.chunk_rows, p.rows);
  var dgamma = 0.0;
  var dbeta = 0.0;
  for (var r = r0; r < r1; r++) {
    let gv = g[r * p.cols + col];
    dgamma += gv * (x[r * p.cols + col] - mean[p.row0 + r]) * rstd[p.row0 + r];
    dbeta += gv;
  }
  let out = (p.chunk0 + wid.z) * 2u * p.cols;
  partial_sums[out + col] = dgamma;
  partial_sums[out + p.cols + col] = dbeta;
}
