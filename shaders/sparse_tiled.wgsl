// A batch of tokens' sparse product, tiled (src/sparse/tiled.ts): Y [rows, cols] = S(X)·Wᵀ
// (ACTIVATION: X [rows, in] compressed along in, W dense [cols, in]) or X·S(W)ᵀ (W [cols, in]
// compressed, X dense [rows, in]). A workgroup computes a tile of TC compressed rows × TD dense
// rows; per chunk of K columns it loads the dense rows' chunk (column-major, so that RD neighbouring
// rows of a column are RD/4 vec4s) and each compressed row's kept values in the chunk (with their
// columns) into workgroup memory, then every invocation adds its RC × RD outputs from there. The
// composing code prepends WGC, WGD (the invocation grid), RC, RD (a multiple of 4) and K;
// sparse_nm.wgsl is composed in. Columns [k_from, k_to) per pass: llvmpipe silently ends an
// invocation's loops after 65,535 iterations, so the host cuts long rows into passes that add to
// what the earlier ones wrote.
struct Params {
  rows: u32,
  cols: u32,
  in_features: u32,
  n: u32,
  m: u32,
  width: u32,
  words: u32,
  groups: u32,
  kept: u32,
  k_from: u32,
  k_to: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> nm_meta: array<u32>;
@group(0) @binding(3) var<storage, read> binomials: array<u32>;
@group(0) @binding(4) var<storage, read> dense: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

override ACTIVATION: bool = false;

const WG = WGC * WGD;
const TC = WGC * RC;
const TD = WGD * RD;

var<workgroup> dense_tile: array<vec4f, TD / 4u * K>;
var<workgroup> kept_values: array<f32, TC * K>;
var<workgroup> kept_cols: array<u32, TC * K>;
var<workgroup> kept_count: array<u32, TC>;

// Index of the first kept value of `lane` at column ≥ k: a group's start with codes, a binary
// search with indices (positions grow with the index).
fn first_kept_from(lane: u32, k: u32) -> u32 {
  if (COMBINATORIAL) { return k / p.m * p.n; }
  var lo = 0u;
  var hi = p.kept;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (mid / p.n * p.m + nm_field(lane, mid) < k) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

// One compressed row's walk over its kept values: index q, column `next` of q.
struct Loader { walk: Kept, q: u32, next: u32 }

fn loader_at(lane: u32, k: u32) -> Loader {
  let q = first_kept_from(lane, k);
  var ld = Loader(kept_from_value(lane, q), q, 0u);
  if (q < p.kept) { ld.next = kept_next(&ld.walk); }
  // With codes the walk starts at the group's first kept value: step to column k.
  for (; ld.q < p.kept && ld.next < k; ld.q++) {
    if (ld.q + 1u < p.kept) { ld.next = kept_next(&ld.walk); }
  }
  return ld;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) l: u32, @builtin(workgroup_id) wid: vec3u) {
  let nc = select(p.cols, p.rows, ACTIVATION);
  let nd = select(p.rows, p.cols, ACTIVATION);
  let c0 = wid.y * TC;
  let d0 = wid.x * TD;
  let lc = l % WGC;
  let ldr = l / WGC;
  let row = c0 + l;
  let loads = l < TC && row < nc;
  var ld = loader_at(min(row, nc - 1u), p.k_from);
  var acc: array<vec4f, RC * RD / 4u>;
  for (var k0 = p.k_from; k0 < p.k_to; k0 += K) {
    workgroupBarrier();
    // Four dense rows of one column per step: neighbouring invocations read neighbouring columns.
    for (var i = l; i < TD / 4u * K; i += WG) {
      let k = k0 + i % K;
      let d = d0 + i / K * 4u;
      var v = vec4f(0.0);
      if (k < p.k_to) {
        let at = d * p.in_features + k;
        if (d < nd) { v.x = dense[at]; }
        if (d + 1u < nd) { v.y = dense[at + p.in_features]; }
        if (d + 2u < nd) { v.z = dense[at + 2u * p.in_features]; }
        if (d + 3u < nd) { v.w = dense[at + 3u * p.in_features]; }
      }
      dense_tile[i % K * (TD / 4u) + i / K] = v;
    }
    if (l < TC) {
      var count = 0u;
      for (; loads && ld.q < p.kept && ld.next < min(k0 + K, p.k_to); count++) {
        kept_values[l * K + count] = values[row * p.kept + ld.q];
        kept_cols[l * K + count] = ld.next - k0;
        ld.q++;
        if (ld.q < p.kept) { ld.next = kept_next(&ld.walk); }
      }
      kept_count[l] = count;
    }
    workgroupBarrier();
    for (var i = 0u; i < RC; i++) {
      let c = lc + i * WGC;
      let count = kept_count[c];
      for (var j = 0u; j < count; j++) {
        let v = kept_values[c * K + j];
        let col = kept_cols[c * K + j];
        let at = col * (TD / 4u) + ldr * (RD / 4u);
        for (var jj = 0u; jj < RD / 4u; jj++) {
          let a = i * (RD / 4u) + jj;
          acc[a] = fma(vec4f(v), dense_tile[at + jj], acc[a]);
        }
      }
    }
  }
  for (var i = 0u; i < RC; i++) {
    let c = c0 + lc + i * WGC;
    for (var jj = 0u; jj < RD; jj++) {
      let d = d0 + ldr * RD + jj;
      if (c < nc && d < nd) {
        let at = select(d * p.cols + c, c * p.cols + d, ACTIVATION);
        let s = acc[i * (RD / 4u) + jj / 4u][jj % 4u];
        y[at] = select(s, y[at] + s, p.k_from > 0u);
      }
    }
  }
}
