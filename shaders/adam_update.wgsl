// The update of one element, shared by adam.wgsl's entries and the multi-tensor `dense` kernel
// generated in src/train/optim.ts; both declare the hyperparameters in `p` and the global
// gradient norm in `norm`.
override DECOUPLED: u32 = 0u;

fn clipped(g: f32) -> f32 {
  if (p.maxNorm > 0.0) { return g * min(1.0, p.maxNorm / (norm[0] + 1e-6)); }
  return g;
}

// (w, m, v) after one step from (w0, m0, v0) with the clipped gradient g0.
fn adam(w0: f32, g0: f32, m0: f32, v0: f32) -> vec3<f32> {
  var w = w0;
  var g = g0;
  if (DECOUPLED != 0u) {
    w = w * (1.0 - p.lr * p.weightDecay);
  } else {
    g = g + p.weightDecay * w;
  }
  let m1 = p.beta1 * m0 + (1.0 - p.beta1) * g;
  let v1 = p.beta2 * v0 + (1.0 - p.beta2) * g * g;
  return vec3<f32>(w - p.stepSize * m1 / (sqrt(v1) * p.invSqrtBc2 + p.eps), m1, v1);
}
