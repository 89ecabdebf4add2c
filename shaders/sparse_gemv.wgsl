// One token's sparse product (decoding), the compressed operand read as is (src/sparse/gemv.ts):
// y [cols] = S(x)·Wᵀ (ACTIVATION: x [in] compressed, one lane; W dense [cols, in]) or x·S(W)ᵀ
// (W [cols, in] compressed along in, one lane per output; x dense [in]). The composing code
// prepends WG (invocations per workgroup), R (outputs per block) and KC (kept values a workgroup
// decodes at a time); sparse_nm.wgsl is composed in.
// - rows: an invocation per R outputs walking every kept value (a CPU adapter's SIMD lanes);
// - split: a workgroup per R outputs, its invocations striding over the kept values, partial sums
//   added by a tree in workgroup memory (a GPU).
// - cols (activation-sparse, W given as wt = Wᵀ [in, out]): an invocation per R neighbouring
//   outputs; a pruned input skips a whole row of wt, so half of W is never read (with W [out, in]
//   the kept columns share cache lines with the pruned ones).
// Activation-sparse: all outputs share x's kept positions. "rows" walks them in every invocation
// in the same order (uniform reads, no barriers: what SIMD lanes want); "split" and "cols" decode
// them once per chunk of KC into workgroup memory and every output reads W only there.
// sparse_gemv_cols.wgsl runs "cols" when the outputs are a multiple of 4.
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
// W [cols, in] or wt [in, cols] (activation-sparse), or x [in].
@group(0) @binding(4) var<storage, read> dense: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

override ACTIVATION: bool = false;

var<workgroup> kept_at: array<u32, KC>;
var<workgroup> partial: array<f32, WG * R>;

// Kept values per chunk: whole groups when codes are decoded group by group.
fn chunk_len() -> u32 {
  return select(KC, p.n * (KC / p.n), COMBINATORIAL);
}

// Writes the positions of x's kept values [q0, q0 + len) to kept_at, the workgroup's invocations
// sharing the work: by group for codes (each mask decoded once), by value for indices.
fn decode_chunk(l: u32, q0: u32, len: u32) {
  if (COMBINATORIAL) {
    let g0 = q0 / p.n;
    for (var g = l; g * p.n < len; g += WG) {
      var mask = nm_group_mask(0u, g0 + g);
      for (var i = 0u; i < p.n; i++) {
        kept_at[g * p.n + i] = (g0 + g) * p.m + firstTrailingBit(mask);
        mask &= mask - 1u;
      }
    }
  } else {
    for (var j = l; j < len; j += WG) {
      let q = q0 + j;
      kept_at[j] = q / p.n * p.m + nm_field(0u, q);
    }
  }
}

// Row r of a block starting at `first`, clamped to the last (its sum is computed, not stored).
fn row_of(first: u32, r: u32) -> u32 {
  return min(first + r, p.cols - 1u);
}

// Every invocation walks x's kept positions in the same order, so the metadata and the values are
// read at addresses uniform over the workgroup and only W is read per invocation.
@compute @workgroup_size(WG)
fn activation_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let first = (gid.x + gid.y * nwg.x * WG) * R;
  var at: array<u32, R>;
  for (var r = 0u; r < R; r++) { at[r] = row_of(first, r) * p.in_features; }
  var acc: array<f32, R>;
  var walk = kept_from(0u, 0u);
  for (var q = 0u; q < p.kept; q++) {
    let v = values[q];
    let c = kept_next(&walk);
    for (var r = 0u; r < R; r++) { acc[r] = fma(v, dense[at[r] + c], acc[r]); }
  }
  for (var r = 0u; r < R; r++) {
    if (first + r < p.cols) { y[first + r] = acc[r]; }
  }
}

// R a multiple of 4: the outputs summed as vec4s.
@compute @workgroup_size(WG)
fn activation_cols(
  @builtin(local_invocation_index) l: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let first = ((wid.x + wid.y * nwg.x) * WG + l) * R;
  var acc: array<vec4f, (R + 3u) / 4u>;
  let step = chunk_len();
  for (var q0 = 0u; q0 < p.kept; q0 += step) {
    let len = min(step, p.kept - q0);
    workgroupBarrier();
    decode_chunk(l, q0, len);
    workgroupBarrier();
    for (var j = 0u; j < len; j++) {
      let v = vec4f(values[q0 + j]);
      let base = kept_at[j] * p.cols;
      for (var r = 0u; r < R / 4u; r++) {
        let o = first + 4u * r;
        let w = vec4f(
          dense[base + row_of(o, 0u)],
          dense[base + row_of(o, 1u)],
          dense[base + row_of(o, 2u)],
          dense[base + row_of(o, 3u)],
        );
        acc[r] = fma(v, w, acc[r]);
      }
    }
  }
  for (var r = 0u; r < R && first + r < p.cols; r++) { y[first + r] = acc[r / 4u][r % 4u]; }
}

// The partial sums of invocation l added over the workgroup; invocation r < R stores row r.
fn reduce_store(l: u32, first: u32, acc: ptr<function, array<f32, R>>) {
  for (var r = 0u; r < R; r++) { partial[r * WG + l] = (*acc)[r]; }
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (l < s) {
      for (var r = 0u; r < R; r++) { partial[r * WG + l] += partial[r * WG + l + s]; }
    }
    workgroupBarrier();
  }
  if (l < R && first + l < p.cols) { y[first + l] = partial[l * WG]; }
}

@compute @workgroup_size(WG)
fn activation_split(
  @builtin(local_invocation_index) l: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let first = (wid.x + wid.y * nwg.x) * R;
  var acc: array<f32, R>;
  let step = chunk_len();
  for (var q0 = 0u; q0 < p.kept; q0 += step) {
    let len = min(step, p.kept - q0);
    workgroupBarrier();
    decode_chunk(l, q0, len);
    workgroupBarrier();
    for (var j = l; j < len; j += WG) {
      let v = values[q0 + j];
      let c = kept_at[j];
      for (var r = 0u; r < R; r++) {
        acc[r] = fma(v, dense[row_of(first, r) * p.in_features + c], acc[r]);
      }
    }
  }
  reduce_store(l, first, &acc);
}

// Σ over the kept values of output row o of S(W) against x, from unit `first` by `stride` units: a
// unit is a group with codes (its mask decoded once), a kept value with indices.
fn weight_dot(o: u32, first: u32, stride: u32) -> f32 {
  var s = 0.0;
  if (COMBINATORIAL) {
    for (var g = first; g < p.groups; g += stride) {
      var mask = nm_group_mask(o, g);
      let at = o * p.kept + g * p.n;
      for (var i = 0u; i < p.n; i++) {
        s = fma(values[at + i], dense[g * p.m + firstTrailingBit(mask)], s);
        mask &= mask - 1u;
      }
    }
  } else {
    for (var q = first; q < p.kept; q += stride) {
      s = fma(values[o * p.kept + q], dense[q / p.n * p.m + nm_field(o, q)], s);
    }
  }
  return s;
}

@compute @workgroup_size(WG)
fn weight_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let first = (gid.x + gid.y * nwg.x * WG) * R;
  for (var r = 0u; r < R && first + r < p.cols; r++) { y[first + r] = weight_dot(first + r, 0u, 1u); }
}

@compute @workgroup_size(WG)
fn weight_split(
  @builtin(local_invocation_index) l: u32,
  @builtin(workgroup_id) wid: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
) {
  let first = (wid.x + wid.y * nwg.x) * R;
  var acc: array<f32, R>;
  for (var r = 0u; r < R; r++) { acc[r] = weight_dot(row_of(first, r), l, WG); }
  reduce_store(l, first, &acc);
}
