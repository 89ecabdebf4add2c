// Adam and AdamW in PyTorch's formulation (the update itself: adam_update.wgsl):
//   AdamW (DECOUPLED = 1): w ← w·(1 − lr·wd);  Adam: g ← g + wd·w
//   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//   w ← w − stepSize · m / (√v · invSqrtBc2 + eps),  stepSize = lr / (1 − β1^t)
// Dense gradients go through the multi-tensor `dense` kernel generated in src/train/optim.ts.
// `rows` updates only the rows named by sorted unique ids (lazy Adam for SparseRows gradients),
// so untouched rows, and their moments, keep their bits; `nonzero` is the same lazy update for a
// table whose gradient arrives dense (the fused losses scatter into a dense table gradient):
// what has a zero gradient was not touched.
// With maxNorm > 0 every gradient is read clipped, times min(1, maxNorm / (norm + 1e-6)) with the
// global norm from grad_norm.wgsl (its `scale` factor, so the step is the same as after it), and
// the gradient itself is left as it was: one pass over each gradient fewer.
struct Params {
  n: u32,
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weightDecay: f32,
  stepSize: f32,
  invSqrtBc2: f32,
  cols: u32,
  rowBase: u32,
  gradSkip: u32,
  idsAt: u32,
  maxNorm: f32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> ids: array<i32>;
@group(0) @binding(6) var<storage, read> norm: array<f32>;

fn update(i: u32, clippedGrad: f32) {
  let next = adam(param[i], clippedGrad, m[i], v[i]);
  m[i] = next.y;
  v[i] = next.z;
  param[i] = next.x;
}

@compute @workgroup_size(256)
fn rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let j = i / p.cols;
  let col = i - j * p.cols;
  let row = u32(ids[p.idsAt + j]) - p.rowBase;
  update(row * p.cols + col, clipped(grad[(p.gradSkip + j) * p.cols + col]));
}

// An element whose gradient is exactly zero is left alone: in a row a step touched, every element
// of a fused loss's gradient (a sum of softmax weights times hidden states) is non-zero almost
// surely, so this is the row-lazy rule at the cost of reading the gradient once.
@compute @workgroup_size(256)
fn nonzero(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let g = clipped(grad[i]);
  if (g != 0.0) { update(i, g); }
}
