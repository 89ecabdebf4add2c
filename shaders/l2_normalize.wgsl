// Row-wise L2 normalisation y = x / max(‖x‖, eps), one thread per row. Backward:
// dx = (g − y (y · g)) / ‖x‖ (rows with ‖x‖ < eps pass g / eps through, the clamp's gradient).
struct Params { rows: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

fn row_of(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 64u;
}

fn norm_of(base: u32) -> f32 {
  var s = 0.0;
  for (var c = 0u; c < p.cols; c++) {
    s += x[base + c] * x[base + c];
  }
  return sqrt(s);
}

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = row_of(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  let inv = 1.0 / max(norm_of(base), p.eps);
  for (var c = 0u; c < p.cols; c++) {
    y[base + c] = x[base + c] * inv;
  }
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = row_of(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  let norm = norm_of(base);
  if (norm < p.eps) {
    for (var c = 0u; c < p.cols; c++) {
      dx[base + c] = g[base + c] / p.eps;
    }
    return;
  }
  var yg = 0.0;
  for (var c = 0u; c < p.cols; c++) {
    yg += x[base + c] * g[base + c];
  }
  yg /= norm;
  for (var c = 0u; c < p.cols; c++) {
    dx[base + c] = (g[base + c] - x[base + c] / norm * yg) / norm;
  }
}
