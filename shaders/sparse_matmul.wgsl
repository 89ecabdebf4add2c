// Sparse matrix products on a compressed N:M operand, never decompressed (src/sparse/matmul.ts).
// Y [rows, cols] = S(X)·Wᵀ (activation-sparse, ACTIVATION: X [rows, in] compressed along in, W
// dense [cols, in]) or X·S(W)ᵀ (weight-sparse: W [cols, in] compressed along in, X dense). Either
// way Y[t, o] is the gathered dot of the compressed row's values with the dense row read at its
// kept positions, so a dense column a row pruned is never read. Needs sparse_nm.wgsl and
// sparse_gathered_dot.wgsl composed in.
//
// The weight-sparse backward: dX [rows, in] = dY·S(W) and dW at the kept positions only (the
// gradient of the values). They loop over outputs or tokens [lo, hi) per pass: llvmpipe silently
// ends an invocation's loops after 65,535 iterations, so the host keeps each pass under budget.
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
  lo: u32,
  hi: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
// The compressed operand: values [lanes, kept] and metadata [lanes, words].
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> nm_meta: array<u32>;
@group(0) @binding(3) var<storage, read> binomials: array<u32>;
// The dense operand: W [cols, in] (activation-sparse) or X [rows, in].
@group(0) @binding(4) var<storage, read> dense: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<storage, read_write> dvalues: array<f32>;

override ACTIVATION: bool = false;

// One dot: the compressed row's values from `a`, the dense row from `b` at the kept positions.
struct Gather { a: u32, b: u32, walk: Kept }

fn gather_a(g: ptr<function, Gather>, j: u32) -> f32 {
  return values[(*g).a + j];
}

fn gather_next(g: ptr<function, Gather>) -> f32 {
  return dense[(*g).b + kept_next(&(*g).walk)];
}

// Y[t, o].
fn output(t: u32, o: u32) -> f32 {
  let compressed = select(o, t, ACTIVATION);
  let other = select(t, o, ACTIVATION);
  var g = Gather(compressed * p.kept, other * p.in_features, kept_from(compressed, 0u));
  return gathered_dot(&g, p.kept);
}

// A batch of tokens: an invocation per output of token `lo + z` (the grid's third dimension).
@compute @workgroup_size(64)
fn batched(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let o = gid.x + gid.y * nwg.x * 64u;
  let t = p.lo + gid.z;
  if (o >= p.cols || t >= p.rows) { return; }
  y[t * p.cols + o] = output(t, o);
}

// dX[t, g·M ..] += Σ_{o in [lo, hi)} dY[t, o] · S(W)[o, g·M ..]: an invocation per token and
// group writes only its group's columns, adding outputs in ascending order.
@compute @workgroup_size(64)
fn grad_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * 64u;
  if (id >= p.rows * p.groups) { return; }
  let t = id / p.groups;
  let g = id % p.groups;
  for (var o = p.lo; o < p.hi; o++) {
    let scale = dy[t * p.cols + o];
    var walk = kept_from(o, g);
    for (var j = 0u; j < p.n; j++) {
      let at = t * p.in_features + kept_next(&walk);
      dx[at] = fma(scale, values[o * p.kept + g * p.n + j], dx[at]);
    }
  }
}

// dW[o, c] for the kept positions c of group g of row o: Σ_{t in [lo, hi)} dY[t, o] · X[t, c],
// added to what earlier passes left.
@compute @workgroup_size(64)
fn grad_values(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let id = gid.x + gid.y * nwg.x * 64u;
  if (id >= p.cols * p.groups) { return; }
  let o = id / p.groups;
  let g = id % p.groups;
  var walk = kept_from(o, g);
  for (var j = 0u; j < p.n; j++) {
    let c = kept_next(&walk);
    var s = 0.0;
    for (var t = p.lo; t < p.hi; t++) {
      s = fma(dy[t * p.cols + o], dense[t * p.in_features + c], s);
    }
    let at = o * p.kept + g * p.n + j;
    dvalues[at] += s;
  }
}
