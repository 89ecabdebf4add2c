// One token's activation-sparse product against W stored transposed, read as vec4s
// (src/sparse/gemv.ts): y [cols] = S(x)·Wᵀ with x [in] compressed (one lane) and wt = Wᵀ [in, cols],
// cols a multiple of 4; sparse_gemv.wgsl's activation_cols runs the other widths. The composing
// code prepends WG and R (outputs per invocation, a multiple of 4); sparse_nm.wgsl is composed in.
// An invocation per R / 4 vec4s of outputs, neighbouring invocations on neighbouring vec4s, walks
// x's kept values; a pruned input skips its whole row of wt. Every invocation walks the same kept
// positions in the same order, so the metadata and the values are read at addresses uniform over
// the workgroup (on a CPU adapter one load for all lanes), and only the row of wt is per lane.
struct Params {
  cols: u32,
  in_features: u32,
  n: u32,
  m: u32,
  width: u32,
  words: u32,
  groups: u32,
  kept: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> nm_meta: array<u32>;
@group(0) @binding(3) var<storage, read> binomials: array<u32>;
@group(0) @binding(4) var<storage, read> wt: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn activation_cols(
  @builtin(local_invocation_index) l: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let cols4 = p.cols / 4u;
  let first = (wid.x + wid.y * nwg.x) * (R / 4u) * WG + l;
  var at: array<u32, R / 4u>;
  for (var r = 0u; r < R / 4u; r++) { at[r] = min(first + r * WG, cols4 - 1u); }
  var acc: array<vec4f, R / 4u>;
  var walk = kept_from(0u, 0u);
  for (var q = 0u; q < p.kept; q++) {
    let v = vec4f(values[q]);
    let row = kept_next(&walk) * cols4;
    for (var r = 0u; r < R / 4u; r++) { acc[r] = fma(v, wt[row + at[r]], acc[r]); }
  }
  for (var r = 0u; r < R / 4u; r++) {
    let o = first + r * WG;
    if (o < cols4) {
      for (var i = 0u; i < 4u; i++) { y[4u * o + i] = acc[r][i]; }
    }
  }
}
