// Elementwise unary ops; OP selects the function (folded at pipeline creation).
// 0 relu, 1 gelu (erf), 2 sigmoid, 3 tanh, 4 scale by p.alpha, 5 softplus
struct Params { n: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override OP: u32 = 0u;
const INV_SQRT2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: WGSL has no erf.
fn erf_approx(v: f32) -> f32 {
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
    + t * (-1.453152027 + t * 1.061405429))));
  return sign(v) * (1.0 - poly * exp(-a * a));
}

// Overflow-free forms: the built-ins may return NaN for large |v| on some drivers.
fn stable_tanh(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn stable_sigmoid(v: f32) -> f32 {
  let e = exp(-abs(v));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
}

fn index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  var r: f32;
  switch OP {
    case 0u: { r = max(v, 0.0); }
    case 1u: { r = 0.5 * v * (1.0 + erf_approx(v * INV_SQRT2)); }
    case 2u: { r = stable_sigmoid(v); }
    case 3u: { r = stable_tanh(v); }
    case 5u: { r = max(v, 0.0) + log(1.0 + exp(-abs(v))); }
    default: { r = p.alpha * v; }
  }
  y[i] = r;
}

// Backward: x holds the op's input, and dy is bound where y was; writes dx.
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[i];
  let g = y[i];
  var d: f32;
  switch OP {
    case 0u: { d = select(0.0, g, v > 0.0); }
    case 1u: {
      let cdf = 0.5 * (1.0 + erf_approx(v * INV_SQRT2));
      d = g * (cdf + v * INV_SQRT_2PI * exp(-0.5 * v * v));
    }
    case 2u: { let s = stable_sigmoid(v); d = g * s * (1.0 - s); }
    case 3u: { let t = stable_tanh(v); d = g * (1.0 - t * t); }
    case 5u: { d = g * stable_sigmoid(v); }
    default: { d = g * p.alpha; }
  }
  dx[i] = d;
}
