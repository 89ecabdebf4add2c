// One token's linear layer (decoding): y [out] = x [in] · Wᵀ, W [out, in] row-major, or given as
// wt = Wᵀ [in, out] (src/tensor/ops/gemv.ts). The composing code prepends WG (invocations per
// workgroup) and R (output rows per workgroup or per invocation). Shapes of the same product:
// - split: a workgroup per R rows, its invocations striding along in (neighbours read neighbouring
//   floats, as a GPU wants), partial sums added by a tree in workgroup memory;
// - rows: an invocation per R rows walking all of in, x read once for R rows (a CPU adapter runs a
//   workgroup's invocations as SIMD lanes and gains nothing from a reduction).
struct Params {
  out_features: u32,
  in_features: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG * R>;

// Row r of a block starting at `first`, clamped to the last row (its sum is computed, not stored).
fn row_start(first: u32, r: u32) -> u32 {
  return min(first + r, p.out_features - 1u) * p.in_features;
}

@compute @workgroup_size(WG)
fn split(
  @builtin(local_invocation_index) l: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let first = (wid.x + wid.y * nwg.x) * R;
  var acc: array<f32, R>;
  for (var k = l; k < p.in_features; k += WG) {
    let xk = x[k];
    for (var r = 0u; r < R; r++) { acc[r] = fma(xk, w[row_start(first, r) + k], acc[r]); }
  }
  for (var r = 0u; r < R; r++) { partial[r * WG + l] = acc[r]; }
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
  if (first >= p.out_features) { return; }
  var acc: array<f32, R>;
  var k = 0u;
  for (; k + 4u <= p.in_features; k += 4u) {
    let xv = vec4f(x[k], x[k + 1u], x[k + 2u], x[k + 3u]);
    for (var r = 0u; r < R; r++) {
      let b = row_start(first, r) + k;
      acc[r] += dot(xv, vec4f(w[b], w[b + 1u], w[b + 2u], w[b + 3u]));
    }
  }
  for (; k < p.in_features; k++) {
    let xk = x[k];
    for (var r = 0u; r < R; r++) { acc[r] = fma(xk, w[row_start(first, r) + k], acc[r]); }
  }
  for (var r = 0u; r < R && first + r < p.out_features; r++) { y[first + r] = acc[r]; }
}

// W stored transposed, wt [in, out] (input-major): an invocation per R neighbouring outputs (R a
// multiple of 4, summed as vec4s) walks the inputs, reading R neighbouring floats of each row of wt.
@compute @workgroup_size(WG)
fn cols(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let first = (gid.x + gid.y * nwg.x * WG) * R;
  if (first >= p.out_features) { return; }
  var acc: array<vec4f, (R + 3u) / 4u>;
  for (var k = 0u; k < p.in_features; k++) {
    let xk = vec4f(x[k]);
    let base = k * p.out_features;
    for (var r = 0u; r < R / 4u; r++) {
      acc[r] = fma(xk, wt_quad(base, first + 4u * r), acc[r]);
    }
  }
  for (var r = 0u; r < R && first + r < p.out_features; r++) { y[first + r] = acc[r / 4u][r % 4u]; }
}

// wt[base + o … o + 3], the outputs past the last read as the last.
fn wt_quad(base: u32, o: u32) -> vec4f {
  let last = p.out_features - 1u;
  return vec4f(w[base + min(o, last)], w[base + min(o + 1u, last)], w[base + min(o + 2u, last)], w[
    base + min(o + 3u, last)
  ]);
}
