// The dense GEMV (src/tensor/ops/gemv.ts) with W read as vec4s, for layers whose rows of W (or of
// wt = Wᵀ) are a multiple of 4 floats; gemv.wgsl runs the others. Same shapes and the same WG and R
// as gemv.wgsl. A vec4 binding makes every load of W one 16-byte load: a CPU adapter loads each
// lane's address on its own, and four float loads with their own bounds checks and clamps cost
// about four times as much. Rows past the last are clamped (computed, not stored) rather than
// returned from early, so every invocation runs the same loop and uniform loads stay uniform.
struct Params {
  out_features: u32,
  in_features: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG * R>;

fn x4(k4: u32) -> vec4f {
  let k = 4u * k4;
  return vec4f(x[k], x[k + 1u], x[k + 2u], x[k + 3u]);
}

// Where row `first + r` starts, in vec4s of W [out, in] (rows past the last read the last).
fn row_at(first: u32, r: u32) -> u32 {
  return min(first + r, p.out_features - 1u) * (p.in_features / 4u);
}

@compute @workgroup_size(WG)
fn split(
  @builtin(local_invocation_index) l: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let first = (wid.x + wid.y * nwg.x) * R;
  var acc: array<vec4f, R>;
  for (var k = l; k < p.in_features / 4u; k += WG) {
    let xv = x4(k);
    for (var r = 0u; r < R; r++) { acc[r] = fma(xv, w[row_at(first, r) + k], acc[r]); }
  }
  for (var r = 0u; r < R; r++) { partial[r * WG + l] = dot(acc[r], vec4f(1.0)); }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (l < s) {
      for (var r = 0u; r < R; r++) { partial[r * WG + l] += partial[r * WG + l + s]; }
    }
    workgroupBarrier();
  }
  if (l < R && first + l < p.out_features) { y[first + l] = partial[l * WG]; }
}

@compute @workgroup_size(WG)
fn rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let first = (gid.x + gid.y * nwg.x * WG) * R;
  var at: array<u32, R>;
  for (var r = 0u; r < R; r++) { at[r] = row_at(first, r); }
  var acc: array<vec4f, R>;
  for (var k = 0u; k < p.in_features / 4u; k++) {
    let xv = x4(k);
    for (var r = 0u; r < R; r++) { acc[r] = fma(xv, w[at[r] + k], acc[r]); }
  }
  for (var r = 0u; r < R; r++) {
    if (first + r < p.out_features) { y[first + r] = dot(acc[r], vec4f(1.0)); }
  }
}

// wt [in, out] with out a multiple of 4: an invocation per R / 4 vec4s of outputs, neighbouring
// invocations on neighbouring vec4s (a GPU's coalesced reads), walking the inputs.
@compute @workgroup_size(WG)
fn cols(
  @builtin(local_invocation_index) l: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let out4 = p.out_features / 4u;
  let first = (wid.x + wid.y * nwg.x) * (R / 4u) * WG + l;
  var at: array<u32, (R + 3u) / 4u>;
  for (var r = 0u; r < R / 4u; r++) { at[r] = min(first + r * WG, out4 - 1u); }
  var acc: array<vec4f, (R + 3u) / 4u>;
  for (var k = 0u; k < p.in_features; k++) {
    let xk = vec4f(x[k]);
    let row = k * out4;
    for (var r = 0u; r < R / 4u; r++) { acc[r] = fma(xk, w[row + at[r]], acc[r]); }
  }
  for (var r = 0u; r < R / 4u; r++) {
    let o = first + r * WG;
    if (o < out4) {
      for (var i = 0u; i < 4u; i++) { y[4u * o + i] = acc[r][i]; }
    }
  }
}
